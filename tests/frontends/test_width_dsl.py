"""The DSL's width choices: a value choice on a channel count, arithmetic on it, ``shared(...)``."""

from __future__ import annotations

import pytest

from nasir import parse_string
from nasir.diagnostics import NasirError
from nasir.ir.nodes import ChoiceNode
from nasir.ir.printer import print_graph
from nasir.testing import filecheck


def net(body: str, head: str = "") -> str:
    return f"{head}\nnetwork n(C = 4) {{\n    input x: [3, 8, 8]\n    {body}\n}}"


def fails(text: str) -> NasirError:
    with pytest.raises(NasirError) as err:
        parse_string(text)
    return err.value


def test_a_value_choice_on_out_channels_is_one_conv_of_the_largest_width():
    """The issue's example (it failed with 'candidates disagree on output shape')."""
    graph = parse_string(net("output (conv(one_of [8, 16, 24], 3) -> bn -> relu -> pwconv(C))(x)"))
    filecheck(print_graph(graph), """
        CHECK: %out.conv = conv(out_channels=24, kernel=3)(%x) width=%out.conv[8, 16, 24] : [24x8x8]
        CHECK-NEXT: %out.bn = bn(%out.conv) : [24x8x8]
        CHECK-NEXT: %out.relu = relu(%out.bn)
        CHECK-NEXT: %out.conv_1 = conv(out_channels=4)(%out.relu) : [4x8x8]
        CHECK: arch %out.conv : width<w8, w16, w24>
    """)
    assert not any(isinstance(n, ChoiceNode) for _, n, _ in graph.walk())


def test_pwconv_and_linear_widths():
    graph = parse_string(net("output (pwconv(one_of [2, 6]) -> global_avg_pool -> linear(one_of [5, 9]) -> linear(3))(x)"))
    filecheck(print_graph(graph), """
        CHECK: conv(out_channels=6)(%x) width=%out.conv[2, 6]
        CHECK: linear(out_features=9)(%out.global_avg_pool) width=%out.linear[5, 9]
    """)


def test_arithmetic_maps_a_value_choice_and_keeps_it_one_choice():
    """An MBConv expansion: ``C * one_of [3, 6]``; candidates keep the names of the listed values."""
    graph = parse_string(net("""
        e = one_of [3, 6]
        h = (conv(C * e, 1) -> bn -> relu6 -> dwconv(3) -> bn -> relu6 -> conv(C, 1))(x)
        g = (conv(2 * C * e - C, 1) -> relu -> conv(C, 1))(h)
        output sum(h, g)"""))
    filecheck(print_graph(graph), """
        CHECK: %h.conv = conv(out_channels=24)(%x) width=%h.conv[12, 24]
        CHECK: %g.conv = conv(out_channels=44)(%h.conv_1) width=%h.conv[20, 44]
        CHECK: arch %h.conv : width<w3, w6>
    """)
    assert graph.search_space_size() == 2
    negated = parse_string(net("output (conv(-(-one_of [2, 4]), 1) -> conv(1, 1))(x)"))
    assert negated.body["out.conv"].width.widths == [2, 4]


def test_a_whole_float_is_a_width():
    graph = parse_string(net("output (conv(8 * one_of [0.5, 1.0], 1) -> conv(1, 1))(x)"))
    assert graph.body["out.conv"].width.widths == [4, 8]
    assert graph.arch["out.conv"].candidates == ["w0p5", "w1p0"]


@pytest.mark.parametrize("body, message", [
    ("output (conv(5 * one_of [0.5, 1.0], 1) -> conv(1, 1))(x)", "needs whole numbers >= 1, got 2.5"),
    ("output (conv(one_of [1, 2] - 1, 1) -> conv(1, 1))(x)", "needs whole numbers >= 1, got 0"),
    ("output (conv(4 // one_of [3, 4], 1) -> conv(1, 1))(x)", "gives a width twice: [1, 1]"),
    ("output (conv(one_of [1, 2] * one_of [1, 2], 1) -> conv(1, 1))(x)", "operator '*' on two different value choices"),
    ("output conv(4, shared(one_of [1, 3]))(x)", "attribute 'kernel' cannot take a shared value choice"),
    ("output conv(shared(4), 1)(x)", "shared(...) takes one value choice"),
    ("output (conv(one_of [1, 2] // 0, 1) -> conv(1, 1))(x)", "division by zero"),
])
def test_bad_width_choices_are_located_errors(body, message):
    error = fails(net(body))
    assert message in error.message and error.loc is not None and error.loc.line == 4


def test_one_value_choice_used_twice_is_one_parameter_and_ties_the_widths():
    graph = parse_string(net("""
        w = one_of [2, 4]
        h = sum((conv(w, 3) -> bn)(x), conv(w, 1)(x))
        output (relu -> conv(C, 1) -> conv(w, 1) -> conv(1, 1))(h)"""))
    assert list(graph.arch) == ["h.conv"]
    assert [n.width.arch for _, n, _ in graph.walk() if getattr(n, "width", None)] == ["h.conv"] * 3
    assert graph.search_space_size() == 2


def test_shared_passes_a_value_choice_into_a_template():
    """Without ``shared`` a value choice given to a template expands it into candidates with weights
    of their own; with it the template's conv gets a width choice sharing one weight."""
    head = "op mb(C, e) = conv(C * e, 1) -> bn -> relu6 -> dwconv(3) -> bn -> relu6 -> conv(C, 1)"
    separate = parse_string(net("output mb(C, one_of [3, 6])(x)", head))
    assert isinstance(separate.body["out"], ChoiceNode) and separate.arch["out"].kind == "value"
    shared = parse_string(net("output mb(C, shared(one_of [3, 6]))(x)", head))
    filecheck(print_graph(shared), """
        CHECK: %out.conv = conv(out_channels=24)(%x) width=%out.conv[12, 24]
        CHECK: arch %out.conv : width<w3, w6>
    """)
    assert not any(isinstance(n, ChoiceNode) for _, n, _ in shared.walk())


def test_kernel_choice_of_a_conv_with_a_width_choice():
    """The kernel expands into candidates (own weights), the width is one parameter across them."""
    graph = parse_string(net("output (conv(one_of [2, 4], one_of [1, 3]) -> relu -> conv(1, 1))(x)"))
    assert {name: p.kind for name, p in graph.arch.items()} == {"out.conv": "value", "out.conv.kernel1.conv": "width"}
    assert graph.search_space_size() == 4


def test_cells_sharing_parameters_share_width_choices_of_other_sizes():
    head = """cell c(C) shares "normal" {
        input s
        output (conv(C * one_of [1, 2], 1) -> relu -> conv(C, 1))(s)
    }"""
    graph = parse_string(net("a = c(4)(x)\n b = c(8)(a)\n output b", head))
    widths = {n.width.arch: n.width.widths for _, n, _ in graph.walk() if getattr(n, "width", None)}
    assert list(graph.arch) == ["normal.out.conv"] and graph.arch["normal.out.conv"].candidates == ["w1", "w2"]
    assert widths == {"normal.out.conv": [8, 16]}  # the last cell's widths (the first gave [4, 8])
    assert graph.search_space_size() == 2


def test_a_value_choice_expanding_a_template_into_other_widths_hints_at_width_choices():
    error = fails(net("output b(one_of [2, 4])(x)", "op b(W) = conv(W, 3) -> bn"))
    assert "candidates disagree on output shape" in error.message and "shared(one_of [...])" in error.hint
