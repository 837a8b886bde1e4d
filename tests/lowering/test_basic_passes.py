"""canonicalize and dead-code are exact: the lowered function is unchanged (float64)."""

from __future__ import annotations

import torch

from nasir.frontends.elaborate import parse_string
from nasir.ir.nodes import Candidate, ChoiceNode, InputNode, OpNode, OutputNode, Region
from nasir.ir.ops import Identity, ReLU
from nasir.lowering import lower
from nasir.passmanager import PassManager
from nasir.testing import assert_equivalent


def _equal_after(graph, pipeline):
    after_graph = PassManager.parse(pipeline).run(graph)
    assert_equivalent(graph, after_graph, x_shape=(2, 3, 8, 8))
    return after_graph


def test_canonicalize_folds_identity_single_sum_and_single_choice():
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        a = one_of { only: conv(4, 3) -> relu }(x)
        b = sum([a])
        output b
    }""")
    # a pass left an identity behind
    g.body.nodes.insert(2, OpNode(name="idle", inputs=["a"], attrs=Identity()))
    g.body["output"].inputs = ["idle"]
    g.body.touch()
    out = _equal_after(g, "canonicalize")
    assert [n.kind for n in out.body.nodes] == ["input", "op", "op", "output"]
    assert out.body.nodes[1].name == "a.only.conv"  # candidate path kept: weights keep their names


def test_dead_code_removes_unused_nodes_and_arch_params():
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        unused = one_of { a: conv(4, 3) b: conv(4, 5) }(x)
        y = conv(4, 3)(x)
        output y
    }""")
    out = _equal_after(g, "dead-code")
    assert "unused" not in out.body and not out.arch


def test_passes_recurse_into_candidates():
    region = Region()
    region.add(InputNode(name="x"))
    region.add(OpNode(name="r", inputs=["x"], attrs=ReLU()))
    region.add(OpNode(name="i", inputs=["r"], attrs=Identity()))
    region.add(OutputNode(name="out", inputs=["i"]))
    g = parse_string("network n() {\n input x: [3, 8, 8]\n y = one_of { a: relu b: conv(3, 1) }(x)\n output y\n}\n")
    choice = g.body["y"]
    assert isinstance(choice, ChoiceNode)
    choice.candidates[0] = Candidate(name="a", body=region)
    out = _equal_after(g, "canonicalize")
    assert [n.kind for n in out.body["y"].candidates[0].body.nodes] == ["input", "op", "output"]


def test_pass_manager_reports_statistics(tiny_darts):
    pm = PassManager.parse("canonicalize,dead-code")
    pm.run(tiny_darts)
    report = pm.report()
    assert report.splitlines()[0].split()[:3] == ["pass", "exact", "ms"]
    assert [r.name for r in pm.records] == ["input", "canonicalize", "dead-code"]
    assert pm.records[-1].stats.params == pm.records[0].stats.params


def test_pass_manager_without_statistics_gives_the_same_graph(tiny_darts):
    """``stats=False`` (a plain ``nasir compile``) skips the measuring, not the work."""
    quiet = PassManager.parse("canonicalize,dead-code", stats=False)
    out = quiet.run(tiny_darts)
    assert out.to_json() == PassManager.parse("canonicalize,dead-code").run(tiny_darts).to_json()
    assert all(r.stats is None and r.report_lines == [] for r in quiet.records)
    assert quiet.report().splitlines()[2].split()[3:7] == ["-", "-", "-", "-"]


def test_pass_manager_copies_its_input_unless_told_not_to(tiny_darts):
    before = tiny_darts.to_json()
    out = PassManager.parse("dead-code,canonicalize").run(tiny_darts)
    assert tiny_darts.to_json() == before and out is not tiny_darts
    assert PassManager.parse("canonicalize", copy_input=False).run(tiny_darts) is tiny_darts


def test_fix_arch_then_canonicalize_equals_fixed_lowering(tiny_darts, tmp_path):
    import json

    g = tiny_darts
    arch = {a: ("none" if i % 3 == 0 else "sep_conv_3x3" if i % 3 == 1 else "skip_connect") for i, a in enumerate(g.arch)}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"arch": arch}))
    fixed_graph = PassManager.parse(f"fix-arch{{arch={path}}},canonicalize,dead-code").run(g)
    assert not fixed_graph.arch and fixed_graph.search_space_size() == 1
    for node in fixed_graph.body.nodes:  # a zero survives only where every term of its sum is zero
        if node.kind == "sum":
            kinds = [fixed_graph.body[i].kind == "op" and fixed_graph.body[i].attrs.op == "zero" for i in node.inputs]
            assert not any(kinds) or len(kinds) == 1
    a = lower(g, "fixed", arch=arch, seed=0).double().eval()
    b = lower(fixed_graph, "fixed", arch={}, seed=1).double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(b(x), a(x))
