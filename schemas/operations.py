"""Operations endpoints."""

from __future__ import annotations

from schemas.base import Schema


class Health(Schema):
    status: str


class Readiness(Schema):
    status: str
    revision: str
