"""Small graph-rewriting helpers shared by passes."""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx

from nasir.ir.nodes import Node, Region, sub_regions


def replace_uses(region: Region, old: str, new: str) -> int:
    """Make every user of ``old`` read ``new`` instead; returns how many inputs changed."""
    count = 0
    for node in region.nodes:
        if old in node.inputs:
            node.inputs = [new if i == old else i for i in node.inputs]
            count += 1
    return count


def remove(region: Region, name: str) -> None:
    region.nodes = [n for n in region.nodes if n.name != name]
    region.touch()


def inline_region(region: Region, at: str, body: Region, prefix: str) -> str:
    """Replace node ``at`` by the nodes of ``body`` (renamed ``prefix + name``).

    ``body``'s inputs are bound to ``at``'s inputs; returns the name now carrying ``at``'s value.
    """
    node = region[at]
    binding = {i.name: src for i, src in zip(body.inputs, node.inputs)}
    new_nodes: list[Node] = []
    result = None
    for inner in body.nodes:
        if inner.kind == "input":
            continue
        if inner.kind == "output":
            result = binding[inner.inputs[0]]
            continue
        copy = inner.model_copy(deep=True)
        copy.name = region.fresh_name(prefix + inner.name)
        copy.inputs = [binding[i] for i in inner.inputs]
        binding[inner.name] = copy.name
        new_nodes.append(copy)
    pos = region.nodes.index(node)
    region.nodes[pos:pos + 1] = new_nodes
    region.touch()
    assert result is not None, "inlined region has no output"
    replace_uses(region, at, result)
    return result


def live_nodes(region: Region) -> set[str]:
    """Names of nodes some output depends on (inputs are always kept)."""
    g = region.digraph()
    live: set[str] = {n.name for n in region.nodes if n.kind in ("input", "output")}
    for out in region.outputs:
        live |= nx.ancestors(g, out.name)
    return live


def all_regions(region: Region) -> Iterator[Region]:
    """``region`` and every region nested in it, innermost last."""
    yield region
    for node in region.nodes:
        for _, sub in sub_regions(node):
            yield from all_regions(sub)
