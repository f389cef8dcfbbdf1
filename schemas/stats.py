"""Statistics cards, children tables, series and plan targets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from schemas.base import Schema
from schemas.modules import Learning
from schemas.surveys import Localized

RuleKey = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
RuleValue = Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,40}$")]


class Rule(Schema):
    """``true``: the boolean answer is true; ``eq``/``in``: the choice is one of ``value``;
    ``gte``: the number is at least ``value``; ``sum``: add up the number."""

    key: RuleKey
    op: Literal["true", "eq", "in", "gte", "sum"]
    value: RuleValue | list[RuleValue] | int | None = None


class Indicator(Schema):
    code: Annotated[str, Meta(pattern=r"^[A-Z][A-Z0-9_]{0,39}$")]
    name: Localized
    unit: Literal["fraction", "ratio"]
    subject: Literal["household", "member"]
    min_age: int | None
    rule: Rule


StatLevel = Literal["nation", "province", "ward"]
Unit = Literal["fraction", "ratio"]


class StatArea(Schema):
    code: str
    name: str
    level: StatLevel


class Coverage(Schema):
    """Households surveyed (with a current submission) out of households registered;
    protected like the indicators (null and ``suppressed`` when withheld)."""

    surveyed: int | None
    registered: int | None
    value: float | None
    suppressed: bool = False


ForecastStatus = Literal["met", "on_pace", "not_within_5_years", "not_enough_data", "no_target"]


class Forecast(Schema):
    """When the target is reached at the pace of the last 6 months (a Theil–Sen slope over
    the monthly values the caller may see): ``on_pace`` with the ``month`` (YYYY-MM), or
    ``met``, ``not_within_5_years``, ``not_enough_data`` (fewer than 3 months with data),
    ``no_target``. ``monthlyChange``: the pace, in the indicator's unit per month."""

    status: ForecastStatus
    month: str | None
    monthly_change: float | None


class IndicatorValue(Schema):
    """One indicator in one area and period. ``value`` is a fraction (0.756), or a ratio for
    ``unit: ratio``; ``gap`` is target − value (positive: behind the target). Outside one's
    own ward the counts are protected (perturbed); a withheld cell has no numbers,
    ``suppressed: true``, ``reason: "privacy"`` and a ``reasonText``."""

    code: str
    name: str
    unit: Unit
    numerator: int | None
    denominator: int | None
    value: float | None
    target: float | None
    gap: float | None
    suppressed: bool
    reason: str | None
    reason_text: str | None
    forecast: Forecast | None = None


class ClosedPeriod(Schema):
    """A ward's month closed by its officials: its figures are those of the closing time."""

    closed_at: datetime
    closed_by: str | None  # the official's display name, if they have one
    text: str  # "Closed on 05/08/2025 by …", in the caller's language


class Card(Schema):
    """``learning`` (module completions and passes, today) is on current-period cards.
    ``exact``: the figures are exact (a ward official's or team member's own ward); else
    every count is protected by the cell key method (small noise, the same every time).
    ``closed``: the ward's month (the period's last) was closed: its counts are frozen."""

    area: StatArea
    period: str
    exact: bool
    coverage: Coverage
    indicators: list[IndicatorValue]
    learning: Learning | None = None
    closed: ClosedPeriod | None = None


class ChildRow(Schema):
    """``noData``: nothing to show for this area (nobody surveyed, or withheld for privacy);
    with ``sort=gap`` or ``sort=coverage`` these rows come first, as a group."""

    area: StatArea
    indicator: IndicatorValue
    coverage: Coverage
    no_data: bool


class SeriesPoint(Schema):
    period: str
    numerator: int | None
    denominator: int | None
    value: float | None
    target: float | None
    gap: float | None
    suppressed: bool
    reason: str | None
    reason_text: str | None


class Series(Schema):
    area: StatArea
    indicator: str
    name: str
    unit: Unit
    grain: Literal["month", "quarter", "year"]
    points: list[SeriesPoint]
    forecast: Forecast  # from the monthly values, whatever the grain


class NewTarget(Schema):
    """A plan target in the indicator's unit: a fraction (0.8 = 80 %) or a ratio."""

    year: Annotated[int, Meta(ge=2000, le=2100)]
    value: Annotated[
        float,
        Meta(
            ge=0,
            le=100,
            description="0 to 100 for a `ratio` indicator (accounts per adult); a `fraction` "
            "indicator's target is 0 to 1 (0.8 = 80 %), more is refused with 400 "
            "`not_a_fraction` (the unit is the indicator's, see its card).",
        ),
    ]


class Target(Schema):
    area_code: str
    indicator: str
    year: int
    value: float
