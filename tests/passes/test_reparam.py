"""reparam: kernel merging is exact (float64, random weights) and only merges what it can."""

from __future__ import annotations

import pytest
import torch

from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.nodes import MergedConvNode
from nasir.ir.printer import print_graph
from nasir.passmanager import PassManager


def _space(candidates: str, c: int = 4, stride_in: int = 1) -> str:
    return f"""
    network n() {{
        input x: [3, 9, 9]
        h = conv({c}, 3, {stride_in})(x)
        e = one_of {{ {candidates} }}(h)
        output e
    }}"""


def _exact(topo, graph, pipeline="reparam", x_shape=(2, 3, 9, 9), **kw):
    before, after, out, pm = topo.compare(graph, pipeline, x_shape=x_shape, **kw)
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)
    return out, pm


def test_dense_identity_zero_and_uniform_pool_merge_into_one_conv(topo):
    g = parse_string(_space("""
        none: zero  skip: identity  c3: conv(4, 3)  c5: conv(4, 5)  d3: conv(4, 3, dilation = 2)
        avg: avg_pool(3, 1, count_include_pad = true)"""))
    out, pm = _exact(topo, g)
    topo.filecheck(print_graph(out), "%e = merged_conv %e covers=[[1], [2], [3], [4], [5]] domain=[0, 1, 2, 3, 4, 5] "
                                     "[skip:1x1d1, c3:3x3d1, c5:5x5d1, d3:3x3d2, avg:3x3d1] stride=1 normalize=false(%h)")
    assert pm.exact
    stats = pm.records[-1].result.stats
    assert stats["merged-convs"] == 1 and stats["merged-identity"] == 1 and stats["merged-avg_pool"] == 1


def test_border_dependent_pooling_and_nonlinear_candidates_stay_unmerged(topo):
    # count_include_pad=false divides by the number of valid taps at the border: not a convolution
    g = parse_string(_space("""
        avg: avg_pool(3, 1, count_include_pad = false)  c3: conv(4, 3)  c5: conv(4, 5)  r: relu -> conv(4, 3)
        b: dwconv(3, bias = true) -> conv(4, 1)"""))
    out, _ = _exact(topo, g)
    topo.filecheck(print_graph(out), """
        %e = choice %e covers=[[0], [1, 2], [3], [4]] domain=[0, 1, 2, 3, 4](%h)
        ^avg:
        %avg_pool = avg_pool(count_include_pad=false)(%x)
        ^merged:
        %conv = merged_conv %e covers=[[1], [2]] domain=[1, 2] [c3:3x3d1, c5:5x5d1]
        ^r:
        %relu = relu(%x)
        ^b:
        %dwconv = dwconv(bias=true)(%x)
    """)


def test_biased_convs_merge_with_their_biases_weighted(topo):
    """sum_i q_i (W_i * x + b_i) = (sum_i q_i W_i) * x + sum_i q_i b_i: exact, the biases stay learnable."""
    from nasir.ir.cost import graph_cost

    g = parse_string(_space("""
        none: zero  skip: identity  c3: conv(4, 3, bias = true)  c1: conv(4, 1)  d5: dwconv(5, bias = true)
        c5: conv(4, 5, bias = true)"""))
    out, _ = _exact(topo, g)
    topo.filecheck(print_graph(out), "[skip:1x1d1, c3:3x3d1+bias, c1:1x1d1, c5:5x5d1+bias]")
    assert graph_cost(out).params == graph_cost(g).params  # every weight and bias is still there, once
    for alpha in (topo.one_hot_alpha(2), topo.one_hot_alpha(5)):
        before, after, _, _ = topo.compare(g, "reparam", x_shape=(2, 3, 9, 9), alpha=alpha)
        torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)
    normalized, _ = topo.run(g, "reparam{kernel_norm=true}")  # kernels are standardized, biases left as they are
    merged = next(n for _, n, _ in normalized.walk() if isinstance(n, MergedConvNode))
    assert merged.normalize and [k.bias for k in merged.kernels] == [False, True, False, True]


def test_factorized_depthwise_pointwise_pairs_stride_two(topo):
    g = parse_string(_space("""
        none: zero(2)  s3: dwconv(3, 2) -> conv(4, 1)  s5: dwconv(5, 2) -> conv(4, 1)
        d3: dwconv(3, 2, dilation = 2) -> conv(4, 1)"""))
    out, _ = _exact(topo, g)
    node = out.body["e"]
    assert isinstance(node, MergedConvNode) and node.stride == 2 and node.shape == [4, 5, 5]
    assert [k.pointwise for k in node.kernels] == [True, True, True]
    assert node.kernels[0].weight_names == ["e.s3.dwconv", "e.s3.conv"]


def test_identity_and_pool_join_factorized_and_depthwise_classes(topo):
    g = parse_string(_space("""
        skip: identity  s3: dwconv(3) -> conv(4, 1)  s5: dwconv(5) -> conv(4, 1)
        avg: avg_pool(5, 1, count_include_pad = true)"""))
    out, _ = _exact(topo, g)
    assert isinstance(out.body["e"], MergedConvNode)
    g = parse_string(_space("skip: identity  a: dwconv(3)  b: dwconv(5, dilation = 2)"))
    out, _ = _exact(topo, g)
    assert out.body["e"].groups == 4


def test_grouped_convs_merge_and_classes_stay_apart(topo):
    g = parse_string(_space("""
        g3: conv(4, 3, groups = 2)  g5: conv(4, 5, groups = 2)  d3: conv(4, 3)  d1: conv(4, 1)"""))
    out, pm = _exact(topo, g)
    assert pm.records[-1].result.stats["merged-convs"] == 2
    topo.filecheck(print_graph(out), """
        %e = choice %e covers=[[0, 1], [2, 3]] domain=[0, 1, 2, 3](%h)
        ^merged:
        merged_conv %e covers=[[0], [1]] domain=[0, 1] [g3:3x3d1, g5:5x5d1]
        ^merged_1:
        merged_conv %e covers=[[2], [3]] domain=[2, 3] [d3:3x3d1, d1:1x1d1]
    """)


def test_even_or_off_centre_kernels_are_not_merged(topo):
    g = parse_string(_space("a: conv(4, 2, padding = 0)  b: conv(4, 2, padding = 0)", stride_in=1))
    out, pm = topo.run(g, "reparam")
    assert not pm.records[-1].result.changed


@pytest.mark.parametrize("space,kw,pipeline", [
    ("darts", dict(C=4, layers=3, steps=2, multiplier=2, pool_bn=False), "topo-simplify"),
    ("darts", dict(C=4, layers=3, steps=2, multiplier=2), "pms"),
    ("nb201", dict(C=4, N=1), "pms"),
])
def test_exact_on_std_spaces_after_topology_passes(topo, space, kw, pipeline):
    simplified = PassManager.parse(pipeline).run(parse_file(std_path(space), **kw))
    out, pm = _exact(topo, simplified, x_shape=(2, 3, 8, 8))  # DARTS' factorized reduce needs even sizes
    assert pm.exact and any(isinstance(n, MergedConvNode) for _, n, _ in out.walk())


def test_nested_merged_group_is_absorbed_exactly(topo):
    # PMS with approximate=false shares the trailing (linear) avg_pool of a and b only; reparam then
    # merges the inner {a, b} and absorbs it into the outer merge with c: p_i / P_S * P_S / P = p_i / P
    g = parse_string(_space("""
        a: conv(4, 3) -> avg_pool(3, 1)  b: conv(4, 5) -> avg_pool(3, 1)  c: conv(4, 1)"""))
    out, _ = topo.run(g, "reparam")
    assert not isinstance(out.body["e"], MergedConvNode)  # a, b end in a pool: not linear convs
    g2 = PassManager.parse("pms{approximate=false},reparam").run(g)
    topo.filecheck(print_graph(g2), """
        ^shared:
        %mix = merged_conv %e covers=[[0], [1]] domain=[0, 1]
        %avg_pool = avg_pool(%mix)
    """)
    flat = parse_string(_space("a: conv(4, 3)  b: conv(4, 5)  c: conv(4, 1)  z: zero"))
    nested = PassManager.parse("reparam").run(flat)
    assert nested.body["e"].covers == [[0], [1], [2]] and nested.body["e"].domain == [0, 1, 2, 3]


def test_reparam_is_idempotent(topo):
    g = PassManager.parse("topo-simplify").run(parse_file(std_path("darts"), C=4, layers=3, steps=2, multiplier=2))
    once, _ = topo.run(g, "reparam")
    twice, pm = topo.run(once, "reparam")
    assert not pm.records[-1].result.changed and print_graph(twice) == print_graph(once)
