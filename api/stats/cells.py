"""A counter's cell: (numerator, denominator, numerator key sum, denominator key sum).

A plain tuple, as cards build thousands of them per request. Key sums are unreduced; see
api/stats/disclosure.py.
"""

from __future__ import annotations

Cell = tuple[int, int, int, int]
EMPTY: Cell = (0, 0, 0, 0)


def add(a: Cell, b: Cell) -> Cell:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])
