"""Search step (DNA Alg. 2, made exact and fast): one path per block, lowest summed score under a
cost constraint, and the Pareto front of summed score against summed cost.

The paper walks all block combinations depth first with two prunings (skip a path whose cost
already breaks the constraint; stop at the first feasible path of the last block, whose list is
sorted by score). That is exact but still exponential in the number of blocks. Here:

1. each block's paths are reduced to their Pareto front (a path is useless if another path of the
   same block costs no more and scores no worse);
2. fronts are merged pairwise: the front of "blocks A then B" is the Pareto front of all sums of a
   point of A's front and a point of B's front (Minkowski sum, then dominance pruning), with
   points that cannot fit the constraint — given the cheapest choice of the blocks not yet merged —
   dropped early;
3. a constrained query merges the first and second half of the blocks separately and meets in the
   middle: for every point of the left front, the best right point within the remaining budget is
   found by binary search (the right front is sorted by cost, scores falling).

Every step keeps at least one optimal combination, so the result is exact: the tests compare it
with brute force. On the ~2 x 10^17 architectures of the DNA MBConv space it takes milliseconds
(``bench/dna_rating.py`` measures it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasir.dna.errors import DNAError

#: Largest Minkowski-sum chunk materialized at once (points).
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Choice:
    """One architecture: ``indices[k]`` is the chosen path position in block k's table."""

    indices: tuple[int, ...]
    score: float
    cost: float


class _Front:
    """A Pareto front: costs ascending, scores strictly descending, with back-pointers."""

    def __init__(self, cost: np.ndarray, score: np.ndarray, picks: list[np.ndarray]):
        self.cost = cost
        self.score = score
        #: per block covered, the path index of each front point
        self.picks = picks

    def __len__(self) -> int:
        return len(self.cost)

    def choice(self, k: int) -> Choice:
        return Choice(tuple(int(p[k]) for p in self.picks), float(self.score[k]), _num(self.cost[k]))


def _num(x: np.generic) -> float:
    v = x.item()
    return v


def _pareto(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (minimal cost and score), sorted by cost ascending.

    Among equal costs only the lowest score survives; a point survives only if its score is
    strictly lower than that of every cheaper point.
    """
    if len(cost) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((score, cost))
    s = score[order]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], s[:-1])))
    keep = s < best_before
    return order[keep]


def _leaf(block: int, scores: Sequence[float], costs: Sequence[float], n_blocks: int) -> _Front:
    score = np.asarray(scores, dtype=np.float64)
    cost = np.asarray(costs)
    if cost.dtype.kind not in "iuf":
        raise DNAError(f"block {block}: costs must be numbers")
    if cost.dtype.kind in "iu":
        cost = cost.astype(np.int64)
    else:
        cost = cost.astype(np.float64)
    if score.shape != cost.shape or score.ndim != 1 or len(score) == 0:
        raise DNAError(f"block {block}: need as many costs as scores, and at least one path "
                       f"(got {score.shape[0] if score.ndim else 0} scores, {cost.shape[0] if cost.ndim else 0} costs)")
    if not np.all(np.isfinite(score)) or not np.all(np.isfinite(cost)):
        raise DNAError(f"block {block}: scores and costs must be finite")
    keep = _pareto(cost, score)
    return _Front(cost[keep], score[keep], [keep.astype(np.int64)])


def _merge(a: _Front, b: _Front, limit: float | None) -> _Front:
    """Pareto front of all sums a_i + b_j with cost <= limit."""
    cost_parts, score_parts, ia_parts, ib_parts = [], [], [], []
    rows = max(1, _CHUNK // max(1, len(b)))
    for start in range(0, len(a), rows):
        ca = a.cost[start:start + rows]
        cost = (ca[:, None] + b.cost[None, :]).ravel()
        score = (a.score[start:start + rows, None] + b.score[None, :]).ravel()
        ia = np.repeat(np.arange(start, start + len(ca)), len(b))
        ib = np.tile(np.arange(len(b)), len(ca))
        if limit is not None:
            ok = cost <= limit
            cost, score, ia, ib = cost[ok], score[ok], ia[ok], ib[ok]
        keep = _pareto(cost, score)
        cost_parts.append(cost[keep])
        score_parts.append(score[keep])
        ia_parts.append(ia[keep])
        ib_parts.append(ib[keep])
    cost = np.concatenate(cost_parts)
    score = np.concatenate(score_parts)
    ia = np.concatenate(ia_parts)
    ib = np.concatenate(ib_parts)
    keep = _pareto(cost, score)
    ia, ib = ia[keep], ib[keep]
    return _Front(cost[keep], score[keep], [p[ia] for p in a.picks] + [p[ib] for p in b.picks])


def _fold(fronts: list[_Front], limit: float | None, reserve: float) -> _Front:
    """Merge ``fronts`` left to right; ``reserve`` is the least cost still to be added later."""
    rest = [float(f.cost[0]) for f in fronts]  # cheapest point of each front
    acc = fronts[0]
    for k in range(1, len(fronts)):
        lim = None if limit is None else limit - reserve - sum(rest[k + 1:])
        acc = _merge(acc, fronts[k], lim)
    return acc


def _leaves(scores: Sequence[Sequence[float]], costs: Sequence[Sequence[float]]) -> list[_Front]:
    if len(scores) != len(costs):
        raise DNAError(f"{len(scores)} score tables but {len(costs)} cost tables")
    if not scores:
        raise DNAError("nothing to search: no blocks")
    return [_leaf(k, s, c, len(scores)) for k, (s, c) in enumerate(zip(scores, costs))]


def _slack(fronts: list[_Front], limit: float | None) -> float | None:
    """Float costs are summed in different orders here than by the caller; a combination that
    fits exactly must not be lost to rounding, so float limits get a relative slack of 1e-9."""
    if limit is None or all(f.cost.dtype.kind in "iu" for f in fronts):
        return limit
    return limit + 1e-9 * max(1.0, abs(limit))


def pareto_front(scores: Sequence[Sequence[float]], costs: Sequence[Sequence[float]],
                 limit: float | None = None) -> list[Choice]:
    """Every architecture not dominated in (summed cost, summed score), cheapest first.

    One representative per front point (ties in both cost and score keep one combination).
    ``limit`` keeps only points with cost <= limit.
    """
    fronts = _leaves(scores, costs)
    limit = _slack(fronts, limit)
    front = _fold(fronts, limit, 0.0)
    if limit is not None:
        front = _Front(front.cost[front.cost <= limit], front.score[front.cost <= limit],
                       [p[front.cost <= limit] for p in front.picks])
    return [front.choice(k) for k in range(len(front))]


def constrained_search(scores: Sequence[Sequence[float]], costs: Sequence[Sequence[float]],
                       limit: float | None = None) -> Choice:
    """The combination of one path per block with the lowest summed score and summed cost <= limit.

    ``scores[k][i]`` and ``costs[k][i]`` describe path i of block k. Among optimal combinations
    the cheapest one is returned. Raises ``DNAError`` when no combination fits ``limit``.
    """
    fronts = _leaves(scores, costs)
    limit = _slack(fronts, limit)
    cheapest = sum(float(f.cost[0]) for f in fronts)
    if limit is not None and cheapest > limit:
        raise DNAError(f"no architecture satisfies the constraint {limit:g}: the cheapest one costs {cheapest:g}")
    if limit is None:
        return Choice(tuple(int(f.picks[0][-1]) for f in fronts), float(sum(f.score[-1] for f in fronts)),
                      _num(sum(f.cost[-1] for f in fronts)))
    half = (len(fronts) + 1) // 2
    left = _fold(fronts[:half], limit, sum(float(f.cost[0]) for f in fronts[half:]))
    if half == len(fronts):
        feasible = np.nonzero(left.cost <= limit)[0]
        k = int(feasible[np.argmin(left.score[feasible])])
        return left.choice(k)
    right = _fold(fronts[half:], limit, float(left.cost[0]))
    budget = limit - left.cost
    j = np.searchsorted(right.cost, budget, side="right") - 1  # best right point within budget
    ok = j >= 0
    total = np.where(ok, left.score + right.score[np.maximum(j, 0)], np.inf)
    best = float(total.min())
    cands = np.nonzero(total == best)[0]
    i = int(min(cands, key=lambda c: left.cost[c] + right.cost[j[c]]))
    jj = int(j[i])
    a, b = left.choice(i), right.choice(jj)
    return Choice(a.indices + b.indices, a.score + b.score, _num(left.cost[i] + right.cost[jj]))


def brute_force(scores: Sequence[Sequence[float]], costs: Sequence[Sequence[float]],
                limit: float | None = None) -> Choice | None:
    """Reference: enumerate every combination (small spaces only)."""
    best: Choice | None = None
    for combo in itertools.product(*(range(len(s)) for s in scores)):
        cost = sum(costs[k][i] for k, i in enumerate(combo))
        if limit is not None and cost > limit:
            continue
        score = math.fsum(scores[k][i] for k, i in enumerate(combo))
        if best is None or score < best.score or (score == best.score and cost < best.cost):
            best = Choice(combo, score, cost)
    return best


def traversal_search(scores: Sequence[Sequence[float]], costs: Sequence[Sequence[float]],
                     limit: float) -> Choice | None:
    """DNA Alg. 2 as published: depth-first over blocks, each list sorted by score; skip paths
    that break the constraint, stop at the first feasible path of the last block. Exact but
    exponential; kept as a second reference and for the benchmark."""
    order = [sorted(range(len(s)), key=lambda i, s=s: s[i]) for s in scores]
    n = len(scores)
    best: list[Choice | None] = [None]
    picks = [0] * n

    def visit(k: int, size: float, loss: float) -> None:
        for i in order[k]:
            c = size + costs[k][i]
            if c > limit:
                continue
            val = loss + scores[k][i]
            picks[k] = i
            if k == n - 1:
                if best[0] is None or val < best[0].score:
                    best[0] = Choice(tuple(picks), val, c)
                break
            visit(k + 1, c, val)

    visit(0, 0, 0.0)
    return best[0]
