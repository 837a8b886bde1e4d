"""Elaboration: parameters, arithmetic, loops, conditionals, templates, choices, errors."""

from __future__ import annotations

import pytest

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.nodes import ChoiceNode, OpNode

SMALL = """
op block(C, k = 3) = conv(C, k) -> bn -> relu
network net(C = 4, depth = 3) {
    input x: [3, 8, 8]
    h = x
    for i in 0 .. depth {
        if i % 2 == 0 { layer[i] = block(C * (i + 1))(h) } else { layer[i] = block(C, k = 5)(h) }
        h = layer[i]
    }
    output h
}
"""


def test_loops_conditionals_arithmetic_and_defaults():
    g = parse_string(SMALL)
    convs = [n for n in g.body.nodes if isinstance(n, OpNode) and n.attrs.op == "conv"]
    assert [c.attrs.out_channels for c in convs] == [4, 4, 12]
    assert [c.attrs.kernel for c in convs] == [3, 5, 3]
    assert [c.name for c in convs] == ["layer0.conv", "layer1.conv", "layer2.conv"]
    assert g.body.outputs[0].shape == [12, 8, 8]


def test_overrides_change_parameters():
    g = parse_string(SMALL, C=2, depth=1)
    assert g.body.outputs[0].shape == [2, 8, 8]
    assert g.params == {"C": 2, "depth": 1}


def test_layer_and_value_choices():
    g = parse_string("""
    network n(C = 4) {
        input x: [3, 8, 8]
        a = one_of { small: conv(C, 3) big: conv(C, 5) -> bn }(x)
        b = conv(C, one_of[1, 3, 5], stride = 1)(a)
        output b
    }""")
    a, b = (n for n in g.body.nodes if isinstance(n, ChoiceNode))
    assert [c.name for c in a.candidates] == ["small", "big"]
    assert [c.name for c in b.candidates] == ["kernel1", "kernel3", "kernel5"]
    assert g.arch[b.arch].kind == "value"
    assert g.search_space_size() == 6


def test_template_value_choices_expand_to_products():
    g = parse_file(std_path("mbconv"), resolution=32)
    first_layer = next(n for _, n, _ in g.walk() if isinstance(n, ChoiceNode) and n.candidates[0].name == "k3_e3")
    assert [c.name for c in first_layer.candidates] == ["k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6"]


def test_nodes_carry_source_locations():
    g = parse_string(SMALL, filename="small.nas")
    conv = g.body["layer1.conv"]
    assert conv.loc.file == "small.nas" and conv.loc.line == 2


def test_block_and_gate_annotations():
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        block "stem" { h = conv(8, 3)(x) }
        gate 0.5 { y = conv(8, 3)(h) }
        output y
    }""")
    assert g.body["h"].block == "stem" and g.body["h"].budget is None
    assert g.body["y"].budget == 0.5 and g.body["y"].block is None


def test_imports_bring_templates(tmp_path):
    (tmp_path / "lib.nas").write_text("op cbr(C) = conv(C, 3) -> bn -> relu\n")
    main = tmp_path / "main.nas"
    main.write_text('import "lib.nas"\nimport "std/darts.nas"\nnetwork n() {\n input x: [3, 8, 8]\n'
                    ' y = (cbr(4) -> sep_conv(4, 3))(x)\n output y\n}\n')
    g = parse_file(main)
    assert g.name == "n"  # imported networks are not the entry
    assert g.body.outputs[0].shape == [4, 8, 8]


@pytest.mark.parametrize(
    "body, message, line",
    [
        ("y = convv(4, 3)(x)", "unknown name 'convv'", 3),
        ("y = conv(4, 3, strides = 2)(x)", "conv has no attribute 'strides'", 3),
        ("y = conv(kernel = 3)(x)", "attribute 'out_channels' is required", 3),
        ("y = conv(4, 3)(x)\n  z = sum(y, x)", "sum of mismatched shapes [4, 8, 8] and [3, 8, 8]", 4),
        ("y = conv(4, 3)(x) + 1", "operator '+' needs numbers", 3),
        ("y = linear(10)(x)", "linear expects flat features", 3),
        ("y = one_of { a: relu a: bn }(x)", "candidate name 'a' is used twice", 3),
    ],
)
def test_errors_point_at_the_dsl(body, message, line):
    text = f"network n() {{\n  input x: [3, 8, 8]\n  {body}\n  output y\n}}\n"
    with pytest.raises(NasirError) as info:
        parse_string(text, filename="e.nas")
    assert message in info.value.message
    assert info.value.loc.file == "e.nas" and info.value.loc.line == line


def test_darts_structure(darts_graph):
    g = darts_graph
    choices = [n for n in g.body.nodes if isinstance(n, ChoiceNode)]
    assert len(choices) == 8 * 14
    assert len(g.arch) == 28  # 14 normal + 14 reduce, shared across cells
    assert len(g.arch_users("normal.n3_4")) == 6 and len(g.arch_users("reduce.n3_4")) == 2
    assert g.arch["normal.n0_0"].candidates == [
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    assert g.body.outputs[0].shape == [10]


def test_overrides_parse_numbers_booleans_and_lists():
    from nasir.frontends.elaborate import parse_overrides

    assert parse_overrides(["C=8", "r=0.5", "bn=false", "widths=[16, 24]", "name=abc"]) == {
        "C": 8, "r": 0.5, "bn": False, "widths": [16, 24], "name": "abc"}
    with pytest.raises(NasirError, match="bad list"):
        parse_overrides(["widths=[16,"])
