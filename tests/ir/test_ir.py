"""IR: JSON round trip, committed schema, verifier, search-space sizes, costs, dot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasir.diagnostics import NasirError, VerificationError
from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.cost import arch_cost, graph_cost
from nasir.ir.dot import to_dot
from nasir.ir.graph import Graph
from nasir.ir.nodes import OpNode
from nasir.ir.ops import Conv
from nasir.ir.verify import verify
from nasir.passmanager import PassManager
from nasir.testing import brute_force_size

SCHEMA = Path(__file__).resolve().parents[2] / "nasir" / "schema" / "ir.schema.json"


def test_json_round_trip(darts_graph):
    text = darts_graph.to_json()
    again = Graph.from_json(text)
    assert again == darts_graph
    assert again.to_json() == text


def test_committed_schema_is_current():
    assert json.loads(SCHEMA.read_text()) == Graph.json_schema(), "run `python -m nasir.schema` to refresh"


def test_bad_json_is_a_located_error():
    with pytest.raises(NasirError, match="not valid JSON"):
        Graph.from_json('{"name": ', "g.json")
    with pytest.raises(NasirError, match="invalid IR"):
        Graph.from_json('{"name": "x", "body": {"nodes": [{"kind": "bogus", "name": "a"}]}}', "g.json")


def test_verifier_catches_channel_mismatch():
    g = parse_string("network n() {\n input x: [3, 8, 8]\n a = conv(4, 3)(x)\n b = conv(4, 3)(x)\n"
                     " c = sum(a, b)\n output c\n}\n", filename="m.nas")
    verify(g)
    b = g.body["b"]
    assert isinstance(b, OpNode)
    b.attrs = Conv(out_channels=5, kernel=3)  # a pass that got the channels wrong
    with pytest.raises(VerificationError) as info:
        verify(g)
    assert info.value.loc.line == 5 and "mismatched shapes [4, 8, 8] and [5, 8, 8]" in info.value.message


def test_verifier_catches_dangling_input(tiny_darts):
    g = tiny_darts.model_copy(deep=True)
    g.body.nodes[3].inputs = ["nowhere"]
    with pytest.raises(VerificationError, match="not defined"):
        verify(g)


def test_verifier_catches_bad_arch_reference(tiny_darts):
    g = tiny_darts.model_copy(deep=True)
    choice = next(n for n in g.body.nodes if n.kind == "choice")
    choice.arch = "missing"
    with pytest.raises(VerificationError, match="unknown architecture parameter"):
        verify(g)


def test_search_space_sizes(darts_graph):
    assert darts_graph.search_space_size() == 8**14 * 8**14
    # top-2 inputs per node, 7 non-'none' ops per kept edge, per cell type
    per_cell = 1
    for i in range(4):
        edges = 2 + i
        per_cell *= edges * (edges - 1) // 2 * 7**2
    assert darts_graph.search_space_size(input_rule=True) == per_cell**2
    assert parse_file(std_path("nb201")).search_space_size() == 5**6
    mb = parse_file(std_path("mbconv"), resolution=32).search_space_size()
    blocks = [[2, 3, 2], [2, 3, 4], [2, 3, 4], [3, 4, 4], [4, 5, 5], [1]]
    expected = 1
    for cells in blocks:
        expected *= sum(6**layers for layers in cells)
    assert mb == expected and 1.5e17 < mb < 2.5e17


def test_top_k_size_counts_choices_nested_in_input_choice_edges(parse):
    """A kept edge is any architecture of the edge: 3 here (x, y, or b), so keeping 1 of 2 edges gives
    3 + 3 = 6; the nested choices of edges that are not kept count nothing (it used to say 16)."""
    g = parse("""
    choice edge() = one_of { a: one_of { x: conv(4, 3)  y: conv(4, 5) }  b: conv(4, 1) }
    network n() {
        input x: [4, 5, 5]
        y = input_choice(1, [edge()(x), edge()(x)])
        output y
    }""")
    assert g.search_space_size(input_rule=True) == brute_force_size(g, input_rule=True) == 6
    assert g.search_space_size() == brute_force_size(g) == 9


def test_top_k_size_is_kept_by_passes_that_nest_an_edge_in_itself(parse):
    """reparam merges conv3 and conv5 into a candidate holding a merged conv on the edge's own
    parameter: that inner node is part of the edge, not another input-choice member."""
    g = parse("""
    choice edge() = one_of { c3: conv(4, 3)  c5: conv(4, 5)  pool: max_pool(3, 1) }
    network n() {
        input x: [4, 5, 5]
        y = input_choice(2, [edge()(x), edge()(x)])
        output y
    }""")
    merged = PassManager.parse("reparam").run(g)
    assert any(n.kind == "merged_conv" for _, n, _ in merged.walk())
    assert merged.search_space_size(input_rule=True) == g.search_space_size(input_rule=True) == 3 * 3


def test_known_parameter_counts(darts_graph):
    assert graph_cost(darts_graph).params == 1_930_618  # reference DARTS model_search.Network(16, 10, 8)
    assert graph_cost(parse_file(std_path("resnet18"))).params == 11_173_962
    # VGG-16-BN without conv biases (they are redundant before BN): 14,728,266 - 4,224 biases
    assert graph_cost(parse_file(std_path("vgg16"))).params == 14_724_042


def test_arch_cost_counts_one_path(tiny_darts):
    g = tiny_darts
    all_skip = arch_cost(g, {a: g.arch[a].candidates.index("skip_connect") for a in g.arch})
    all_sep5 = arch_cost(g, {a: g.arch[a].candidates.index("sep_conv_5x5") for a in g.arch})
    assert 0 < all_skip.params < all_sep5.params < graph_cost(g).params


def test_dot_export(tiny_darts):
    dot = to_dot(tiny_darts)
    assert dot.startswith("digraph darts") and "cluster_cells0.n0_0.sep_conv_3x3" in dot
