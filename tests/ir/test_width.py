"""Width choices in the IR: printed form, JSON, verifier rules, which layers follow, counts and costs."""

from __future__ import annotations

import pytest

from nasir import parse_string
from nasir.diagnostics import VerificationError
from nasir.ir.cost import arch_cost, graph_cost, width_costs
from nasir.ir.graph import Graph
from nasir.ir.nodes import GateNode, OpNode, WidthChoice
from nasir.ir.printer import print_graph
from nasir.ir.rewrite import insert_after, used_arch
from nasir.ir.verify import verify
from nasir.ir.width import WidthAnalysis, kept_features
from nasir.summary import summary
from nasir.testing import brute_force_size, filecheck

SPACE = """
network n() {
    input x: [3, 8, 8]
    w = one_of [4, 8]
    y = (conv(w, 3) -> bn -> relu -> dwconv(3))(x)
    z = sum(y, (conv(w, 1) -> bn)(x))
    c = concat(z, conv(2, 1)(x))
    h = (pwconv(6) -> global_avg_pool -> linear(one_of [3, 5, 7]) -> linear(2))(c)
    output h
}"""


def net(body: str) -> str:
    return "network n() {\n    input x: [3, 8, 8]\n    " + body + "\n}"


@pytest.fixture
def space() -> Graph:
    return parse_string(SPACE)


def test_printed_ir_shows_one_op_of_the_largest_width_and_its_choice(space):
    filecheck(print_graph(space), """
        CHECK: %y.conv = conv(out_channels=8, kernel=3)(%x) width=%y.conv[4, 8] : [8x8x8]
        CHECK-NEXT: %y.bn = bn(%y.conv) : [8x8x8]
        CHECK: %z.conv = conv(out_channels=8)(%x) width=%y.conv[4, 8] : [8x8x8]
        CHECK: %h.conv = conv(out_channels=6)(%c_1) : [6x8x8]
        CHECK: %h.linear = linear(out_features=7)(%h.global_avg_pool) width=%h.linear[3, 5, 7] : [7]
        CHECK: arch %y.conv : width<w4, w8>
        CHECK-NEXT: arch %h.linear : width<w3, w5, w7>
    """)


def test_json_round_trip_keeps_width_choices(space):
    again = Graph.from_json(space.to_json())
    assert again == space
    assert again.body["y.conv"].width == WidthChoice(arch="y.conv", widths=[4, 8])
    assert '"width"' not in parse_string(net("output conv(4, 1)(x)")).to_json()  # absent unless chosen


def test_the_analysis_finds_followers_consumers_and_offsets(space):
    uses = WidthAnalysis(space).uses
    # producers slice their outputs (and the linear reads the pooled conv: no width there)
    assert uses["y.conv"].out == ("y.conv", (4, 8)) and uses["y.conv"].inp is None
    # followers with weights or statistics slice their channels; relu and the sum need nothing
    assert {p for p, u in uses.items() if u.channelwise} == {"y.bn", "y.dwconv", "z.bn"}
    # the conv after the concat keeps the first w channels of the width segment and the 2 of `c`
    consumer = uses["h.conv"]
    assert consumer.masks_input and kept_features(consumer.inp, {"y.conv": 0}) == [0, 1, 2, 3, 8, 9]
    assert consumer.dims({"y.conv": 0}) == (None, [0, 1, 2, 3, 8, 9])
    assert uses["h.linear_1"].dims({"h.linear": 1}) == (None, [0, 1, 2, 3, 4])
    assert uses["h.linear"].dims({"h.linear": 0}) == ([0, 1, 2], None)


@pytest.mark.parametrize("body, message", [
    ("output conv(one_of [4, 8], 3)(x)", "they are a network output"),
    ("y = sum(conv(one_of [4, 8], 3)(x), conv(8, 1)(x))\n output conv(2, 1)(y)",
     "tied (by a sum or a choice) to those of 'y_1', whose width is fixed"),
    ("y = sum(conv(one_of [4, 8], 3)(x), conv(one_of [4, 8], 1)(x))\n output conv(2, 1)(y)",
     "which chooses [4, 8] with 'y_1'"),
    ("y = one_of { a: conv(one_of [4, 8], 3)  b: conv(8, 1) }(x)\n output conv(2, 1)(y)", "whose width is fixed"),
    ("output (conv(one_of [4, 8], 3) -> factorized_reduce(4))(x)", "factorized_reduce 'out.factorized_reduce'"),
    ("output (conv(one_of [4, 8], 3) -> conv(4, 3, groups = 2))(x)", "grouped conv 'out.conv_1'"),
    ("output conv(one_of [4, 8], 3, groups = 3)(x)", "a width choice needs a dense conv, not groups=3"),
])
def test_channels_that_cannot_follow_a_width_are_refused_where_written(body, message):
    with pytest.raises(VerificationError) as err:
        parse_string(net(body))
    assert message in err.value.message and err.value.loc is not None and err.value.loc.line >= 3


def _set_width(graph: Graph, name: str, **changes) -> None:
    node = graph.body[name]
    node.width = node.width.model_copy(update=changes)


def test_verifier_checks_each_width_choice(space):
    for changes, message in [({"widths": [4, 8, 16]}, "3 widths for the 2 candidates"),
                             ({"widths": [8, 8]}, "lists a width twice"),
                             ({"widths": [4, 6]}, "out_channels=8 must be the largest width of its width choice, 6"),
                             ({"arch": "nope"}, "unknown architecture parameter 'nope'"),
                             ({"arch": "h.linear"}, "2 widths for the 3 candidates of 'h.linear'")]:
        graph = space.copy_deep()
        _set_width(graph, "y.conv", **changes)
        with pytest.raises(VerificationError) as err:
            verify(graph)
        assert message in err.value.message
    graph = space.copy_deep()
    graph.body["y.relu"].width = WidthChoice(arch="y.conv", widths=[4, 8])
    with pytest.raises(VerificationError, match="relu has no output width to choose"):
        verify(graph)
    graph = space.copy_deep()
    graph.arch["y.conv"].kind = "layer"
    with pytest.raises(VerificationError, match="'y.conv' is a layer choice, not a width choice"):
        verify(graph)


def test_a_dance_gate_cannot_read_a_chosen_width(space):
    insert_after(space.body, "y.conv", [GateNode(name="g", inputs=["y.conv"], group="g", channels=8)], take_uses=True)
    with pytest.raises(VerificationError, match="a DANCE gate cannot read channels of a width choice"):
        verify(space)


def test_search_space_size_multiplies_by_the_number_of_widths(space):
    assert space.search_space_size() == 2 * 3 == brute_force_size(space)
    assert used_arch(space.body) == {"y.conv", "h.linear"}
    nested = parse_string(net("""
        w = one_of [2, 4]
        e = one_of {
            a: conv(w, 1) -> relu -> dwconv(one_of [1, 3]) -> conv(4, 1)
            b: conv(4, 3)
            c: conv(w, 3) -> bn -> conv(4, 1)
        }(x)
        output (conv(w, 1) -> relu -> conv(2, 1))(e)"""))
    # the width is picked once for the whole network (it is used outside the choice too)
    assert nested.search_space_size() == 2 * (2 + 1 + 1) == brute_force_size(nested)
    inner = parse_string(net("""
        e = one_of { a: conv(one_of [2, 4], 1) -> conv(4, 1)  b: conv(4, 3) }(x)
        output conv(2, 1)(e)"""))
    assert inner.search_space_size() == 2 + 1 == brute_force_size(inner)


def test_a_width_shared_by_two_choices_counts_once_where_reached():
    """w is reached when either choice picks its candidate a: (a, a), (a, b), (b, a) twice each, (b, b)
    once -- 7, where counting each choice on its own gave 3 * 3 = 9."""
    two = parse_string(net("""
        w = one_of [2, 4]
        e = one_of { a: conv(w, 1) -> conv(4, 1)  b: conv(4, 3) }(x)
        f = one_of { a: conv(w, 1) -> conv(4, 1)  b: conv(4, 1) }(e)
        output conv(2, 1)(f)"""))
    assert two.search_space_size() == 7 == brute_force_size(two)
    nested = parse_string(net("""
        w = one_of [2, 4, 8]
        e = one_of {
            a: conv(w, 1) -> conv(4, 1)
            b: one_of { p: conv(w, 3) -> conv(4, 1)  q: conv(4, 1) }
        }(x)
        f = one_of { a: conv(w, 1) -> conv(4, 1)  b: conv(4, 1) }(e)
        output conv(2, 1)(f)"""))
    assert nested.search_space_size() == brute_force_size(nested)


def test_costs_follow_the_chosen_widths(space):
    plain = parse_string(net("""
        y = (conv(4, 3) -> bn -> relu -> dwconv(3))(x)
        z = sum(y, (conv(4, 1) -> bn)(x))
        c = concat(z, conv(2, 1)(x))
        h = (pwconv(6) -> global_avg_pool -> linear(5) -> linear(2))(c)
        output h"""))
    assert arch_cost(space, {"y.conv": 0, "h.linear": 1}) == graph_cost(plain)
    assert graph_cost(space).params > graph_cost(plain).params
    # the layers following the conv width: 2 convs, 2 bns, the dwconv, and the conv reading the concat
    costs = width_costs(space, "y.conv")
    per_channel = 3 * 9 + 2 + 9 + 3 + 2 + 6  # per width channel: conv 3x3, bn, dwconv, conv 1x1, bn, consumer
    assert costs[1].params - costs[0].params == 4 * per_channel
    # the linear of each width (weights, bias) and the linear reading it (weights; its bias of 2 too)
    assert [c.params for c in width_costs(space, "h.linear")] == [6 * f + f + f * 2 + 2 for f in (3, 5, 7)]


def test_show_lists_each_width_with_its_cost(space):
    filecheck(summary(space), """
        CHECK: search space: 6 architectures
        CHECK: y.conv  [y.conv, width choice of 2 ops]
        CHECK-NEXT: w4 (out_channels=4)
        CHECK-NEXT: w8 (out_channels=8)
        CHECK: h.linear  [h.linear, width choice]
        CHECK-NEXT: w3 (out_features=3)               29 params         24 FLOPs
    """)


def test_width_choices_are_op_nodes_with_a_plain_largest_op(space):
    """Passes that know nothing of widths see a conv of the largest width: the supernet's shapes."""
    node = space.body["y.conv"]
    assert isinstance(node, OpNode) and node.attrs.out_channels == 8 and node.shape == [8, 8, 8]
