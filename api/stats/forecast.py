"""When a target will be reached at the current pace.

The pace is a Theil–Sen slope (the median of the slopes between every two months with
data) over the last 6 monthly values the caller may see — exact in their own ward, protected
elsewhere — so one odd month (a batch of visits, a perturbed cell) does not swing it. The
line through the median intercept is projected forward from the last month; the first month
it reaches the target is the forecast. It assumes the pace of the last half year goes on
(it will not, near 100 % or when the teams move elsewhere) and says nothing with fewer than
3 months of data.
"""

from __future__ import annotations

import math
import statistics
from datetime import date
from typing import Final

from api.stats.periods import add_months
from schemas.stats import Forecast

WINDOW: Final = 6  # months of history the pace is measured on
MIN_MONTHS: Final = 3  # fewer months with data: not enough to tell a pace
HORIZON: Final = 60  # months: beyond 5 years the answer is "not within 5 years"


def theil_sen(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Slope and intercept of the Theil–Sen line through (month index, value) points."""
    slopes = [
        (b[1] - a[1]) / (b[0] - a[0])
        for i, a in enumerate(points)
        for b in points[i + 1 :]
        if b[0] != a[0]
    ]
    slope = statistics.median(slopes)
    intercept = statistics.median(value - slope * index for index, value in points)
    return slope, intercept


def forecast(values: list[float | None], last_month: date, target: float | None) -> Forecast:
    """``values``: the last months' values, oldest first, ending with ``last_month`` (None:
    no data that month, or withheld)."""
    window = values[-WINDOW:]
    offset = len(window) - 1  # the last month's index
    points = [(index, value) for index, value in enumerate(window) if value is not None]
    latest = points[-1][1] if points else None
    if target is None:
        return Forecast(status="no_target", month=None, monthly_change=None)
    if latest is not None and latest >= target:
        return Forecast(status="met", month=None, monthly_change=None)
    if len(points) < MIN_MONTHS:
        return Forecast(status="not_enough_data", month=None, monthly_change=None)
    slope, intercept = theil_sen(points)
    change = round(slope, 6)
    if slope <= 0:
        return Forecast(status="not_within_5_years", month=None, monthly_change=change)
    # A hair of tolerance: 0.2 / 0.02 is 10.000000000000002 in floating point.
    ahead = max(1, math.ceil((target - (intercept + slope * offset)) / slope - 1e-9))
    if ahead > HORIZON:
        return Forecast(status="not_within_5_years", month=None, monthly_change=change)
    reached = add_months(last_month, ahead)
    return Forecast(status="on_pace", month=f"{reached:%Y-%m}", monthly_change=change)
