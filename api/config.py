"""Settings read once from the environment into one Struct."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Literal

import msgspec

ROOT = Path(__file__).resolve().parent.parent

# Environment variable → settings field. HOST, PORT and DATABASE_URL are the
# conventional names; everything else is prefixed to avoid clashes.
_ENV_NAMES = {
    "HOST": "host",
    "PORT": "port",
    "DATABASE_URL": "database_url",
    "CONGDONGSO_ENV": "env",
    "CONGDONGSO_DATA_DIR": "data_dir",
    "CONGDONGSO_JWT_SECRET": "jwt_secret",
    "CONGDONGSO_CELL_KEY_SECRET": "cell_key_secret",
    "CONGDONGSO_ACCESS_TOKEN_TTL": "access_token_ttl",
    "CONGDONGSO_REFRESH_TOKEN_TTL": "refresh_token_ttl",
    "CONGDONGSO_ARGON2_TIME_COST": "argon2_time_cost",
    "CONGDONGSO_ARGON2_MEMORY_KIB": "argon2_memory_kib",
    "CONGDONGSO_ARGON2_PARALLELISM": "argon2_parallelism",
    "CONGDONGSO_MAX_BODY_BYTES": "max_body_bytes",
    "CONGDONGSO_POOL_MIN": "pool_min",
    "CONGDONGSO_POOL_MAX": "pool_max",
    "CONGDONGSO_EXPORT_POOL_MAX": "export_pool_max",
    "CONGDONGSO_EXPORTS_PER_USER": "exports_per_user",
    "CONGDONGSO_PUSHES_PER_WORKER": "pushes_per_worker",
    "CONGDONGSO_LOGIN_MAX_FAILURES": "login_max_failures",
    "CONGDONGSO_LOGIN_MAX_FAILURES_PER_ADDR": "login_max_failures_per_addr",
    "CONGDONGSO_LOGIN_WINDOW": "login_window",
    "CONGDONGSO_ACTIVATION_TTL": "activation_ttl",
    "CONGDONGSO_LOG_LEVEL": "log_level",
    "CONGDONGSO_WORKERS": "workers",
    "CONGDONGSO_CARD_CACHE": "card_cache",
    "CONGDONGSO_METRICS_TOKEN": "metrics_token",
    "CONGDONGSO_OUTBOX": "outbox",
    "CONGDONGSO_WEBHOOK_WORKER": "webhook_worker",
    "CONGDONGSO_WEBHOOK_RETRY_BASE": "webhook_retry_base",
    "CONGDONGSO_WEBHOOK_PAUSE_AFTER": "webhook_pause_after",
    "CONGDONGSO_WEBHOOK_POLL": "webhook_poll",
    "CONGDONGSO_WEBHOOK_PRIVATE_TARGETS": "webhook_private_targets",
    "CONGDONGSO_OUTBOX_KEEP_DAYS": "outbox_keep_days",
    "CONGDONGSO_CARD_MAX_AGE": "card_max_age",
    "CONGDONGSO_FOLD_INTERVAL": "fold_interval",
}


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    # One worker per core: measured on 2 cores, two workers push ×1.35 more (bench sync).
    workers: int = msgspec.field(default_factory=lambda: len(os.sched_getaffinity(0)))
    database_url: str | None = None
    data_dir: str = str(ROOT / ".data")
    jwt_secret: str | None = None
    # Derives the record keys of published statistics (api/stats/keys.py); like the JWT
    # secret, every instance and the rebuild must share it.
    cell_key_secret: str | None = None
    access_token_ttl: int = 900  # seconds; short because roles are read from the token
    refresh_token_ttl: int = 30 * 24 * 3600
    # RFC 9106 "second recommended" profile (argon2-cffi's default): 64 MiB, t=3, p=4.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    max_body_bytes: int = 4 * 1024 * 1024
    pool_min: int = 2
    pool_max: int = 10
    # Exports read from a pool of their own (per worker), so they never take the requests'
    # connections; and one caller runs at most this many exports at once (per worker).
    export_pool_max: int = 2
    exports_per_user: int = 2
    # Pushes each worker works on at once; the next wait for a slot before taking a pool
    # connection (at most POOL_WAIT, then a 503): readers keep the loop and the pool.
    pushes_per_worker: int = 2
    login_max_failures: int = 5  # per phone within the window
    login_max_failures_per_addr: int = 20  # per client address within the window
    login_window: int = 900  # seconds; also the lockout length
    # How long an activation code stays valid: the holder of an account created by someone
    # else sets their password with it (a code is handed over in person, within days).
    activation_ttl: int = 72 * 3600
    log_level: str = "INFO"
    # Keep rendered cards until their province changes (api/cardcache.py); false: build
    # every card (one listening connection fewer per worker).
    card_cache: bool = True
    # Seconds a kept card may live: other processes' writes announce themselves after their
    # commit, and this bounds a card's age if one dies before it could.
    card_max_age: float = 1.0
    # Seconds between folds of the counters' log into the counters (api/stats/folder.py).
    fold_interval: float = 0.5
    # /metrics for a scraper holding this bearer token; unset: only from this machine.
    metrics_token: str | None = None
    outbox: bool = True  # write events for webhooks (off only to measure its cost)
    webhook_worker: bool = True  # run the delivery worker (one process sends: a pg lock)
    webhook_retry_base: float = 5.0  # seconds before the first retry; doubles each time
    webhook_pause_after: float = 24 * 3600.0  # seconds of failures before pausing a webhook
    webhook_poll: float = 1.0  # seconds between rounds when no event wakes the worker
    # Allow webhooks to loopback and private addresses (tests and benchmarks on one machine).
    webhook_private_targets: bool = False
    # Days an event stays in the outbox once every webhook it goes to has it (manual
    # redelivery and the delivery log reach back this far); pruned hourly by the worker.
    outbox_keep_days: float = 30.0

    @property
    def production(self) -> bool:
        return self.env == "production"


def settings_from_env(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    source = os.environ if environ is None else environ
    raw: dict[str, object] = {
        field: source[name] for name, field in _ENV_NAMES.items() if source.get(name)
    }
    raw.update(overrides)
    return msgspec.convert(raw, Settings, strict=False)


def generated_secret(path: Path) -> str:
    """A secret kept in ``path``, generated there the first time. The file appears whole or
    not at all (written aside, then linked into place), so processes starting together never
    read a half-written secret; an empty one is refused."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
                f.flush()
                os.fsync(f.fileno())
            # Linking fails if another process got there first: theirs is kept.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        finally:
            os.unlink(aside)
    secret = path.read_text().strip()
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it to generate a new secret")
    return secret


def jwt_secret(settings: Settings) -> str:
    """The signing secret: from the environment, or a generated one kept under the data dir.

    Production must set it explicitly so every instance behind a load balancer agrees.
    """
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.production:
        raise RuntimeError("CONGDONGSO_JWT_SECRET must be set when CONGDONGSO_ENV=production")
    return generated_secret(Path(settings.data_dir) / "jwt_secret")
