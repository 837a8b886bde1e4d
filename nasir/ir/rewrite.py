"""The rewrite toolkit: what a pass needs to read and edit the IR without hand-splicing ``region.nodes``.

* names: ``fresh_name`` / ``FreshNames`` (the one naming rule, see ``nasir.ir.names``);
* traversal: ``walk`` (every node with its dotted path), ``all_regions``, ``weighted_nodes``,
  ``width_ops`` and ``used_arch`` (which architecture parameters a region refers to), ``live_nodes``,
  ``aux_head`` (the nodes only auxiliary outputs need);
* edits: ``insert_before``, ``insert_after``, ``replace_node``, ``replace_uses``, ``remove``,
  ``inline_region``;
* ``run_to_fixpoint``: repeat a rewriting step until it changes nothing.

Edits keep the region's name index valid (they call ``Region.touch``); they do not re-sort, so a
caller inserting nodes keeps them in topological order by placing them next to their neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from nasir.ir.names import FreshNames, fresh_name
from nasir.ir.nodes import ArchWeighted, Node, NodeBase, OpNode, Region, sub_regions

__all__ = [
    "FixpointError", "FreshNames", "all_regions", "aux_head", "fresh_name", "inline_region", "insert_after",
    "insert_before", "live_nodes", "remove", "replace_node", "replace_uses", "run_to_fixpoint", "used_arch", "walk",
    "weighted_nodes", "width_ops",
]


# -- traversal ---------------------------------------------------------------------------------
def walk(region: Region, prefix: str = "", *, children_first: bool = False) -> Iterator[tuple[str, Node, Region]]:
    """Every node at every depth as (dotted path, node, region holding it).

    A node's path is ``prefix + name``; inside candidate ``c`` of choice ``e`` it is ``e.c.<name>``,
    inside block ``b`` it is ``b.<name>`` -- the module paths lowering gives the node's weights.
    Each region is read from a snapshot, so a caller may replace the node it was just given. With
    ``children_first`` a node comes after everything nested in it, for rewrites that need the inner
    choices done before the one holding them.
    """
    for node in list(region.nodes):
        path = prefix + node.name
        if not children_first:
            yield path, node, region
        for local, sub in sub_regions(node):
            yield from walk(sub, f"{path}.{local}." if local else f"{path}.", children_first=children_first)
        if children_first:
            yield path, node, region


def all_regions(region: Region) -> Iterator[Region]:
    """``region`` and every region nested in it, innermost last."""
    yield region
    for node in region.nodes:
        for _, sub in sub_regions(node):
            yield from all_regions(sub)


def weighted_nodes(root: Region | NodeBase) -> Iterator[ArchWeighted]:
    """Every choice and merged conv in ``root`` (a region, or a node and what it holds), at any depth."""
    if isinstance(root, ArchWeighted):
        yield root
    regions = [root] if isinstance(root, Region) else [sub for _, sub in sub_regions(root)]
    for region in regions:
        for _, node, _ in walk(region):
            if isinstance(node, ArchWeighted):
                yield node


def width_ops(root: Region | NodeBase) -> Iterator[OpNode]:
    """Every op with a width choice in ``root`` (a region, or a node and what it holds), at any depth."""
    if isinstance(root, OpNode) and root.width is not None:
        yield root
    regions = [root] if isinstance(root, Region) else [sub for _, sub in sub_regions(root)]
    for region in regions:
        for _, node, _ in walk(region):
            if isinstance(node, OpNode) and node.width is not None:
                yield node


def used_arch(root: Region | NodeBase) -> set[str]:
    """Names of the architecture parameters that ``root`` (a region, or a node and what it holds) refers to:
    those of its choices and merged convs, and those of its width choices."""
    return {n.arch for n in weighted_nodes(root)} | {n.width.arch for n in width_ops(root)}


def live_nodes(region: Region) -> set[str]:
    """Names of nodes some output depends on (inputs are always kept)."""
    import networkx as nx  # lazily, as in Region.digraph

    g = region.digraph()
    live: set[str] = {n.name for n in region.nodes if n.kind in ("input", "output")}
    for out in region.outputs + region.aux_outputs:
        live |= nx.ancestors(g, out.name)
    return live


def aux_head(region: Region) -> list[str]:
    """Names of the nodes of ``region`` that only its auxiliary outputs depend on, in order, those
    outputs included: the auxiliary head, which a lowered network runs in training mode only."""
    import networkx as nx

    if not region.aux_outputs:
        return []
    g = region.digraph()
    main: set[str] = {n.name for n in region.inputs}
    for out in region.outputs:
        main |= nx.ancestors(g, out.name) | {out.name}
    aux: set[str] = set()
    for out in region.aux_outputs:
        aux |= nx.ancestors(g, out.name) | {out.name}
    return [n.name for n in region.nodes if n.name in aux - main]


# -- edits -------------------------------------------------------------------------------------
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


def insert_before(region: Region, anchor: str, nodes: Sequence[NodeBase]) -> None:
    """Put ``nodes`` (in this order) right before node ``anchor``."""
    pos = region.position(anchor)
    region.nodes[pos:pos] = nodes
    region.touch()


def insert_after(region: Region, anchor: str, nodes: Sequence[NodeBase], *, take_uses: bool = False) -> None:
    """Put ``nodes`` (in this order) right after node ``anchor``.

    With ``take_uses`` the nodes are a chain continuing ``anchor``: every node that read ``anchor``
    reads the last of them instead (the chain itself still reads ``anchor``).
    """
    if take_uses:
        replace_uses(region, anchor, nodes[-1].name)
    pos = region.position(anchor) + 1
    region.nodes[pos:pos] = nodes
    region.touch()


def replace_node(region: Region, name: str, nodes: Sequence[NodeBase], result: str | None = None) -> str:
    """Put ``nodes`` where node ``name`` was; its users read ``result`` (default: the last of ``nodes``).

    Returns the name now carrying the replaced node's value.
    """
    result = nodes[-1].name if result is None else result
    pos = region.position(name)
    region.nodes[pos:pos + 1] = nodes
    region.touch()
    if result != name:
        replace_uses(region, name, result)
    return result


def copy_body(body: Region, binding: dict[str, str], name_for: Callable[[Node], str],
              add: Callable[[Node], object]) -> str:
    """Deep-copy ``body``'s inner nodes in order, each named ``name_for(node)``, reading through
    ``binding`` (which must map ``body``'s input names; it is extended with every copy's name), and
    handed to ``add`` before the next one is named (so ``name_for`` can see the names already taken).

    Returns the name that carries ``body``'s output. Inlining a region and concatenating candidate
    bodies (topo unsharing) both build on it.
    """
    result = None
    for inner in body.nodes:
        if inner.kind == "input":
            continue
        if inner.kind == "output":
            result = binding[inner.inputs[0]]
            continue
        copy = inner.model_copy(deep=True)
        copy.name = name_for(inner)
        copy.inputs = [binding[i] for i in inner.inputs]
        binding[inner.name] = copy.name
        add(copy)
    assert result is not None, "copied region has no output"
    return result


def inline_region(region: Region, at: str, body: Region, prefix: str) -> str:
    """Replace node ``at`` by the nodes of ``body`` (renamed ``prefix + name``).

    ``body``'s inputs are bound to ``at``'s inputs; returns the name now carrying ``at``'s value.
    """
    binding = {i.name: src for i, src in zip(body.inputs, region[at].inputs)}
    new_nodes: list[Node] = []
    result = copy_body(body, binding, lambda inner: region.fresh_name(prefix + inner.name), new_nodes.append)
    return replace_node(region, at, new_nodes, result)


# -- fixpoint ----------------------------------------------------------------------------------
class FixpointError(RuntimeError):
    """A rewrite kept changing the graph past its limit (two rules undoing each other, most likely)."""


def run_to_fixpoint(step: Callable[[], int | bool], limit: int = 10_000) -> int:
    """Call ``step`` until it changes nothing; returns the sum of what it reported.

    ``step`` returns how many rewrites it made (or whether it made any). A step that still changes
    something after ``limit`` changing calls raises ``FixpointError`` instead of looping forever.
    """
    total = rounds = 0
    while changed := int(step()):
        total += changed
        rounds += 1
        if rounds > limit:
            raise FixpointError(f"no fixpoint after {limit} rounds of rewriting")
    return total
