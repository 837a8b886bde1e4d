"""topo-simplify (TopoNAS Alg. 1): Table II counts, fixpoint/idempotence, and training after rewriting."""

from __future__ import annotations

import pytest
import torch

from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.printer import print_graph
from nasir.lowering import lower
from nasir.passes._topo_stats import edge_counts
from nasir.passmanager import PassManager
from nasir.testing import carry_weights


def _darts(**kw):
    return parse_file(std_path("darts"), **{**dict(C=4, layers=3, steps=2, multiplier=2, pool_bn=False), **kw})


def test_table2_darts_edge_module_counts():
    """TopoNAS Table II: one DARTS edge goes 6+14=20 -> 6+8=14 -> 6+6=12 -> 3+6=9."""
    pm = PassManager.parse("pms,fms,reparam")
    graph = parse_file(std_path("darts"), C=4, layers=4, steps=4, multiplier=4, pool_bn=False)
    expected = [(6, 14), (6, 8), (6, 6), (3, 6)]
    current = graph
    seen = []
    for step, spec in enumerate([None, "pms", "fms", "reparam"]):
        if spec is not None:
            current = PassManager.parse(spec).run(current)
        counts = edge_counts(current)
        normal = [c for e, c in counts.items() if e.startswith("cells0.")]  # cell 0 is normal
        assert len(normal) == 14
        seen.append({(c.conv, c.other) for c in normal})
        assert seen[-1] == {expected[step]}, (spec, seen[-1])
    assert [c + o for c, o in expected] == [20, 14, 12, 9]
    # the pass manager reports the same per-edge counts after each pass
    pm.run(graph)
    notes = [" ".join(r.result.notes) for r in pm.records[1:]]
    for note, (c, o) in zip(notes, expected[1:]):
        assert f"{c}+{o}={c + o} x" in note, note


def test_topo_simplify_is_pms_then_fms_to_a_fixpoint_and_idempotent(topo):
    g = _darts()
    once, pm = topo.run(g, "topo-simplify")
    assert print_graph(once) == print_graph(PassManager.parse("pms,fms").run(g))
    twice, pm2 = topo.run(once, "topo-simplify")
    assert not pm2.records[-1].result.changed and print_graph(twice) == print_graph(once)
    # running the constituent passes on the fixpoint changes nothing either
    for spec in ("pms", "fms"):
        _, pm3 = topo.run(once, spec)
        assert not pm3.records[-1].result.changed


def test_recursion_reaches_choices_created_by_earlier_rewrites(topo):
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        e = one_of {
            a: relu -> bn(affine = false) -> conv(4, 3) -> relu -> conv(4, 3)
            b: relu -> bn(affine = false) -> conv(4, 5) -> relu -> conv(4, 5)
            c: relu -> max_pool(3, 1) -> conv(4, 1)
            d: conv(4, 3)
        }(x)
        output e
    }""")
    out, pm = topo.run(g, "topo-simplify")
    # level 1: relu shared by a, b, c; level 2 (inside the new choice): bn shared by a, b;
    # level 3: the floating relu between the two convs of a and b
    topo.filecheck(print_graph(out), """
        %e = choice %e covers=[[0, 1, 2], [3]] domain=[0, 1, 2, 3](%x)
        ^shared:
        %relu = relu(%x)
        %mix = choice %e covers=[[0, 1], [2]] domain=[0, 1, 2](%relu)
        ^shared:
        %bn = bn(affine=false)(%x)
        CHECK-NOT: ^shared
        %mix.first = choice %e covers=[[0], [1]] domain=[0, 1](%bn)
        %mix.relu_1 = relu(%mix.first)
        %mix = choice %e covers=[[0], [1]] domain=[0, 1](%mix.relu_1)
        ^c:
        %max_pool = max_pool(%x)
        ^d:
    """)
    assert pm.records[-1].result.stats["modules-shared"] == 2 + 1 + 1


def test_fixpoint_does_not_depend_on_what_ran_before(topo):
    """PMS can share the ReLU of a, b, c, FMS the BN -> ReLU between the convs of a, b, d: the two
    groupings conflict. topo-simplify used to take PMS's and leave d's BN -> ReLU unshared (13
    modules), while after `fms` it kept FMS's (12): the fixpoint depended on the order. It now undoes
    earlier sharing and takes the rewrite saving the most, whatever ran before."""
    g = parse_string("""
    network n() {
        input x: [4, 6, 6]
        e = one_of {
            a: relu -> conv(4, 3) -> bn(affine = false) -> relu -> conv(4, 3)
            b: relu -> conv(4, 5) -> bn(affine = false) -> relu -> conv(4, 5)
            c: relu -> conv(4, 1)
            d: max_pool(3, 1) -> conv(4, 1) -> bn(affine = false) -> relu -> conv(4, 1)
        }(x)
        output e
    }""")
    once, pm = topo.run(g, "topo-simplify")
    assert pm.records[-1].result.stats["modules-shared"] == 2 * 2 + 1
    topo.filecheck(print_graph(once), """
        %e = choice %e covers=[[0, 1, 3], [2]] domain=[0, 1, 2, 3](%x)
        ^floating:
        %first = choice %e covers=[[0, 1], [3]] domain=[0, 1, 3](%x)
        ^shared:
        %relu = relu(%x)
        %mix = choice %e covers=[[0], [1]] domain=[0, 1](%relu)
        %bn = bn(affine=false)(%first)
        CHECK-NEXT: %relu_1 = relu(%bn)
        CHECK-NEXT: %second = choice %e covers=[[0], [1], [3]] domain=[0, 1, 3](%relu_1)
        ^c:
    """)
    for before in ("pms", "fms", "pms,fms", "fms,pms", "topo-simplify"):
        again, pm = topo.run(g, f"{before},topo-simplify")
        assert print_graph(again) == print_graph(once), before
    assert not pm.records[-1].result.changed


def test_a_module_hoisted_twice_gets_its_name_back_when_undone(topo):
    """The trailing BN of a, b, d is hoisted out of FMS' ``second`` (``second.bn_1``), then out of
    ``e`` (``e.second.bn_1``). Undoing used to put it back as ``second.bn_1`` in members that no
    longer have a ``second``, so a second run named it ``e.second.second.bn_1``: not idempotent
    (found by the long run of the generated spaces, space 449)."""
    g = parse_string("""
    network n() {
        input x: [4, 4, 4]
        e = one_of {
            a: relu -> dwconv(3) -> conv(4, 1) -> bn(affine = false) -> relu -> dwconv(3) -> conv(4, 1) -> bn(affine = false)
            b: relu -> dwconv(5) -> conv(4, 1) -> bn(affine = false) -> relu -> dwconv(5) -> conv(4, 1) -> bn(affine = false)
            c: conv(4, 3) -> bn(affine = false)
            d: dwconv(3) -> conv(4, 1) -> bn(affine = false) -> relu -> conv(4, 3) -> bn(affine = false)
        }(x)
        output e
    }""")
    once, _ = topo.run(g, "topo-simplify")
    topo.filecheck(print_graph(once), """
        %e.second.bn_1 = bn(affine=false)(%e)
    """)
    twice, pm = topo.run(once, "topo-simplify")
    assert not pm.records[-1].result.changed and print_graph(twice) == print_graph(once)


def test_a_shared_module_named_after_an_expanded_choice_gets_its_name_back(topo):
    """The trailing BN of sep3/sep5 is hoisted out of FMS' ``second`` (``second.bn_1``), then PMS
    shares it with the nest candidate's BN under that name. Undoing the PMS group used to give every
    member ``second.bn_1``, although none has a ``second`` any more (generated space 730)."""
    g = parse_string("""
    network n() {
        input x: [4, 6, 6]
        e = one_of {
            sep3: relu -> dwconv(3) -> conv(4, 1) -> bn(affine = false) -> relu -> dwconv(3, dilation = 2) -> conv(4, 1) -> bn(affine = false)
            pair3: dwconv(3) -> conv(4, 1)
            cbr1: conv(4, 1) -> bn(affine = false) -> relu -> conv(4, 1) -> bn(affine = false)
            conv1: conv(4, 1)
            sep5: relu -> dwconv(5, dilation = 2) -> conv(4, 1) -> bn(affine = false) -> relu -> dwconv(5, dilation = 2) -> conv(4, 1) -> bn(affine = false)
            nest: one_of {
                dil3: relu -> dwconv(3) -> conv(4, 1) -> bn(affine = false)
                rcb5: relu -> conv(4, 5) -> bn(affine = false)
                act: conv(4, 5) -> relu
            } -> bn(affine = false)
        }(x)
        output e
    }""")  # noqa: E501 (the candidates are the generated space's, on one line each)
    once, _ = topo.run(g, "topo-simplify")
    topo.filecheck(print_graph(once), "%second.bn_1 = bn(affine=false)(%mix)")
    twice, pm = topo.run(once, "topo-simplify")
    assert not pm.records[-1].result.changed and print_graph(twice) == print_graph(once)


def test_exact_mode_is_exact_float64(topo):
    before, after, _, pm = topo.compare(_darts(), "topo-simplify{approximate=false},reparam")
    assert pm.exact
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("space,kw", [
    ("darts", dict(C=4, layers=3, steps=2, multiplier=2, pool_bn=False)),
    ("darts", dict(C=4, layers=3, steps=2, multiplier=2)),
    ("nb201", dict(C=4, N=1)),
])
def test_rewritten_supernet_trains_and_keeps_its_readout(space, kw):
    graph = parse_file(std_path(space), **kw)
    out = PassManager.parse("topo-simplify,reparam{kernel_norm=true}").run(graph)
    before = lower(graph, "supernet", seed=0)
    model = lower(out, "supernet", seed=0)
    with torch.no_grad():
        for p in before.arch_parameters():
            p.normal_()
    carry_weights(before, model, out)
    assert model.derive() == before.derive()  # the readout is the argmax of the original parameters
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.05, momentum=0.9)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-3)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    kernels = [(n, p) for n, p in model.named_parameters() if ".kernels." in n or ".pointwise." in n]
    assert kernels
    for name, p in list(model.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    w_opt.step()
    a_opt.step()
    loss2 = torch.nn.functional.cross_entropy(model(x), y)
    assert torch.isfinite(loss2)


def test_sampled_and_fixed_lowering_after_all_passes():
    from nasir.runtime import FixedSampler

    graph = _darts()
    out = PassManager.parse("topo-simplify,reparam{kernel_norm=true}").run(graph)
    x = torch.randn(2, 3, 8, 8)
    for pick in (0, 3, 5, 7):  # zero (dropped from the merged convs), identity, a sep conv, a dil conv
        arch = {a: pick for a in out.arch}
        sampled = lower(out, "sampled", sampler=FixedSampler(arch), seed=0)
        assert torch.isfinite(sampled(x)).all()
        assert lower(out, "fixed", arch=arch, seed=0)(x).shape == (2, 10)
