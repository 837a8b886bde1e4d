import math

import pytest

from nasir.dna.errors import DNAError
from nasir.dna.metrics import kendall_tau, pearson, rank_report, rankdata, spearman


def test_known_values():
    # Reference values from SciPy's documentation examples.
    assert pearson([1, 2, 3, 4, 5], [10, 9, 2.5, 6, 4]) == pytest.approx(-0.7426106572325057, abs=1e-12)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233, abs=1e-12)
    assert kendall_tau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) == pytest.approx(-0.47140452079103173, abs=1e-12)


def test_perfect_and_reversed_rankings():
    x = [0.3, 0.1, 0.9, 0.5]
    assert kendall_tau(x, x) == 1.0
    assert spearman(x, [-v for v in x]) == pytest.approx(-1.0)
    assert pearson(x, [2 * v + 1 for v in x]) == pytest.approx(1.0)
    # monotone but non-linear: rank metrics are 1, Pearson is not
    y = [math.exp(10 * v) for v in x]
    assert kendall_tau(x, y) == 1.0 and spearman(x, y) == pytest.approx(1.0)
    assert pearson(x, y) < 0.99


def test_ties_and_errors():
    assert rankdata([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1])
    with pytest.raises(DNAError):
        spearman([1], [1])
    assert set(rank_report([1, 2, 3], [1, 3, 2])) == {"kendall_tau", "spearman_rho", "pearson_r"}
