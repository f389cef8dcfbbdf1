"""Small-area disclosure control for the statistics.

Primary suppression hides a cell whose denominator is under 10, or whose numerator or
complement (denominator − numerator) is between 1 and 4: such a cell could single out a
household. Complementary suppression then hides one more cell among siblings when exactly one
is hidden, so it cannot be recovered as the parent's total minus the others. A cell with no
one in it (denominator 0) reveals nothing and is shown empty, not suppressed.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Final, TypeVar

from api.i18n import N_
from api.stats.counters import Cell

MIN_DENOMINATOR: Final = 10
MAX_SMALL_COUNT: Final = 4

REASONS: Final = {
    "small_denominator": N_("Fewer than 10 people or households: hidden to protect privacy."),
    "small_numerator": N_("Between 1 and 4 counted: hidden to protect privacy."),
    "small_complement": N_("All but 1 to 4 counted: hidden to protect privacy."),
    "complementary": N_(
        "Hidden so that another hidden figure cannot be worked out from the total."
    ),
}

K = TypeVar("K", bound=Hashable)


def primary(cell: Cell, unit: str) -> str | None:
    numerator, denominator = cell
    if denominator == 0:
        return None
    if denominator < MIN_DENOMINATOR:
        return "small_denominator"
    if 1 <= numerator <= MAX_SMALL_COUNT:
        return "small_numerator"
    # A ratio (cloud accounts per adult) has no complement: the numerator may exceed it.
    if unit == "percent" and 1 <= denominator - numerator <= MAX_SMALL_COUNT:
        return "small_complement"
    return None


def protect(siblings: Mapping[K, Cell], unit: str) -> dict[K, str | None]:
    """Why each of a parent's children is hidden (None: shown)."""
    reasons = {key: primary(cell, unit) for key, cell in siblings.items()}
    hidden = [key for key, reason in reasons.items() if reason is not None]
    if len(hidden) == 1:
        # Hide the smallest other non-empty cell: the least information lost.
        candidates = [key for key, cell in siblings.items() if reasons[key] is None and cell[1] > 0]
        if candidates:
            chosen = min(candidates, key=lambda key: (siblings[key][1], str(key)))
            reasons[chosen] = "complementary"
    return reasons
