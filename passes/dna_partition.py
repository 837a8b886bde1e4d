"""dna-partition: split a network into DNA blocks (exact; DNA Sec. 3.2).

Blocks come from ``block "name" { ... }`` annotations (every top-level node tagged with the same
name, contiguous in execution order), or, with ``auto=true`` or when nothing is annotated, from
stage boundaries: the network is cut wherever a single value is live and the feature-map shape
(channels or resolution) changes next. ``blocks=N`` keeps the last N boundaries, to align the
student with a teacher cut into N blocks (``nasir.dna.teacher.auto_boundaries``).

Each block becomes a ``block`` node whose region holds its nodes, so later tools see its input
and output shapes and its own search space; the cells inside (the candidates of a block's
top-level choice, possibly of different depth and width, DNA Table 1) are reported too. A block
must be a chain link: one value in, one value out. The rewrite only regroups nodes, so the
lowered function is unchanged (weights are renamed under the block's name).
"""

from __future__ import annotations

from nasir.diagnostics import NasirError
from nasir.dna.blocks import block_infos
from nasir.ir.graph import Graph
from nasir.ir.nodes import ArchWeighted, BlockNode, InputNode, Node, OutputNode, Region
from nasir.ir.rewrite import replace_uses
from nasir.ir.width import has_widths
from nasir.passmanager import Exactness, Pass, PassResult, register


@register
class DnaPartition(Pass):
    name = "dna-partition"
    summary = "group a network into DNA blocks (annotations or stage boundaries) and report each block's space"

    auto: bool = False
    blocks: int = 0

    def exactness(self) -> Exactness:
        return "exact"

    def run(self, graph: Graph) -> PassResult:
        from nasir.ir.verify import infer_shapes

        result = PassResult()
        if has_widths(graph):
            raise NasirError("dna-partition: the graph has width choices; DNA rates every path of a block as a "
                             "network of its own and supports layer and value choices only",
                             hint="choose among cells of different widths with one_of { ... } instead")
        if self.blocks < 0:
            raise NasirError(f"dna-partition: blocks must be >= 1 (or 0 for every stage boundary), got {self.blocks}")
        if any(isinstance(n, BlockNode) for n in graph.body.nodes):
            result.notes.append("already partitioned")
            return result
        infer_shapes(graph)
        tagged = any(n.block for n in graph.body.nodes)
        if self.auto or not tagged:
            groups = searchable_only(graph.body, stage_groups(graph.body, self.blocks))
        else:
            groups = annotated_groups(graph.body)
            if self.blocks and len(groups) != self.blocks:
                raise NasirError(f"the network is annotated with {len(groups)} blocks, but blocks={self.blocks} was asked",
                                 hint="drop the blocks option, or use auto=true to re-partition at stage boundaries")
        if not groups:
            raise NasirError("dna-partition found no blocks: the network has no stage boundaries",
                             hint="annotate blocks in the DSL with `block \"name\" { ... }`")
        for tag, names in groups:
            wrap_block(graph.body, names, tag)
            result.count("blocks")
        infer_shapes(graph)
        for info in block_infos(graph):
            result.notes.append(info.line())
        result.notes.append(f"whole space: {graph.search_space_size()} architectures")
        return result


# -- grouping ------------------------------------------------------------------------------------
def annotated_groups(region: Region) -> list[tuple[str, list[str]]]:
    groups: list[tuple[str, list[str]]] = []
    closed: set[str] = set()
    for node in region.nodes:
        tag = node.block if node.kind not in ("input", "output") else None
        if groups and tag == groups[-1][0]:
            groups[-1][1].append(node.name)
            continue
        if groups:
            closed.add(groups[-1][0])
        if tag is None:
            continue
        if tag in closed:
            raise NasirError(f"block {tag!r} is not contiguous: node {node.name!r} comes after other nodes",
                             node.loc, hint="a DNA block must be one stretch of the network")
        groups.append((tag, [node.name]))
    return [(t, names) for t, names in groups if t is not None]


def _live_after(nodes: list[Node], pos: int) -> list[str]:
    later = nodes[pos + 1:]
    used = {i for n in later for i in n.inputs}
    return [n.name for n in nodes[:pos + 1] if n.name in used]


def stage_groups(region: Region, blocks: int = 0) -> list[tuple[str, list[str]]]:
    """Blocks ending at the last cut point of each run of equal feature-map shape [C, H, W]."""
    nodes = region.nodes
    cuts = []
    for i, n in enumerate(nodes):
        if n.kind in ("input", "output") or n.shape is None or len(n.shape) != 3 or n.shape[1] * n.shape[2] == 1:
            continue
        if _live_after(nodes, i) == [n.name]:
            cuts.append((i, tuple(n.shape)))
    ends = [i for k, (i, shape) in enumerate(cuts) if k + 1 == len(cuts) or cuts[k + 1][1] != shape]
    if blocks:
        if blocks > len(ends):
            raise NasirError(f"blocks={blocks} asked, but the network has only {len(ends)} stage boundaries")
        ends = ends[-blocks:]
    groups, start = [], 0
    for k, end in enumerate(ends):
        names = [n.name for n in nodes[start:end + 1] if n.kind not in ("input", "output")]
        groups.append((f"block{k + 1}", names))
        start = end + 1
    return groups


def searchable_only(region: Region, groups: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """Fold choice-free stages into the next searchable one (the stem joins block 1) and leave
    trailing choice-free stages (the head) outside any block; renumber."""
    def searchable(names: list[str]) -> bool:
        return any(isinstance(region[n], ArchWeighted) or
                   (isinstance(region[n], BlockNode)) for n in names)

    out: list[list[str]] = []
    pending: list[str] = []
    for _, names in groups:
        pending = pending + names
        if searchable(names):
            out.append(pending)
            pending = []
    return [(f"block{k + 1}", names) for k, names in enumerate(out)]


def wrap_block(region: Region, names: list[str], tag: str) -> BlockNode:
    """Move the nodes ``names`` (contiguous, one value in, one out) into a ``block`` node."""
    members = set(names)
    inner = [n for n in region.nodes if n.name in members]
    first = inner[0]
    ext = []
    for n in inner:
        for i in n.inputs:
            if i not in members and i not in ext:
                ext.append(i)
    if len(ext) != 1:
        raise NasirError(f"block {tag!r} reads {len(ext)} values from outside ({', '.join(ext)}); "
                         "a DNA block takes exactly one input", first.loc)
    outs = [n.name for n in inner if any(n.name in u.inputs for u in region.nodes if u.name not in members)]
    if len(outs) != 1:
        raise NasirError(f"block {tag!r} has {len(outs)} values used after it ({', '.join(outs) or 'none'}); "
                         "a DNA block gives exactly one output", first.loc)
    body = Region()
    x = "x"
    while x in members:
        x = "_" + x
    body.add(InputNode(name=x, index=0, shape=region[ext[0]].shape, block=tag))
    for n in inner:
        n.inputs = [x if i == ext[0] else i for i in n.inputs]
        body.add(n)
    out = "out"
    while out in members:
        out = "_" + out
    body.add(OutputNode(name=out, inputs=[outs[0]], shape=region[outs[0]].shape))
    name = region.fresh_name(tag) if tag not in members else region.fresh_name(tag + "_block")
    block = BlockNode(name=name, inputs=[ext[0]], body=body, loc=first.loc, shape=region[outs[0]].shape, block=tag)
    pos = region.nodes.index(first)
    region.nodes = [n for n in region.nodes if n.name not in members]
    region.nodes.insert(pos, block)
    region.touch()
    replace_uses(region, outs[0], name)
    block.inputs = [ext[0]]
    return block
