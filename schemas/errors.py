"""RFC 9457 problem details, as every error is returned."""

from __future__ import annotations

from schemas.base import Schema


class FieldProblem(Schema):
    field: str
    code: str
    message: str


class Problem(Schema, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None
