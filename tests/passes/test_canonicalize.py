"""canonicalize is exact: the lowered function is unchanged (float64, train and eval mode)."""

from __future__ import annotations

from nasir.frontends.elaborate import parse_string
from nasir.ir.nodes import Candidate, ChoiceNode, InputNode, OpNode, OutputNode, Region
from nasir.ir.ops import Identity, ReLU
from nasir.testing import assert_exact


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
    out = assert_exact(g, "canonicalize", x_shape=(2, 3, 8, 8))
    assert [n.kind for n in out.body.nodes] == ["input", "op", "op", "output"]
    assert out.body.nodes[1].name == "a.only.conv"  # candidate path kept: weights keep their names


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
    out = assert_exact(g, "canonicalize", x_shape=(2, 3, 8, 8))
    assert [n.kind for n in out.body["y"].candidates[0].body.nodes] == ["input", "op", "output"]
