"""A ranking study: the ground truth of a set of architectures (stand-alone training to a plateau,
several seeds) against predictors of it.

``run_ground_truth`` trains every architecture with every seed; ``Study`` holds the accuracies and
the predictors' scores and reports the ground truth's split-half reliability (a predictor cannot
be judged more precisely than the truth repeats itself) and Kendall tau / Spearman rho of each
predictor with bootstrap intervals (architectures and seeds resampled).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from nasir.data.images import Augmentation, ImageSet
from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ranking.predictors import Arch, arch_label
from nasir.ranking.stats import STATISTICS, Interval, Reliability, bootstrap, split_half_reliability
from nasir.ranking.train import Budget, RunResult, train_to_plateau


def run_ground_truth(graph: Graph, archs: Sequence[Arch], train: ImageSet, test: ImageSet, seeds: Sequence[int],
                     budget: Budget, augmentation: Augmentation | None = None, device: str | torch.device = "cpu",
                     log: Callable[[str], None] | None = None) -> list[list[RunResult]]:
    """Stand-alone runs ``[architecture][seed]``: each fixed architecture lowered with the seed as
    its weight-init seed and trained to a plateau."""
    from nasir.lowering import lower

    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise NasirError(f"seeds {list(seeds)}: give distinct seeds, at least one")
    runs = []
    for arch in archs:
        row = []
        for seed in seeds:
            result = train_to_plateau(lambda s, arch=arch: lower(graph, mode="fixed", arch=dict(arch), seed=s),
                                      train, test, seed, budget, augmentation, device)
            if log is not None:
                log(f"{arch_label(graph, arch)} seed {seed}: test {result.test_accuracy:.4f} after {result.epochs} "
                    f"epochs ({result.seconds:.0f} s)")
            row.append(result)
        runs.append(row)
    return runs


def _finite(x: float) -> float | None:
    """JSON has no NaN: an undefined statistic is null."""
    return None if math.isnan(x) else x


@dataclass
class Study:
    """Architectures (labels), their seeded test accuracies ``truth[arch][seed]``, and predictor
    scores (one per architecture, higher predicted better)."""

    labels: list[str]
    truth: list[list[float]]
    predictors: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.truth) != len(self.labels) or len({len(row) for row in self.truth}) > 1:
            raise NasirError("a study needs one row of seeds per architecture, all rows as long")
        for name, scores in self.predictors.items():
            if len(scores) != len(self.labels):
                raise NasirError(f"predictor {name}: {len(scores)} scores for {len(self.labels)} architectures")

    def reliability(self) -> Reliability | None:
        """None with a single seed (nothing to split)."""
        return split_half_reliability(self.truth) if self.truth and len(self.truth[0]) > 1 else None

    def correlations(self, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, dict[str, Interval]]:
        """Predictor -> statistic (``kendall_tau``, ``spearman_rho``) -> value and interval."""
        return {name: {stat: bootstrap(stat, scores, self.truth, resamples, level, seed) for stat in STATISTICS}
                for name, scores in self.predictors.items()}

    def to_json(self, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
        rel = self.reliability()
        return {
            "architectures": [{"label": label, "test_accuracy": row, "mean": sum(row) / len(row)}
                              for label, row in zip(self.labels, self.truth)],
            "reliability": None if rel is None else {"split_half": _finite(rel.half),
                                                     "spearman_brown": _finite(rel.full), "splits": rel.splits},
            "predictors": {name: {"scores": self.predictors[name],
                                  **{stat: {"value": _finite(iv.value), "low": _finite(iv.low), "high": _finite(iv.high),
                                            "level": iv.level, "resamples": iv.resamples} for stat, iv in stats.items()}}
                           for name, stats in self.correlations(resamples, level, seed).items()},
        }

    def report(self, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> list[str]:
        """The study as text: the ground truth's reliability, then one line per predictor."""
        seeds = len(self.truth[0]) if self.truth else 0
        means = [sum(row) / len(row) for row in self.truth]
        lines = [f"{len(self.labels)} architectures x {seeds} seeds; mean test accuracy {min(means):.4f} to "
                 f"{max(means):.4f}"]
        rel = self.reliability()
        lines.append(f"ground truth: {rel}" if rel else "ground truth: one seed, no split-half reliability")
        pct = round(100 * level)
        for name, stats in self.correlations(resamples, level, seed).items():
            lines.append(f"{name:>10}: Kendall tau {stats['kendall_tau']}, Spearman rho {stats['spearman_rho']} "
                         f"({pct}% bootstrap intervals)")
        return lines
