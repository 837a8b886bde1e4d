"""pms: partial module sharing (TopoNAS 3.2.1): IR shape, exactness, approximation, weights."""

from __future__ import annotations

import pytest
import torch

from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.printer import print_graph
from nasir.passes._topo_stats import edge_counts
from nasir.passmanager import PassManager


@pytest.fixture
def darts():
    return parse_file(std_path("darts"), C=4, layers=3, steps=2, multiplier=2, pool_bn=False)


def test_darts_edge_groups_convs_under_shared_relu_and_bn(darts, topo):
    out, pm = topo.run(darts, "pms")
    topo.filecheck(topo.edge_text(out, "cells1.n0_0"), """
        %cells1.n0_0 = choice %reduce.n0_0 covers=[[0], [1], [2], [3], [4, 5, 6, 7]] domain=[0, 1, 2, 3, 4, 5, 6, 7]
        ^none:
        ^max_pool_3x3:
        ^avg_pool_3x3:
        ^skip_connect:
        ^shared:
        %relu = relu(%x)
        %mix = choice %reduce.n0_0 covers=[[4], [5], [6], [7]] domain=[4, 5, 6, 7](%relu)
        ^sep_conv_3x3:
        CHECK-NOT: relu(%x)
        %dwconv = dwconv(stride=2)(%x)
        %bn = bn(affine=false)(%conv)
        %relu_1 = relu(%bn)
        %conv_1 = conv(out_channels=8)(%dwconv_1)
        CHECK-NOT: bn_1
        ^dil_conv_5x5:
        %dwconv = dwconv(kernel=5, stride=2, dilation=2)(%x)
        %conv = conv(out_channels=8)(%dwconv)
        %out = output(%conv)
        %bn_1 = bn(affine=false)(%mix)
        %out = output(%bn_1)
    """)
    assert out.arch == darts.arch  # no new architecture parameters
    assert pm.records[-1].exactness == "approximate"
    assert any("approximate: trailing bn(affine=false)" in n for n in pm.records[-1].result.notes)


def test_darts_edge_counts_20_to_14(darts, topo):
    before = edge_counts(darts)
    out, _ = topo.run(darts, "pms")
    after = edge_counts(out)
    normal = [e for e in before if e.startswith("cells0.")]  # cell 0 is the normal cell at layers=3
    assert normal and all((before[e].conv, before[e].total) == (6, 20) for e in normal)
    assert all((after[e].conv, after[e].total) == (6, 14) for e in normal)


def test_leading_sharing_is_exact_float64(darts, topo):
    before, after, out, pm = topo.compare(darts, "pms{approximate=false}", x_shape=(2, 3, 8, 8))
    assert pm.exact and pm.records[-1].result.stats["pms-groups"] > 0
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)
    # only the leading ReLU was shared; every conv candidate still ends in its own BN
    topo.filecheck(topo.edge_text(out, "cells0.n0_0"), """
        ^shared:
        %relu = relu(%x)
        %mix = choice
        %out = output(%mix)
    """)


def test_trailing_bn_sharing_is_approximate_but_exact_at_a_one_hot_architecture(darts, topo):
    before, after, _, _ = topo.compare(darts, "pms", x_shape=(2, 3, 8, 8))
    assert not torch.allclose(before, after, rtol=1e-6, atol=1e-6)  # BN of a mixture != mixture of BNs
    # with all probability on one conv candidate, P_S = 1 and q is one-hot: nothing left to approximate
    before, after, _, _ = topo.compare(darts, "pms", x_shape=(2, 3, 8, 8), alpha=topo.one_hot_alpha(5))
    torch.testing.assert_close(after, before, rtol=1e-8, atol=1e-8)


SUBSET = """
network n() {
    input x: [3, 8, 8]
    h = conv(4, 3)(x)
    e = one_of {
        c: max_pool(3, 1) -> conv(4, 1)
        a: relu -> conv(4, 3) -> avg_pool(3, 1)
        b: relu -> conv(4, 5) -> avg_pool(3, 1)
        d: relu -> dwconv(3) -> bn(affine = false)
    }(h)
    output e
}
"""


def test_subset_group_weights_derive_from_the_original_parameter(topo):
    g = parse_string(SUBSET)
    out, _ = topo.run(g, "pms{approximate=false}")
    # relu is shared by a, b, d (3 members); the trailing avg_pool of a, b is linear, so shared too
    topo.filecheck(print_graph(out), """
        %e = choice %e covers=[[0], [1, 2, 3]] domain=[0, 1, 2, 3](%h)
        ^c:
        %max_pool = max_pool(%x)
        ^shared:
        %relu = relu(%x)
        %mix = choice %e covers=[[1, 2], [3]] domain=[1, 2, 3](%relu)
        ^shared:
        %mix = choice %e covers=[[1], [2]] domain=[1, 2](%x)
        %avg_pool = avg_pool(%mix)
        ^d:
        %dwconv = dwconv(%x)
        %bn = bn(affine=false)(%dwconv)
    """)
    before, after, _, _ = topo.compare(g, "pms{approximate=false}")
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)


def test_whole_choice_sharing_hoists_next_to_the_choice(topo):
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        e = one_of { a: relu -> conv(4, 3)  b: relu -> conv(4, 5)  c: relu -> dwconv(3) -> conv(4, 1) }(x)
        output e
    }""")
    out, _ = topo.run(g, "pms")
    topo.filecheck(print_graph(out), """
        %e.relu = relu(%x)
        %e = choice %e covers=[[0], [1], [2]] domain=[0, 1, 2](%e.relu)
        CHECK-NOT: relu
        %output = output(%e)
    """)
    assert edge_counts(out)["e"].total == edge_counts(g)["e"].total - 2
    before, after, _, _ = topo.compare(g, "pms")
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)


def test_parameterized_modules_are_never_shared(topo):
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        e = one_of { a: conv(4, 3) -> relu  b: conv(4, 3) -> bn }(x)
        output e
    }""")
    out, pm = topo.run(g, "pms")
    assert not pm.records[-1].result.changed and print_graph(out) == print_graph(g)


def test_derived_architecture_and_sampled_fixed_lowering_unchanged(darts):
    from nasir.lowering import lower

    out = PassManager.parse("pms").run(darts)
    before, after = lower(darts, "supernet", seed=0), lower(out, "supernet", seed=0)
    with torch.no_grad():
        for p in before.arch_parameters():
            p.copy_(torch.randn(p.numel()))
        after.arch.load_state_dict(before.arch.state_dict())
    assert after.derive() == before.derive()
    assert out.search_space_size() == darts.search_space_size()
    arch = {a: 6 for a in out.arch}
    assert lower(out, "fixed", arch=arch)(torch.randn(1, 3, 8, 8)).shape == (1, 10)


def test_group_of_leading_candidates_is_renormalized(topo):
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        e = one_of { a: relu -> conv(4, 3)  b: relu -> conv(4, 5)  c: conv(4, 1) }(x)
        output e
    }""")
    before, after, _, _ = topo.compare(g, "pms")
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)
