"""Structured logs: one JSON object per line, for every line the service writes.

The server's own lines (granian, uvicorn in development) go through the same formatter
(:func:`server_log_config`). Every line written while a request is served carries its
``requestId`` (accepted from ``X-Request-ID`` when sane, else generated; echoed in the
response and in problem+json ``instance``). Application events (sign-ins, exports, role and
target changes, deletions) are lines of the ``congdongso.events`` logger with an ``event``
name (:func:`event`).

Never log tokens, passwords, answers or phone numbers: :func:`event` refuses such fields.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import Message, Scope

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept when it is short and plain (a UUID, a trace id); anything else could
# forge or flood log lines, so the server makes its own.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_SCOPE_KEY = "request_id"
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

events = logging.getLogger("congdongso.events")
# Field names an event may never carry (secrets and personal data).
FORBIDDEN_FIELDS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "refresh_token",
        "phone",
        "answers",
        "activation_code",
        "invite_code",
        "secret",
    }
)


def request_id(scope: Scope) -> str:
    """The request's id, chosen once per request and kept in its scope."""
    state: dict[str, Any] = scope.setdefault("state", {})
    found = state.get(_SCOPE_KEY)
    if isinstance(found, str):
        return found
    sent = ""
    for name, value in scope.get("headers", []):
        if bytes(name).lower() == REQUEST_ID_HEADER.encode():
            sent = bytes(value).decode("latin-1")
            break
    chosen = sent if _SANE_ID.fullmatch(sent) else uuid.uuid4().hex
    state[_SCOPE_KEY] = chosen
    return chosen


async def echo_request_id(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: every answer names its request (errors and rejections too)."""
    if message["type"] == "http.response.start" and scope["type"] == ScopeType.HTTP:
        headers = list(message.get("headers", []))
        headers.append((REQUEST_ID_HEADER.encode(), request_id(scope).encode()))
        message["headers"] = headers


def event(name: str, **fields: object) -> None:
    """One application event as a structured line, e.g. ``event("sign_in", user=…)``."""
    detail = fields.get("detail")
    names = set(fields) | (set(detail) if isinstance(detail, dict) else set())
    forbidden = FORBIDDEN_FIELDS & names
    if forbidden:
        raise ValueError(f"never log {sorted(forbidden)}")
    events.info(name, extra={"event": name, **fields})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (rid := current_request_id.get()) is not None:
            entry["requestId"] = rid
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry, enc_hook=repr).decode()


# Server loggers whose lines must come out as JSON too.
SERVER_LOGGERS = ("_granian", "granian", "granian.access", "uvicorn", "uvicorn.error")


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in SERVER_LOGGERS:
        server = logging.getLogger(name)
        server.handlers[:] = []
        server.propagate = True
    # The access line is ours (api/metrics.py), with the route template, not the raw path.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "pgserver", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def server_log_config(level: str = "INFO") -> dict[str, Any]:
    """Granian's ``log_dictconfig``: its own lines through :class:`JsonFormatter`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level.upper(), "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["console"], "level": level.upper()},
    }
