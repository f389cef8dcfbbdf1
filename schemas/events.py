"""Webhooks: registrations and their delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from msgspec import Meta

from schemas.base import Schema

# Printable ASCII only (an IDN host in punycode, anything else percent-encoded): a class
# every regex dialect reads alike (Python's ``\s`` also covers \x1c-\x1f, JSON Schema's not).
WebhookUrl = Annotated[str, Meta(min_length=8, max_length=500, pattern=r"^https?://[!-~]+$")]


class NewWebhook(Schema):
    """``provinceCode``: only that province's events (a province official's webhook is
    always their province's); none: every province's (administrators). ``includeAnswers``:
    submission events carry the members' answers (administrators only; audited)."""

    url: WebhookUrl
    province_code: Annotated[str, Meta(pattern=r"^\d{2}$")] | None = None
    include_answers: bool = False


class Webhook(Schema):
    id: uuid.UUID
    url: str
    province_code: str | None
    include_answers: bool
    created_at: datetime
    paused_at: datetime | None  # paused after 24 h of failures: POST …/resume
    failing_since: datetime | None


class NewWebhookSecret(Schema):
    """Shown once: the receiver checks ``X-Congdongso-Signature`` with it."""

    webhook: Webhook
    secret: str


class Delivery(Schema):
    """One attempt to deliver an event."""

    id: int
    event_id: uuid.UUID
    type: str
    attempt: int
    manual: bool  # a redelivery asked for by a person
    status_code: int | None
    error: str | None
    delivered: bool
    duration_ms: int
    attempted_at: datetime
