"""The rewrite toolkit (``nasir.ir.rewrite``): fresh names, used-arch query, walk, edits, fixpoint driver."""

from __future__ import annotations

import random

import pytest

from nasir.frontends.elaborate import parse_string
from nasir.ir.graph import Graph
from nasir.ir.nodes import (
    ArchWeighted,
    BlockNode,
    Candidate,
    ChoiceNode,
    InputNode,
    KernelCandidate,
    MergedConvNode,
    OpNode,
    OutputNode,
    Region,
)
from nasir.ir.ops import ReLU
from nasir.ir.rewrite import (
    FixpointError,
    FreshNames,
    fresh_name,
    insert_after,
    insert_before,
    remove,
    replace_node,
    run_to_fixpoint,
    used_arch,
    walk,
    weighted_nodes,
)


def _relu(name: str, src: str) -> OpNode:
    return OpNode(name=name, inputs=[src], attrs=ReLU())


def _chain(*ops: str) -> Region:
    """``x -> ops... -> out`` as a region."""
    region = Region()
    region.add(InputNode(name="x"))
    cur = "x"
    for op in ops:
        cur = region.add(_relu(op, cur)).name
    region.add(OutputNode(name="out", inputs=[cur]))
    return region


def _single(node, src: str = "x") -> Region:
    """``x -> node -> out`` as a region (``node`` reads ``x``)."""
    region = Region()
    region.add(InputNode(name="x"))
    node.inputs = [src]
    region.add(node)
    region.add(OutputNode(name="out", inputs=[node.name]))
    return region


def _merged(name: str, arch: str) -> MergedConvNode:
    return MergedConvNode(name=name, arch=arch, covers=[[0]], domain=[0], kernels=[KernelCandidate(name="k", kernel=3)],
                          out_channels=4)


def _nested() -> Region:
    """x -> b[block: e = choice(a){c1: r, c2: f = choice(b){d: m = merged(c)}}] -> out."""
    inner = ChoiceNode(name="f", arch="b", covers=[[0]], domain=[0],
                       candidates=[Candidate(name="d", body=_single(_merged("m", "c")))])
    edge = ChoiceNode(name="e", arch="a", covers=[[0], [1]], domain=[0, 1],
                      candidates=[Candidate(name="c1", body=_chain("r")), Candidate(name="c2", body=_single(inner))])
    return _single(BlockNode(name="b", body=_single(edge)))


def _old_fresh_name(region: Region, base: str) -> str:
    """The rule ``Region.fresh_name`` followed before the toolkit (state-dict names depend on it)."""
    if base not in region:
        return base
    k = 1
    while f"{base}_{k}" in region:
        k += 1
    return f"{base}_{k}"


# -- fresh names ---------------------------------------------------------------------------------
def test_fresh_name_takes_the_base_then_the_smallest_free_suffix():
    assert fresh_name("h", set()) == "h"
    assert fresh_name("h", {"h"}) == "h_1"
    assert fresh_name("h", {"h", "h_1", "h_3"}) == "h_2"
    assert fresh_name("h_1", {"h", "h_1"}) == "h_1_1"
    region = _chain("h", "h_2")
    assert region.fresh_name("h") == "h_1" and region.fresh_name("g") == "g"
    assert region.fresh_name("h") == "h_1", "asking twice without adding gives the same name"


def test_region_fresh_names_match_the_old_rule_under_adds_and_removals():
    rnd = random.Random(0)
    region = Region()
    region.add(InputNode(name="x"))
    for step in range(600):
        base = rnd.choice(["h", "h_1", "relu", "x"])
        if rnd.random() < 0.15 and len(region) > 1:  # a removal (touch) must forget remembered suffixes
            victim = rnd.choice([n.name for n in region.nodes if n.kind != "input"])
            remove(region, victim)
            continue
        want = _old_fresh_name(region, base)
        assert region.fresh_name(base) == want, step
        if rnd.random() < 0.8:
            region.add(_relu(want, "x"))


def test_a_value_reassigned_2000_times_gets_numbered_names():
    region = Region()
    region.add(InputNode(name="x"))
    names = []
    for _ in range(2000):
        names.append(region.add(_relu(region.fresh_name("h"), "x")).name)
    assert names == ["h"] + [f"h_{k}" for k in range(1, 2000)]
    remove(region, "h_7")
    assert region.fresh_name("h") == "h_7"


def test_fresh_names_against_a_growing_set():
    taken = {"merged"}
    fresh = FreshNames(taken)
    for want in ("merged_1", "merged_2"):
        assert fresh("merged") == want
        taken.add(want)
    assert fresh("other") == "other"


def test_a_value_reassigned_in_a_dsl_loop_gets_numbered_names():
    g = parse_string("""
network n() {
    input x: [3, 8, 8]
    h = conv(4, 3)(x)
    for i in 0 .. 2000 { h = relu(h) }
    output h
}""")
    assert [n.name for n in g.body.nodes] == ["x", "h"] + [f"h_{k}" for k in range(1, 2001)] + ["output"]


# -- queries ---------------------------------------------------------------------------------------
def test_used_arch_looks_into_blocks_candidates_and_nested_choices():
    region = _nested()
    assert used_arch(region) == {"a", "b", "c"}
    edge = region["b"].body["e"]
    assert used_arch(edge) == {"a", "b", "c"}
    assert used_arch(edge.candidates[1].body) == {"b", "c"}
    assert used_arch(edge.candidates[0].body) == set()
    assert used_arch(region["b"]) == {"a", "b", "c"}
    assert [n.name for n in weighted_nodes(region)] == ["e", "f", "m"]


def test_arch_weighted_is_the_base_of_choices_and_merged_convs():
    region = _nested()
    kinds = {type(n).__name__ for _, n, _ in walk(region) if isinstance(n, ArchWeighted)}
    assert kinds == {"ChoiceNode", "MergedConvNode"}
    again = Region.model_validate_json(region.model_dump_json())  # the discriminated union still picks the class
    assert again == region and isinstance(again["b"].body["e"], ChoiceNode)


def test_walk_yields_dotted_paths_and_the_holding_region():
    region = _nested()
    paths = [(path, holder is region) for path, _, holder in walk(region)]
    assert [p for p, _ in paths] == [
        "x", "b", "b.x", "b.e", "b.e.c1.x", "b.e.c1.r", "b.e.c1.out", "b.e.c2.x", "b.e.c2.f", "b.e.c2.f.d.x",
        "b.e.c2.f.d.m", "b.e.c2.f.d.out", "b.e.c2.out", "b.out", "out"]
    assert [p for p, top in paths if top] == ["x", "b", "out"]
    assert all(holder[node.name] is node for _, node, holder in walk(region))
    inner_first = [p for p, _, _ in walk(region, "net.", children_first=True)]
    assert inner_first.index("net.b.e.c2.f.d.m") < inner_first.index("net.b.e.c2.f") < inner_first.index("net.b.e")
    graph = Graph(name="g", body=region)
    assert list(graph.walk()) == list(walk(region))


def test_walk_allows_replacing_the_node_it_yields():
    region = _chain("a", "b", "c")
    for _, node, holder in walk(region):
        if node.name == "b":
            replace_node(holder, "b", [_relu("b1", "a"), _relu("b2", "b1")])
    assert [n.name for n in region.nodes] == ["x", "a", "b1", "b2", "c", "out"]


# -- edits -----------------------------------------------------------------------------------------
def test_insert_before_and_after_keep_order_and_index():
    region = _chain("a", "b")
    insert_before(region, "b", [_relu("p", "a")])
    insert_after(region, "b", [_relu("q", "b")])
    assert [n.name for n in region.nodes] == ["x", "a", "p", "b", "q", "out"]
    assert region.position("q") == 4 and region["q"].inputs == ["b"]
    assert region["out"].inputs == ["b"], "plain insertion rewires nothing"


def test_insert_after_taking_uses_makes_a_chain_continue_the_anchor():
    region = _chain("a", "b")
    region.add(_relu("c", "a"))
    insert_after(region, "a", [_relu("g1", "a"), _relu("g2", "g1")], take_uses=True)
    assert [n.name for n in region.nodes] == ["x", "a", "g1", "g2", "b", "out", "c"]
    assert region["g1"].inputs == ["a"] and region["b"].inputs == ["g2"] and region["c"].inputs == ["g2"]


def test_replace_node_by_a_chain_rewires_users():
    region = _chain("a", "b")
    assert replace_node(region, "a", [_relu("a1", "x"), _relu("a2", "a1")]) == "a2"
    assert [n.name for n in region.nodes] == ["x", "a1", "a2", "b", "out"]
    assert region["b"].inputs == ["a2"] and "a" not in region
    assert replace_node(region, "b", [], result="a2") == "a2"  # dropping a node: users read its input
    assert region["out"].inputs == ["a2"]
    same = _relu("a2", "a1")
    replace_node(region, "a2", [same])  # same name: nothing to rewire
    assert region["a2"] is same and region["out"].inputs == ["a2"]


# -- fixpoint --------------------------------------------------------------------------------------
def test_run_to_fixpoint_sums_changes_until_a_step_changes_nothing():
    pending = [3, 1, 2]
    calls = []

    def step() -> int:
        calls.append(1)
        return pending.pop(0) if pending else 0

    assert run_to_fixpoint(step) == 6 and len(calls) == 4
    flags = iter([True, True, False, True])
    assert run_to_fixpoint(lambda: next(flags)) == 2


def test_run_to_fixpoint_stops_a_rewrite_that_never_settles():
    assert run_to_fixpoint(iter([1, 1, 1, 0]).__next__, limit=3) == 3  # exactly the limit is fine
    with pytest.raises(FixpointError, match="after 3 rounds"):
        run_to_fixpoint(lambda: 1, limit=3)
