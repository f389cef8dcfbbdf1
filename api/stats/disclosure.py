"""What a published figure may show: the cell key method.

Every count that leaves the server outside a ward's own exact view is perturbed. Each
counted unit has a record key (api/stats/keys.py); a cell (a count in one area, measure and
period) carries the sum of its contributors' keys modulo 256, its cell key; the published
count is the true count plus the noise that the perturbation table (``ptable``,
``migrations/data/ptable.json``, made by ``tools/gen_ptable.py``) gives for that count and
cell key. So:

- the same cell (the same contributors) always shows the same value, in every view,
  language, export and process: asking again averages nothing away;
- adding, editing or deleting one household changes the cell key and draws fresh noise:
  reading a figure before and after a visit does not reveal the household's answers;
- cells are perturbed ward by ward; a province and the nation publish their wards' perturbed
  cells added up (``api.stats.sums``), so subtracting published children from a published
  parent leaves only other children's own perturbed figures, and no complementary cells
  need hiding;
- no perturbed count lies between 1 and the table's ``js``, and none is negative.

Rates are computed from the perturbed numerator and denominator (the numerator capped at
the denominator). A ratio's numerator (cloud accounts, a sum) gets the noise for its
(sum, key) multiplied by the cell's mean per adult, rounded, at least 1: one person moves a
sum by their own accounts, not by one. A cell whose perturbed denominator is between 1 and
``MIN_DENOMINATOR`` − 1 is withheld, and the answer says only that it is withheld for
privacy (a reason naming a range would give the range away).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final, NamedTuple

from api.i18n import N_
from api.stats.cells import Cell

PTABLE_PATH: Final = Path(__file__).resolve().parents[2] / "migrations" / "data" / "ptable.json"
MIN_DENOMINATOR: Final = 10
KEY_SPACE: Final = 256
WITHHELD: Final = "privacy"  # the one reason code a withheld cell carries
REASONS: Final = {WITHHELD: N_("Withheld to protect privacy.")}


class Ptable:
    """Noise by (count, cell key): row ``min(count, last)``, column ``key mod 256``."""

    def __init__(self, table: dict[str, object]) -> None:
        rows = table["rows"]
        assert isinstance(rows, list)
        self.version = table["version"]
        self.js = int(str(table["js"]))
        self._noise: list[list[int]] = [list(row["noise"]) for row in rows]
        self._last = len(self._noise) - 1
        if any(len(noise) != KEY_SPACE for noise in self._noise):
            raise ValueError("every ptable row has one noise per cell key")

    @property
    def rows(self) -> list[list[int]]:
        return self._noise

    def noise(self, count: int, key: int) -> int:
        if count <= 0:
            return 0
        return self._noise[min(count, self._last)][key % KEY_SPACE]

    def perturb(self, count: int, key: int) -> int:
        return count + self.noise(count, key)


def load_ptable(path: Path = PTABLE_PATH) -> Ptable:
    return Ptable(json.loads(path.read_text(encoding="utf-8")))


PTABLE: Final = load_ptable()


class Published(NamedTuple):
    """A cell as it may be published: perturbed counts, and whether it is withheld."""

    numerator: int
    denominator: int
    withheld: bool


MIX: Final = 131  # odd: (k + 131·j) mod 256 stays uniform whatever k is


def part_key(key: int, whole_key: int) -> int:
    """The key a part of a cell (a numerator) draws its noise with: its own contributors'
    key mixed with the whole's (the denominator's). A household that joins the denominator
    but not the numerator still changes the numerator's noise, so a numerator that did not
    move tells nothing about the household's answers."""
    return (key + MIX * whole_key) % KEY_SPACE


def no_small_count(count: int) -> int:
    """A scaled noise can land on 1..js, which the table never publishes: move it to the
    nearer of 0 and js + 1."""
    if count <= 0:
        return 0
    if count <= PTABLE.js:
        return 0 if count * 2 <= PTABLE.js + 1 else PTABLE.js + 1
    return count


class Counts(NamedTuple):
    numerator: int
    denominator: int


def contribution(cell: Cell, unit: str = "fraction", *, whole_numerator: bool = False) -> Counts:
    """A cell's perturbed numerator and denominator before the display rules: what a ward
    adds to its province's and the nation's figures (``api.stats.sums``). The table's noise
    has mean zero, so these add up without bias however small the wards; the display rules
    (a zero base zeroes its row, a numerator never above its denominator) would not.

    ``whole_numerator``: the numerator is a cell published elsewhere on its own (the
    surveyed households of coverage are the household indicators' denominator), so it keeps
    its own key and shows the same value everywhere."""
    numerator, denominator, numerator_key, denominator_key = cell
    key = numerator_key if whole_numerator else part_key(numerator_key, denominator_key)
    if unit == "ratio":
        # the mean per unit rounded half up, in integers (api/stats/sums.py does the same in SQL)
        scale = max(1, (2 * numerator + denominator) // (2 * denominator)) if denominator > 0 else 1
        shown_numerator = numerator + scale * PTABLE.noise(numerator, key)
    else:
        shown_numerator = PTABLE.perturb(numerator, key)
    return Counts(shown_numerator, PTABLE.perturb(denominator, denominator_key))


def displayed(counts: Counts, unit: str = "fraction") -> Published:
    """Perturbed counts (one ward's, or a province's sum of its wards') as published."""
    numerator, denominator = counts
    if denominator == 0:
        numerator = 0  # an empty-looking cell looks empty through and through
    elif unit == "ratio":
        numerator = no_small_count(numerator)
    else:
        numerator = max(0, min(numerator, denominator))
    return Published(numerator, denominator, 0 < denominator < MIN_DENOMINATOR)


def perturb(cell: Cell, unit: str = "fraction", *, whole_numerator: bool = False) -> Published:
    return displayed(contribution(cell, unit, whole_numerator=whole_numerator), unit)


def exact(cell: Cell) -> Published:
    return Published(cell[0], cell[1], False)


def published(
    cell: Cell, unit: str, *, exact_view: bool, whole_numerator: bool = False
) -> Published:
    """The cell as this caller may see it: exact in their own ward, else perturbed."""
    if exact_view:
        return exact(cell)
    return perturb(cell, unit, whole_numerator=whole_numerator)
