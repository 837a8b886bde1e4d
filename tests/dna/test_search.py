import random

import numpy as np
import pytest

from nasir.dna.errors import DNAError
from nasir.dna.search import brute_force, constrained_search, pareto_front, traversal_search


def _space(rng: random.Random, blocks: int, float_costs: bool = False):
    scores, costs = [], []
    for _ in range(blocks):
        n = rng.randint(1, 7)
        costs.append([rng.uniform(1, 20) if float_costs else rng.randint(1, 20) for _ in range(n)])
        # scores loosely anti-correlated with cost, with duplicates to exercise ties
        scores.append([round(1 / c + rng.uniform(0, 0.3), 2) for c in costs[-1]])
    return scores, costs


@pytest.mark.parametrize("seed", range(40))
def test_constrained_search_equals_brute_force(seed):
    rng = random.Random(seed)
    scores, costs = _space(rng, rng.randint(1, 5), float_costs=seed % 3 == 0)
    lo = sum(min(c) for c in costs)
    hi = sum(max(c) for c in costs)
    for limit in [lo, hi, None] + [rng.uniform(lo, hi) for _ in range(5)]:
        ref = brute_force(scores, costs, limit)
        got = constrained_search(scores, costs, limit)
        assert got.score == pytest.approx(ref.score, abs=1e-9)
        # the returned combination really has that score and fits
        assert got.score == pytest.approx(sum(scores[k][i] for k, i in enumerate(got.indices)), abs=1e-9)
        assert got.cost == pytest.approx(sum(costs[k][i] for k, i in enumerate(got.indices)))
        if limit is not None:
            assert got.cost <= limit + 1e-9
            paper = traversal_search(scores, costs, limit)
            assert paper.score == pytest.approx(ref.score, abs=1e-9)


@pytest.mark.parametrize("seed", range(15))
def test_pareto_front_equals_brute_force(seed):
    rng = random.Random(100 + seed)
    scores, costs = _space(rng, rng.randint(1, 4))
    front = pareto_front(scores, costs)
    import itertools

    points = [(sum(costs[k][i] for k, i in enumerate(c)), sum(scores[k][i] for k, i in enumerate(c)))
              for c in itertools.product(*(range(len(s)) for s in scores))]
    ref = []
    for cost, score in sorted(points):
        if not ref or score < ref[-1][1] - 1e-9:
            if ref and ref[-1][0] == cost:
                continue
            ref.append((cost, score))
    assert [p.cost for p in front] == [c for c, _ in ref]
    assert np.allclose([p.score for p in front], [s for _, s in ref])
    for p in front:
        assert p.cost == sum(costs[k][i] for k, i in enumerate(p.indices))


def test_large_space_is_fast_and_consistent():
    # 6 blocks of 2,000 paths each: 6.4e19 combinations, no enumeration possible
    rng = np.random.default_rng(0)
    costs = [rng.integers(100, 10_000, 2000) for _ in range(6)]
    scores = [1.0 / c + rng.uniform(0, 1e-3, 2000) for c in costs]
    limit = 0.4 * sum(int(c.max()) for c in costs)
    best = constrained_search(scores, costs, limit)
    front = pareto_front(scores, costs, limit)
    assert best.cost <= limit
    assert best.score == pytest.approx(min(p.score for p in front))


def test_errors():
    with pytest.raises(DNAError, match="no architecture satisfies"):
        constrained_search([[1.0], [2.0]], [[5], [5]], 9)
    with pytest.raises(ValueError, match="as many costs"):
        constrained_search([[1.0, 2.0]], [[1]], 3)
    with pytest.raises(DNAError, match="finite"):
        constrained_search([[float("nan")]], [[1]], 3)
