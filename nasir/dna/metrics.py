"""Ranking-quality metrics: Kendall tau-b, Spearman rho and Pearson R.

DNA judges a supernet by how well its ratings rank architectures against their stand-alone
accuracy. These are small exact implementations (no SciPy dependency) that handle ties the way
SciPy does: Kendall's tau-b, and Spearman's rho as Pearson's R of average ranks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _check(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) != len(y):
        from nasir.dna.errors import DNAError

        raise DNAError(f"rank metrics need two sequences of the same length (got {len(x)} and {len(y)})")
    if len(x) < 2:
        from nasir.dna.errors import DNAError

        raise DNAError("rank metrics need at least two values")
    return x, y


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's linear correlation coefficient R (NaN when one side is constant)."""
    x, y = _check(x, y)
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    dx = [v - mx for v in x]
    dy = [v - my for v in y]
    sxy = math.fsum(a * b for a, b in zip(dx, dy))
    sxx = math.fsum(a * a for a in dx)
    syy = math.fsum(b * b for b in dy)
    if sxx == 0 or syy == 0:
        return math.nan
    r = sxy / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def rankdata(x: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of the ranks they span."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation rho: Pearson's R of the (tie-averaged) ranks."""
    x, y = _check(x, y)
    return pearson(rankdata(x), rankdata(y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)).

    O(n^2), which is what ranking a few dozen stand-alone trained architectures needs.
    """
    x, y = _check(x, y)
    n = len(x)
    concordant = discordant = tie_x = tie_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            sx = (x[i] > x[j]) - (x[i] < x[j])
            sy = (y[i] > y[j]) - (y[i] < y[j])
            if sx == 0 and sy == 0:
                tie_x += 1
                tie_y += 1
            elif sx == 0:
                tie_x += 1
            elif sy == 0:
                tie_y += 1
            elif sx == sy:
                concordant += 1
            else:
                discordant += 1
    n0 = n * (n - 1) // 2
    denom = math.sqrt((n0 - tie_x) * (n0 - tie_y))
    if denom == 0:
        return math.nan
    return (concordant - discordant) / denom


def rank_report(predicted: Sequence[float], true: Sequence[float]) -> dict[str, float]:
    """All three metrics at once, as the DNA paper reports them."""
    return {"kendall_tau": kendall_tau(predicted, true), "spearman_rho": spearman(predicted, true),
            "pearson_r": pearson(predicted, true)}
