"""Rank statistics of a ranking study: Kendall tau-b, Spearman rho, bootstrap intervals, and the
split-half reliability of a seeded ground truth.

Everything is vectorised over bootstrap resamples with torch (float64): a resample of ``n``
architectures costs an ``n x n`` sign matrix, so 2000 resamples of 100 architectures take well
under a second. Ties (and the duplicates a resample draws) are handled as tau-b and average
ranks handle them; a constant vector has no defined correlation and gives NaN.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nasir.diagnostics import NasirError


def _rows(x: torch.Tensor | Sequence[float]) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64)
    return t.unsqueeze(0) if t.dim() == 1 else t


def kendall_tau_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Kendall tau-b of each row pair of ``x`` and ``y`` [B, n]: (concordant - discordant pairs)
    over the geometric mean of the pairs untied in x and in y."""
    sx = torch.sign(x.unsqueeze(2) - x.unsqueeze(1)).float()  # signs and their sums are exact in float32
    sy = torch.sign(y.unsqueeze(2) - y.unsqueeze(1)).float()
    both = (sx * sy).sum((1, 2)).double()
    untied = (sx.abs().sum((1, 2)).double() * sy.abs().sum((1, 2)).double()).sqrt()
    return torch.where(untied > 0, both / untied.clamp_min(1e-300), torch.full_like(both, math.nan))


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n along the last axis of ``x`` [B, n], ties sharing their average rank."""
    below = (x.unsqueeze(1) < x.unsqueeze(2)).sum(2)
    equal = (x.unsqueeze(1) == x.unsqueeze(2)).sum(2)
    return below.to(torch.float64) + (equal.to(torch.float64) + 1) / 2


def pearson_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    norm = (x.square().sum(1) * y.square().sum(1)).sqrt()
    return torch.where(norm > 0, (x * y).sum(1) / norm.clamp_min(1e-300), torch.full_like(norm, math.nan))


def spearman_rho_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman rho of each row pair: Pearson correlation of the average ranks."""
    return pearson_rows(average_ranks(x), average_ranks(y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    return float(kendall_tau_rows(_rows(x), _rows(y))[0])


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    return float(spearman_rho_rows(_rows(x), _rows(y))[0])


#: Bootstrap resamples evaluated at once.
_CHUNK = 100

STATISTICS = {"kendall_tau": kendall_tau_rows, "spearman_rho": spearman_rho_rows}


@dataclass(frozen=True)
class Interval:
    """A statistic on the whole sample and its bootstrap percentile interval."""

    value: float
    low: float
    high: float
    level: float
    resamples: int

    def contains(self, v: float) -> bool:
        return self.low <= v <= self.high

    def __str__(self) -> str:
        return f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _seed_means(truth: torch.Tensor, archs: torch.Tensor, g: torch.Generator, resample_seeds: bool) -> torch.Tensor:
    """Ground truth of resampled architectures ``archs`` [B, n]: the mean over seeds, the seeds
    themselves resampled per architecture when asked."""
    rows = truth[archs]  # [B, n, seeds]
    if not resample_seeds or truth.shape[1] < 2:
        return rows.mean(2)
    picks = torch.randint(truth.shape[1], rows.shape, generator=g)
    return rows.gather(2, picks).mean(2)


def bootstrap(statistic: str, predictor: Sequence[float], truth: torch.Tensor | Sequence[Sequence[float]],
              resamples: int = 2000, level: float = 0.95, seed: int = 0, resample_seeds: bool = True) -> Interval:
    """``statistic`` (``kendall_tau`` or ``spearman_rho``) between ``predictor`` [n] and the
    seed-mean of ``truth`` [n, seeds], with a percentile interval from resampling architectures
    with replacement (and, with ``resample_seeds``, each architecture's seeds too, so the
    interval also carries the ground truth's own seed noise). Resamples whose statistic is
    undefined (all tied) are left out of the interval."""
    if statistic not in STATISTICS:
        raise NasirError(f"unknown statistic {statistic!r}", hint=f"use one of {', '.join(STATISTICS)}")
    stat = STATISTICS[statistic]
    p = torch.as_tensor(predictor, dtype=torch.float64)
    t = torch.as_tensor(truth, dtype=torch.float64)
    if t.dim() == 1:
        t = t.unsqueeze(1)
    if p.dim() != 1 or t.dim() != 2 or p.shape[0] != t.shape[0] or p.shape[0] < 3:
        raise NasirError(f"a ranking needs at least 3 architectures with one prediction and one row of seeds each, got "
                         f"{list(p.shape)} predictions and a {list(t.shape)} ground truth")
    if not 0 < level < 1 or resamples < 1:
        raise NasirError(f"bootstrap level {level} must lie in (0, 1) with at least one resample")
    value = float(stat(p.unsqueeze(0), t.mean(1).unsqueeze(0))[0])
    g = torch.Generator().manual_seed(seed)
    n = p.shape[0]
    draws = []
    for start in range(0, resamples, _CHUNK):  # bounded memory: _CHUNK x n x n signs at a time
        archs = torch.randint(n, (min(_CHUNK, resamples - start), n), generator=g)
        draws.append(stat(p[archs], _seed_means(t, archs, g, resample_seeds)))
    values = torch.cat(draws)
    values = values[~values.isnan()]
    if values.numel() == 0:
        return Interval(value, math.nan, math.nan, level, 0)
    low, high = torch.quantile(values, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)).tolist()
    return Interval(value, low, high, level, int(values.numel()))


@dataclass(frozen=True)
class Reliability:
    """Split-half reliability of a seeded ground truth: Spearman rho between the seed-means of two
    disjoint halves of the seeds, averaged over the splits, and the Spearman-Brown prophecy
    ``2 r / (1 + r)`` for the mean of all seeds (NaN when r <= 0: the halves share no ranking,
    and the prophecy has no meaning)."""

    half: float
    full: float
    splits: int

    def __str__(self) -> str:
        return f"split-half rho {self.half:.3f} (all seeds, Spearman-Brown: {self.full:.3f}; {self.splits} splits)"


def split_half_reliability(truth: torch.Tensor | Sequence[Sequence[float]], max_splits: int = 64,
                           seed: int = 0) -> Reliability:
    """Reliability of ``truth`` [architectures, seeds]: every split of the seeds into halves (the
    first half the smaller one, each split once), or ``max_splits`` random ones when there are
    more."""
    t = torch.as_tensor(truth, dtype=torch.float64)
    if t.dim() != 2 or t.shape[1] < 2 or t.shape[0] < 3:
        raise NasirError(f"split-half reliability needs at least 3 architectures and 2 seeds, got {list(t.shape)}")
    seeds = t.shape[1]
    half = seeds // 2
    splits = [c for c in itertools.combinations(range(seeds), half) if seeds != 2 * half or 0 in c]
    if len(splits) > max_splits:
        g = torch.Generator().manual_seed(seed)
        splits = [splits[i] for i in torch.randperm(len(splits), generator=g)[:max_splits].tolist()]
    first = torch.stack([t[:, list(c)].mean(1) for c in splits])
    second = torch.stack([t[:, [s for s in range(seeds) if s not in c]].mean(1) for c in splits])
    rhos = spearman_rho_rows(first, second)
    r = float(rhos.nanmean())
    return Reliability(r, 2 * r / (1 + r) if r > 0 else math.nan, len(splits))
