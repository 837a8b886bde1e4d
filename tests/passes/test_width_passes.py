"""Passes on spaces with width choices: the TopoNAS passes keep them exact, fix-arch fixes them,
DNA and DANCE refuse them with a clear error."""

from __future__ import annotations

import json

import pytest
import torch

from nasir import parse_string
from nasir.diagnostics import NasirError
from nasir.ir.nodes import ChoiceNode, MergedConvNode
from nasir.ir.printer import print_graph
from nasir.lowering import lower
from nasir.passmanager import PassManager
from nasir.testing import assert_equivalent, assert_exact, filecheck, one_hot_alpha, run_pipeline

#: Width choices inside candidates (an inverted bottleneck; a kernel choice reading the chosen width)
#: beside plain candidates that PMS, FMS and reparam rewrite.
SPACE = """
network n() {
    input x: [2, 6, 6]
    w = one_of [2, 4]
    h = conv(4, 1)(x)
    e = one_of {
        wide: conv(w, 1) -> bn(affine = false) -> relu -> conv(4, 3)
        sep3: relu -> conv(4, 3) -> bn(affine = false) -> relu -> conv(4, 1)
        sep5: relu -> conv(4, 5) -> bn(affine = false) -> relu -> conv(4, 1)
        conv3: conv(4, 3)
        conv5: conv(4, 5)
    }(h)
    k = (conv(w, 1) -> relu -> dwconv(one_of [1, 3]) -> conv(4, 1))(e)
    output (global_avg_pool -> linear(2))(k)
}"""

X = (2, 2, 6, 6)


@pytest.fixture
def space():
    return parse_string(SPACE)


@pytest.mark.parametrize("pipeline", ["canonicalize,dead-code", "pms{approximate=false}",
                                      "topo-simplify{approximate=false}", "reparam"])
def test_exact_passes_stay_exact_with_width_choices(space, pipeline):
    after = assert_exact(space, pipeline, x_shape=X)
    assert after.search_space_size() == space.search_space_size() == 2 * 5 * 2  # widths x e x dwconv kernels
    assert_equivalent(space, after, x_shape=X, mode="fixed", arch={"e": 0, "e.wide.conv": 1, "k.dwconv": 1})


def test_reparam_merges_plain_convolutions_but_not_what_follows_a_width(space):
    after, pm = run_pipeline(space, "reparam")
    merged = [n for _, n, _ in after.walk() if isinstance(n, MergedConvNode)]
    assert [m.name for m in merged] == ["conv"]  # conv3 and conv5 of e, inside a group candidate
    assert isinstance(after.body["k.dwconv"], ChoiceNode)  # its dwconvs read the chosen width
    assert any("1 choice(s) read or write channels of width choices" in n for n in pm.records[-1].result.notes)


def test_fms_never_ties_a_width_choice_to_other_candidates(space):
    after, _ = run_pipeline(space, "fms")
    filecheck(print_graph(after), """
        CHECK: %e = choice %e
        CHECK: ^wide:
        CHECK-NEXT: %x = input 0
        CHECK-NEXT: %conv = conv(out_channels=4)(%x) width=%e.wide.conv[2, 4]
    """)
    # the separable stacks did share their floating BN -> ReLU
    assert any(isinstance(n, ChoiceNode) and n.name.endswith("first") for _, n, _ in after.walk())


def test_approximate_topo_simplify_keeps_the_fixed_networks(space):
    after, pm = run_pipeline(space, "topo-simplify,reparam")
    assert not pm.exact
    assert_equivalent(space, after, x_shape=X, mode="fixed", arch={"e": 1, "e.wide.conv": 0, "k.dwconv": 0})
    assert_equivalent(space, after, x_shape=X, alpha=one_hot_alpha(0))


def test_fix_arch_gives_plain_widths_equal_to_the_fixed_lowering(space, tmp_path):
    arch = {"e": "wide", "e.wide.conv": "w2", "k.dwconv": "kernel3"}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"arch": arch}))
    plain = PassManager.parse(f"fix-arch{{arch={path}}}").run(space)
    assert not plain.arch and plain.search_space_size() == 1
    filecheck(print_graph(plain), """
        CHECK: %e.wide.conv = conv(out_channels=2)(%h) : [2x6x6]
        CHECK: %k.conv = conv(out_channels=2)(%e.wide.conv_1) : [2x6x6]
    """)
    sup = lower(space, "supernet", seed=0).double()
    fixed = lower(space, "fixed", arch=arch, seed=1).double()
    fixed.load_state_dict(fixed.sliced_state_dict(sup.state_dict()))
    again = lower(plain, "fixed", arch={}, seed=2).double()
    again.load_state_dict(fixed.state_dict())
    x = torch.randn(*X, dtype=torch.float64)
    torch.testing.assert_close(again.train()(x), fixed.train()(x))


@pytest.mark.parametrize("pipeline, message", [
    ("dance-gates", "dance-gates: the graph has width choices"),
    ("dna-partition", "dna-partition: the graph has width choices"),
])
def test_dna_and_dance_refuse_width_choices(space, pipeline, message):
    with pytest.raises(NasirError, match=message):
        PassManager.parse(pipeline).run(space)
