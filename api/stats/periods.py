"""Statistics periods: current, a month, a quarter or a year, always "as of the end of
the period" in Vietnam time, and the points of a series."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

from api.errors import invalid
from api.i18n import N_
from api.stats.catalog import TIME_ZONE

FIRST_MONTH: Final = date(2020, 1, 1)
EXPORT_MONTHS: Final = 24
Grain = Literal["month", "quarter", "year"]
POINTS: Final[dict[str, int]] = {"month": 24, "quarter": 8, "year": 5}

BAD_PERIOD = N_("Use current, a month (2025-07), a quarter (2025-Q3) or a year (2025).")
EARLY_PERIOD = N_("Statistics start in January 2020.")
FUTURE_PERIOD = N_("This period has not started yet.")

# What the document promises for a period: the forms parse_period reads, from 2020 (when
# statistics start) to 2099; a period that has not started yet is a 400 `future_period`.
YEAR = r"20[2-9][0-9]"
PERIOD_PATTERN = rf"^(current|{YEAR}(-(0[1-9]|1[0-2])|-Q[1-4])?)$"
MONTH_PATTERN = rf"^{YEAR}-(0[1-9]|1[0-2])$"


def today() -> date:
    return datetime.now(ZoneInfo(TIME_ZONE)).date()


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


# Periods ----------------------------------------------------------------------------------


class Period(NamedTuple):
    label: str  # "current", "2025-07", "2025-Q3" or "2025"
    end: date | None  # the first day of the period's last month; None for current
    year: int  # the year whose targets apply


def parse_period(text: str, now: date) -> Period:
    if text == "current":
        return Period("current", None, now.year)
    match = re.fullmatch(r"(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?", text)
    if match is None:
        raise invalid("period", "format", BAD_PERIOD)
    year = int(match[1])
    if match[2]:
        first, last = int(match[2]), int(match[2])
    elif match[3]:
        first, last = int(match[3]) * 3 - 2, int(match[3]) * 3
    else:
        first, last = 1, 12
    if date(year, last, 1) < FIRST_MONTH:
        raise invalid("period", "minimum", EARLY_PERIOD)
    if date(year, first, 1) > month_start(now):
        # A rule of the day, not of the form (the documented pattern allows up to 2099).
        raise invalid("period", "future_period", FUTURE_PERIOD)
    return Period(text, date(year, last, 1), year)


def period_points(grain: Grain, now: date) -> list[Period]:
    """The last 24 months, 8 quarters or 5 years, oldest first, ending with the current."""
    current = month_start(now)
    points: list[Period] = []
    for back in range(POINTS[grain] - 1, -1, -1):
        if grain == "month":
            month = add_months(current, -back)
            points.append(Period(f"{month:%Y-%m}", month, month.year))
        elif grain == "quarter":
            quarter_end = add_months(current, (3 - current.month % 3) % 3 - 3 * back)
            label = f"{quarter_end.year}-Q{(quarter_end.month - 1) // 3 + 1}"
            points.append(Period(label, quarter_end, quarter_end.year))
        else:
            year = current.year - back
            points.append(Period(str(year), date(year, 12, 1), year))
    return points
