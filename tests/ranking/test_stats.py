"""Rank statistics on synthetic predictors whose population tau / rho are known, and split-half
reliability on synthetic seeds whose reliability is known."""

from __future__ import annotations

import math

import pytest
import torch

from nasir.diagnostics import NasirError
from nasir.ranking.stats import bootstrap, kendall_tau, spearman_rho, split_half_reliability


def _truth(n: int, seeds: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(true quality [n], seeded accuracies [n, seeds] = quality + Gaussian noise)."""
    g = torch.Generator().manual_seed(seed)
    quality = torch.randn(n, generator=g, dtype=torch.float64)
    return quality, quality.unsqueeze(1) + noise * torch.randn(n, seeds, generator=g, dtype=torch.float64)


def test_ties_follow_tau_b_and_average_ranks():
    x, y = [1, 2, 2, 3], [1, 2, 3, 3]
    assert kendall_tau(x, y) == pytest.approx(4 / 5)  # 4 concordant pairs, one tie in each
    assert spearman_rho(x, y) == pytest.approx(3.75 / 4.5)  # ranks [1, 2.5, 2.5, 4] and [1, 2, 3.5, 3.5]
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize("statistic", ["kendall_tau", "spearman_rho"])
def test_a_perfect_predictor_gives_1_and_a_reversed_one_minus_1(statistic):
    quality, truth = _truth(40, 3, noise=0.0)
    same = bootstrap(statistic, quality.tolist(), truth, resamples=200)
    assert same.value == pytest.approx(1) and same.contains(1) and same.low == pytest.approx(1)
    reversed_ = bootstrap(statistic, (-quality).tolist(), truth, resamples=200)
    assert reversed_.value == pytest.approx(-1) and reversed_.contains(-1) and reversed_.high == pytest.approx(-1)


def test_a_noisy_predictor_lands_around_its_population_value():
    # predictor and truth bivariate normal with correlation r: tau = 2/pi asin r, rho = 6/pi asin(r/2)
    r, n = 0.6, 150
    g = torch.Generator().manual_seed(3)
    truth = torch.randn(n, generator=g, dtype=torch.float64)
    predictor = r * truth + math.sqrt(1 - r * r) * torch.randn(n, generator=g, dtype=torch.float64)
    tau = bootstrap("kendall_tau", predictor.tolist(), truth.unsqueeze(1), resamples=400)
    rho = bootstrap("spearman_rho", predictor.tolist(), truth.unsqueeze(1), resamples=400)
    assert tau.contains(2 / math.pi * math.asin(r)) and rho.contains(6 / math.pi * math.asin(r / 2))
    assert 0.1 < tau.high - tau.low < 0.3  # about 4 standard errors of tau at n = 150
    assert tau.low < tau.value < tau.high


def test_resampling_seeds_widens_the_interval_of_a_noisy_truth():
    quality, truth = _truth(30, 3, noise=1.0)
    with_seeds = bootstrap("kendall_tau", quality.tolist(), truth, resamples=500)
    without = bootstrap("kendall_tau", quality.tolist(), truth, resamples=500, resample_seeds=False)
    assert with_seeds.value == without.value
    assert with_seeds.high - with_seeds.low > without.high - without.low


def test_the_same_seed_gives_the_same_interval():
    quality, truth = _truth(20, 3, noise=0.5)
    assert bootstrap("spearman_rho", quality.tolist(), truth, 200, seed=4) == bootstrap(
        "spearman_rho", quality.tolist(), truth, 200, seed=4)


def test_split_half_reliability_of_known_noise():
    _, exact = _truth(50, 4, noise=0.0)
    assert split_half_reliability(exact).half == pytest.approx(1)
    # halves of 2 seeds: Pearson r = 1 / (1 + noise^2 / 2) = 2/3, Spearman 6/pi asin(r / 2)
    _, noisy = _truth(400, 4, noise=1.0, seed=1)
    rel = split_half_reliability(noisy)
    assert rel.splits == 3  # {0,1}|{2,3}, {0,2}|{1,3}, {0,3}|{1,2}
    assert rel.half == pytest.approx(6 / math.pi * math.asin(1 / 3), abs=0.06)
    assert rel.full == pytest.approx(2 * rel.half / (1 + rel.half))
    g = torch.Generator().manual_seed(2)
    noise_only = torch.randn(400, 3, generator=g, dtype=torch.float64)
    assert abs(split_half_reliability(noise_only).half) < 0.12
    assert split_half_reliability(noise_only).splits == 3  # {0}|{1,2}, {1}|{0,2}, {2}|{0,1}
    assert math.isnan(split_half_reliability([[1, 3], [2, 2], [3, 1]]).full)  # halves in opposite orders


def test_bad_shapes_are_clear_errors():
    with pytest.raises(NasirError, match="at least 3 architectures"):
        bootstrap("kendall_tau", [1, 2], [[1], [2]])
    with pytest.raises(NasirError, match="unknown statistic"):
        bootstrap("pearson", [1, 2, 3], [[1], [2], [3]])
    with pytest.raises(NasirError, match="2 seeds"):
        split_half_reliability([[1], [2], [3]])
