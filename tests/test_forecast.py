"""Forecasts on synthetic series whose answers are known."""

from __future__ import annotations

from datetime import date

from api.stats.forecast import forecast, theil_sen

NOVEMBER = date(2026, 11, 1)


def test_a_steady_pace_reaches_the_target_in_the_month_the_line_crosses_it() -> None:
    # +2 points a month from 50 %: 60 % in November, 80 % ten months later.
    values: list[float | None] = [0.50, 0.52, 0.54, 0.56, 0.58, 0.60]
    result = forecast(values, NOVEMBER, 0.80)
    assert (result.status, result.month) == ("on_pace", "2027-09")
    assert result.monthly_change is not None
    assert abs(result.monthly_change - 0.02) < 1e-9


def test_one_odd_month_does_not_swing_the_pace() -> None:
    # The same series with one month of a large batch of visits (and a perturbed dip).
    values: list[float | None] = [0.50, 0.52, 0.75, 0.56, 0.58, 0.60]
    assert forecast(values, NOVEMBER, 0.80).month == "2027-09"
    slope, _ = theil_sen([(0, 0.5), (1, 0.52), (2, 0.1), (3, 0.56), (4, 0.58), (5, 0.6)])
    assert abs(slope - 0.02) < 1e-9


def test_met_flat_falling_far_and_too_little_data() -> None:
    assert forecast([0.7, 0.75, 0.81], NOVEMBER, 0.8).status == "met"
    assert forecast([0.6, 0.6, 0.6, 0.6], NOVEMBER, 0.8).status == "not_within_5_years"
    assert forecast([0.7, 0.68, 0.66, 0.64], NOVEMBER, 0.8).status == "not_within_5_years"
    # +0.1 point a month from 40 %: 400 months away.
    slow: list[float | None] = [0.395, 0.396, 0.397, 0.398, 0.399, 0.400]
    assert forecast(slow, NOVEMBER, 0.8).status == "not_within_5_years"
    assert forecast([None, None, None, None, 0.4, 0.5], NOVEMBER, 0.8).status == ("not_enough_data")
    assert forecast([], NOVEMBER, 0.8).status == "not_enough_data"
    assert forecast([0.1, 0.2, 0.3], NOVEMBER, None).status == "no_target"


def test_months_without_data_are_skipped_not_zero() -> None:
    # Withheld or empty months: the pace is measured on the months that have a value.
    values: list[float | None] = [0.50, None, 0.54, None, 0.58, 0.60]
    result = forecast(values, NOVEMBER, 0.70)
    assert (result.status, result.month) == ("on_pace", "2027-04")


def test_only_the_last_six_months_count() -> None:
    older_fall: list[float | None] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.52, 0.54, 0.56, 0.58, 0.60]
    # The last six months rise by 2 points (0.5 → 0.6): the older fall is ignored.
    assert forecast(older_fall, NOVEMBER, 0.80).month == "2027-09"
