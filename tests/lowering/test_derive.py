"""derive() names the architecture and follows the DARTS rule; the derived network is genotype-shaped
(issue 18): std/darts.nas with hand-set alphas, the published DARTS_V2 genotype, the README recipe."""

from __future__ import annotations

import operator

import pytest
import torch

from nasir.frontends.elaborate import parse_file, std_path
from nasir.ir.arch import Architecture
from nasir.ir.genotype import DARTS_V2, from_genotype, to_genotype
from nasir.lowering import lower
from nasir.runtime import FixedSampler


@pytest.fixture(scope="module")
def darts():
    return parse_file(std_path("darts"), C=4, layers=3)


def _set_alphas(model, graph, genotype: Architecture) -> None:
    """Alphas whose DARTS derivation is ``genotype``: a kept edge's op is heavy; a dropped edge puts
    even more weight on 'none' (which the ranking ignores) and little on everything else."""
    with torch.no_grad():
        for key, alpha in model.arch.items():
            name = model.arch_names[key]
            cands = graph.arch[name].candidates
            pick = genotype.arch[name]
            alpha.zero_()
            if pick == "none":
                alpha[cands.index("none")] = 9.0
                alpha[cands.index("avg_pool_3x3")] = 0.5
            else:
                alpha[cands.index(pick)] = 4.0


def test_derive_keeps_two_edges_per_node_with_names(darts):
    model = lower(darts, "supernet", seed=0)
    v2 = from_genotype(DARTS_V2, darts)
    _set_alphas(model, darts, v2)
    derived = model.derive()
    assert isinstance(derived, Architecture) and derived.network == "darts"
    assert derived.arch == v2.arch  # plain argmax would have kept 'none' on the dropped edges and nothing else
    assert to_genotype(derived, darts) == to_genotype(v2, darts)


def test_derive_then_lower_is_a_genotype_shaped_network(darts):
    model = lower(darts, "supernet", seed=0)
    _set_alphas(model, darts, from_genotype(DARTS_V2, darts))
    fixed = lower(darts, mode="fixed", arch=model.derive()).eval()  # the README recipe
    adds = [n for n in fixed.graph.nodes if n.target is operator.add]
    assert len(adds) == 4 * 3  # each node of each of the 3 cells sums its 2 kept edges, nothing else
    assert "zero" not in fixed.code and "Zero" not in {type(m).__name__ for m in fixed.modules()}
    assert fixed(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_dropped_edges_leave_the_function_unchanged(tiny_darts):
    genotype = ("Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('max_pool_3x3', 2), ('dil_conv_5x5', 0)], "
                "normal_concat=range(2, 4), reduce=[('avg_pool_3x3', 0), ('skip_connect', 1), ('sep_conv_5x5', 1), "
                "('skip_connect', 2)], reduce_concat=range(2, 4))")
    arch = from_genotype(genotype, tiny_darts)
    picks = {a: tiny_darts.arch[a].candidates.index(c) for a, c in arch.arch.items()}
    path = lower(tiny_darts, "sampled", sampler=FixedSampler(picks), seed=0).eval()
    fixed = lower(tiny_darts, "fixed", arch=genotype).eval()
    state = path.state_dict()
    fixed.load_state_dict({k: state[k] for k in fixed.state_dict()})  # fixed names are the supernet's names
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fixed(x), path(x), rtol=1e-5, atol=1e-6)
