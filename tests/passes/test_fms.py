"""fms: floating module sharing (TopoNAS 3.2.2) builds two tied series choices; approximate."""

from __future__ import annotations

import torch

from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.nodes import ChoiceNode
from nasir.ir.printer import print_graph
from nasir.passes._topo_stats import edge_counts


def _darts():
    return parse_file(std_path("darts"), C=4, layers=3, steps=2, multiplier=2, pool_bn=False)


def test_darts_sep_convs_share_their_middle_bn_relu(topo):
    g = _darts()
    out, pm = topo.run(g, "fms")
    topo.filecheck(topo.edge_text(out, "cells0.n0_0"), """
        %cells0.n0_0 = choice %normal.n0_0 covers=[[0], [1], [2], [3], [4, 5], [6], [7]]
        ^skip_connect:
        ^floating:
        %x = input 0
        %first = choice %normal.n0_0 covers=[[4], [5]] domain=[4, 5](%x)
        ^sep_conv_3x3:
        %relu = relu(%x)
        %dwconv = dwconv(%relu)
        %conv = conv(out_channels=4)(%dwconv)
        %out = output(%conv)
        ^sep_conv_5x5:
        %dwconv = dwconv(kernel=5)(%relu)
        %bn = bn(affine=false)(%first)
        %relu_1 = relu(%bn)
        %second = choice %normal.n0_0 covers=[[4], [5]] domain=[4, 5](%relu_1)
        ^sep_conv_3x3:
        %dwconv_1 = dwconv(%x)
        %bn_1 = bn(affine=false)(%conv_1)
        ^sep_conv_5x5:
        %out = output(%second)
        ^dil_conv_3x3:
        ^dil_conv_5x5:
    """)
    assert pm.records[-1].exactness == "approximate"
    assert any("floating bn(affine=false) -> relu" in n for n in pm.records[-1].result.notes)
    counts = edge_counts(out)
    assert (counts["cells0.n0_0"].conv, counts["cells0.n0_0"].total) == (6, 18)


def test_series_choices_are_tied_to_the_same_weights(topo):
    out, _ = topo.run(_darts(), "pms,fms")
    firsts = [n for p, n, _ in out.walk() if isinstance(n, ChoiceNode) and p.endswith(".first")]
    seconds = {p: n for p, n, _ in out.walk() if isinstance(n, ChoiceNode) and p.endswith(".second")}
    assert firsts and len(firsts) == len(seconds)
    for p, n, _ in ((p, n, r) for p, n, r in out.walk() if isinstance(n, ChoiceNode) and p.endswith(".first")):
        twin = seconds[p[: -len("first")] + "second"]
        assert (twin.arch, twin.covers, twin.domain) == (n.arch, n.covers, n.domain)
    assert out.arch == _darts().arch and out.search_space_size() == _darts().search_space_size()


def test_fms_changes_the_function_except_at_a_one_hot_architecture(topo):
    before, after, _, _ = topo.compare(_darts(), "fms")
    assert not torch.allclose(before, after, rtol=1e-6, atol=1e-6)
    before, after, _, _ = topo.compare(_darts(), "fms", alpha=topo.one_hot_alpha(4))
    torch.testing.assert_close(after, before, rtol=1e-8, atol=1e-8)


def test_whole_choice_fms_is_hoisted_and_leading_or_trailing_modules_are_not_floating(topo):
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        e = one_of {
            a: conv(4, 3) -> relu -> bn(affine = false) -> conv(4, 3)
            b: conv(4, 5) -> relu -> bn(affine = false) -> conv(4, 1)
        }(x)
        f = one_of { a: relu -> conv(4, 3)  b: relu -> conv(4, 5) }(e)
        output f
    }""")
    out, pm = topo.run(g, "fms")
    topo.filecheck(print_graph(out), """
        %e.first = choice %e covers=[[0], [1]] domain=[0, 1](%x)
        %e.relu = relu(%e.first)
        %e.bn = bn(affine=false)(%e.relu)
        %e = choice %e covers=[[0], [1]] domain=[0, 1](%e.bn)
        %f = choice %f covers=[[0], [1]] domain=[0, 1](%e)
        ^a:
        %relu = relu(%x)
    """)
    assert edge_counts(out)["e"].total == edge_counts(g)["e"].total - 2
    before, after, _, _ = topo.compare(g, "fms", alpha=topo.one_hot_alpha(1))
    torch.testing.assert_close(after, before, rtol=1e-8, atol=1e-8)
