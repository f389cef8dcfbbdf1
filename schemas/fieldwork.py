"""Field work: a ward's visit plan and the ward settings it uses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from schemas.base import Schema

STALE_AFTER_DEFAULT = 6  # months, when a ward has not set its own
StaleAfterMonths = Annotated[
    int,
    Meta(ge=1, le=60, description="A survey older than this many months is stale (1–60)."),
]

VisitReason = Literal["never_surveyed", "stale", "help_wanted", "misses_indicator"]


class VisitPlanItem(Schema):
    """One household to visit and why. ``reason``: ``never_surveyed`` (registered, never
    surveyed), ``stale`` (last survey older than the ward's ``staleAfterMonths``),
    ``help_wanted`` (members asked for help with a lagging indicator), ``misses_indicator``
    (the current answers are not counted in a lagging indicator's numerator). ``indicator``
    is the lagging indicator the reason is about and ``members`` how many members it
    concerns (for ``misses_indicator`` of a household indicator, null). ``reasonText`` says
    it in the caller's language. ``ownHamlet``: in the hamlets of the ``member`` the plan is
    for. Never the members' answers."""

    household_id: uuid.UUID
    label: str | None
    hamlet_id: uuid.UUID | None
    hamlet_name: str | None
    last_visit_at: datetime | None  # the current survey's collection time
    reason: VisitReason
    reason_text: str
    indicator: str | None
    members: int | None
    own_hamlet: bool


class WardSettings(Schema):
    ward_code: str
    stale_after_months: int


class NewWardSettings(Schema):
    stale_after_months: StaleAfterMonths
