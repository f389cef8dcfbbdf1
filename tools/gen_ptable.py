"""Generate the perturbation table of the cell key method (``migrations/data/ptable.json``).

    python tools/gen_ptable.py [--D 2] [--V 1] [--js 4] [--version 1]

For each original count i, a distribution of the perturbed count j, built with the recipe
of the cell key method's published tools (Destatis ``ptable``, ABS TableBuilder):

- j − i is at most D in size (except for 1..js, below), j is never negative, and no
  perturbed count lies between 1 and js: small positive counts are never published;
- the noise has mean zero (unbiased totals), and variance V where the support allows it;
- among the distributions meeting those constraints, the one of maximum entropy
  (p(j) ∝ exp(a·(j−i) + b·(j−i)²), solved by Newton's method).

Counts 1..js cannot stay where they are: they go to 0 or to js+1..js+D, with the two-point
distribution of least variance that keeps the mean (their noise may exceed D). A count
whose support has nothing below it (i = js+1) may also go to 0. Rows from js+D+1 on are the
same shifted distribution: the last row serves every larger count.

Probabilities are then quantised to 256ths, and the 256 cell keys are laid out in order of
the perturbed value: a cell with key k gets the noise whose interval holds k. The realised
mean and variance of each row are written beside it, so the table documents itself.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

KEYS = 256
OUT = Path(__file__).resolve().parent.parent / "migrations" / "data" / "ptable.json"


def support(i: int, d: int, js: int) -> list[int]:
    if i == 0:
        return [0]
    if i <= js:
        return [0, *range(js + 1, js + d + 1)]
    values = [j for j in range(i - d, i + d + 1) if j >= 0 and not 1 <= j <= js]
    if not any(j < i for j in values):
        values = [0, *values]
    return values


def max_entropy(xs: list[int], variance: float) -> list[float]:
    """p(x) ∝ exp(a·x + b·(x² − V)) with mean 0 and variance V (x are offsets j − i): the
    minimum of the convex dual log Σ exp(a·x + b·(x² − V)), by Newton with backtracking."""

    def dual(a: float, b: float) -> float:
        return math.log(sum(math.exp(a * x + b * (x * x - variance)) for x in xs))

    a, b = 0.0, 0.0
    for _ in range(500):
        weights = [math.exp(a * x + b * (x * x - variance)) for x in xs]
        total = sum(weights)
        p = [w / total for w in weights]
        ys = [x * x - variance for x in xs]
        g1 = sum(pi * x for pi, x in zip(p, xs, strict=True))
        g2 = sum(pi * y for pi, y in zip(p, ys, strict=True))
        if abs(g1) < 1e-12 and abs(g2) < 1e-12:
            return p
        h11 = sum(pi * x * x for pi, x in zip(p, xs, strict=True)) - g1 * g1
        h12 = sum(pi * x * y for pi, x, y in zip(p, xs, ys, strict=True)) - g1 * g2
        h22 = sum(pi * y * y for pi, y in zip(p, ys, strict=True)) - g2 * g2
        det = h11 * h22 - h12 * h12
        if det > 1e-15:
            da, db = (g1 * h22 - g2 * h12) / det, (g2 * h11 - g1 * h12) / det
        else:
            da, db = g1, g2  # gradient step where the Hessian is flat
        step, here = 1.0, dual(a, b)
        while dual(a - step * da, b - step * db) > here - 1e-4 * step * (g1 * da + g2 * db):
            step /= 2
            if step < 1e-12:
                break
        a, b = a - step * da, b - step * db
    raise ValueError(f"no maximum-entropy distribution on {xs} with variance {variance}")


def least_variance(xs: list[int]) -> list[float]:
    """The two points around 0 that keep the mean at 0."""
    below = max(x for x in xs if x < 0)
    above = min(x for x in xs if x > 0)
    p_above = -below / (above - below)
    return [p_above if x == above else (1 - p_above) if x == below else 0.0 for x in xs]


def quantise(p: list[float]) -> list[int]:
    counts = [round(pi * KEYS) for pi in p]
    counts[max(range(len(p)), key=lambda k: p[k])] += KEYS - sum(counts)
    return counts


def row(i: int, d: int, v: float, js: int) -> dict[str, object]:
    values = support(i, d, js)
    xs = [j - i for j in values]
    if len(xs) == 1:
        p = [1.0]
    elif i <= js:
        p = least_variance(xs)
    else:
        p = max_entropy(xs, v)
    counts = quantise(p)
    noise: list[int] = []
    for x, count in zip(xs, counts, strict=True):
        noise.extend([x] * count)
    mean = sum(noise) / KEYS
    return {
        "count": i,
        "values": values,
        "probabilities": [c / KEYS for c in counts],
        "mean": round(mean, 4),
        "variance": round(sum((x - mean) ** 2 for x in noise) / KEYS, 4),
        "noise": noise,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--D", type=int, default=2, help="maximum noise")
    parser.add_argument("--V", type=float, default=1.0, help="noise variance")
    parser.add_argument("--js", type=int, default=4, help="no perturbed count in 1..js")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = [row(i, args.D, args.V, args.js) for i in range(args.js + args.D + 2)]
    table = {
        "version": args.version,
        "method": "cell key method, maximum-entropy rows (tools/gen_ptable.py)",
        "D": args.D,
        "V": args.V,
        "js": args.js,
        "keys": KEYS,
        "rows": rows,
    }
    args.out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    for r in rows:
        print(f"i={r['count']}: values {r['values']} mean {r['mean']} variance {r['variance']}")
    print(f"wrote {args.out} (version {args.version}; rows from {len(rows) - 1} on are shared)")


if __name__ == "__main__":
    main()
