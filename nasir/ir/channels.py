"""Channel-dependency analysis on the IR: which channel dimensions must change size together.

Two features resize channels and ask this analysis which layers follow: DANCE gates prune channels
(``nasir.dance.channels`` adds DANCE's own rule on top), and width choices pick how many output
channels a conv or linear keeps (``nasir.ir.width``).

Every value of the graph carries a *layout*: a list of segments, each a slice of some *channel
space* (a union-find class) of ``size`` channels, every channel repeated ``repeat`` times (a
flatten of a ``[C, H, W]`` map repeats each channel H*W times in the flat features). Rules:

* conv (dense) and linear start a new space: their output channels are free to resize, and their
  input channels follow whatever the input's spaces keep;
* channelwise ops (the ``channelwise`` op trait: bn, relu, pools, global pool, zero, dwconv) and
  gates keep the input's layout;
* a ``sum`` unions its inputs' spaces segment by segment (the residual coupling of ResNets: the
  stem, every block output and every downsample conv of a stage end up in one space);
* a ``concat`` concatenates layouts without coupling them;
* a ``choice`` is analysed inside: its candidates read the choice's inputs and their outputs are
  summed (weighted), so they are coupled like a ``sum``; blocks are analysed inside too;
* anything the analysis cannot slice exactly (network inputs and outputs, grouped convs, merged
  convs, factorized reductions, sums of differently segmented values) marks the spaces involved
  *fixed*, and records why (``fixed_why``).

A space that is not fixed and has at least one conv/linear producer is a *group*: it may be
resized, and resizing slices every producer's output and every consumer's input by it.
Values are keyed by their full node path (``blk.conv`` inside a block, ``edge.cand.conv`` inside
a choice candidate), which is also the module path lowering gives them in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nasir.ir.graph import Graph
from nasir.ir.nodes import (
    BlockNode,
    ChoiceNode,
    ConcatNode,
    GateNode,
    InputNode,
    MergedConvNode,
    OpNode,
    OutputNode,
    Region,
    SumNode,
)


@dataclass(frozen=True)
class Segment:
    space: int
    size: int
    repeat: int = 1


@dataclass
class ChannelAnalysis:
    """The result: layouts of values, producers of spaces, and which spaces are fixed (and why)."""

    layouts: dict[str, list[Segment]] = field(default_factory=dict)
    parent: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    fixed_roots: set[int] = field(default_factory=set)
    #: fixed root -> why it is fixed (the first reason given), for error messages
    fixed_why: dict[int, str] = field(default_factory=dict)
    #: conv/linear node path -> the space its output channels start
    produced: dict[str, int] = field(default_factory=dict)
    #: value path -> (region holding the node, node) for every analysed node
    nodes: dict[str, tuple[Region, object]] = field(default_factory=dict)
    #: node paths in program order
    order: list[str] = field(default_factory=list)
    #: ops whose own channels are kept whole, whatever their spaces say (grouped convs, ...)
    opaque: set[str] = field(default_factory=set)

    # -- union-find -------------------------------------------------------------------------
    def new_space(self, size: int) -> int:
        self.parent.append(len(self.parent))
        self.sizes.append(size)
        return len(self.parent) - 1

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        keep, drop = min(ra, rb), max(ra, rb)
        self.parent[drop] = keep
        if drop in self.fixed_roots:
            self.fixed_roots.discard(drop)
            self.fixed_roots.add(keep)
            why = self.fixed_why.pop(drop)
            self.fixed_why.setdefault(keep, why)

    def fix(self, layout: list[Segment], why: str) -> None:
        for seg in layout:
            root = self.find(seg.space)
            self.fixed_roots.add(root)
            self.fixed_why.setdefault(root, why)

    def is_fixed(self, space: int) -> bool:
        return self.find(space) in self.fixed_roots

    # -- queries ----------------------------------------------------------------------------
    def groups(self) -> dict[int, list[str]]:
        """Prunable spaces (root -> conv/linear producers in program order)."""
        out: dict[int, list[str]] = {}
        for path in self.order:
            if path in self.produced:
                root = self.find(self.produced[path])
                if root not in self.fixed_roots:
                    out.setdefault(root, []).append(path)
        return out

    def root_of(self, path: str) -> int | None:
        """The space of a single-segment value (``None`` for composite values)."""
        layout = self.layouts.get(path)
        if not layout or len(layout) != 1:
            return None
        return self.find(layout[0].space)


def analyze_channels(graph: Graph) -> ChannelAnalysis:
    """Run the channel-dependency analysis over the whole graph (shapes must be inferred)."""
    a = ChannelAnalysis()
    outs = _region(a, graph.body, "", None)
    for layout in outs:
        a.fix(layout, "they are a network output")
    return a


def _channels(shape: list[int] | None) -> int:
    if not shape:
        raise ValueError("channel analysis needs inferred shapes")
    return shape[0]


def _region(a: ChannelAnalysis, region: Region, prefix: str, bound: list[list[Segment]] | None) -> list[list[Segment]]:
    local: dict[str, list[Segment]] = {}
    outs: list[list[Segment]] = []
    for node in region.nodes:
        path = prefix + node.name
        a.nodes[path] = (region, node)
        a.order.append(path)
        if isinstance(node, InputNode):
            if bound is None:
                layout = [Segment(a.new_space(_channels(node.shape)), _channels(node.shape))]
                a.fix(layout, "they are a network input")
            else:
                layout = bound[node.index]
        elif isinstance(node, OutputNode):
            outs.append(local[node.inputs[0]])
            layout = local[node.inputs[0]]
        else:
            ins = [local[i] for i in node.inputs]
            layout = _node(a, node, path, ins)
        local[node.name] = layout
        a.layouts[path] = layout
    return outs


def _fresh(a: ChannelAnalysis, node, why_fixed: str | None) -> list[Segment]:
    """A new space for ``node``'s output channels; fixed (for ``why_fixed``) unless that is None."""
    c = _channels(node.shape)
    layout = [Segment(a.new_space(c), c)]
    if why_fixed is not None:
        a.fix(layout, why_fixed)
    return layout


def _node(a: ChannelAnalysis, node, path: str, ins: list[list[Segment]]) -> list[Segment]:
    if isinstance(node, OpNode):
        op = node.attrs.op
        x = ins[0]
        if op == "conv":
            if node.attrs.groups != 1:
                why = f"grouped conv {path!r} reads or writes them"
                a.fix(x, why)
                a.opaque.add(path)
                return _fresh(a, node, why)
            out = _fresh(a, node, None)
            a.produced[path] = out[0].space
            return out
        if op == "linear":
            out = _fresh(a, node, None)
            a.produced[path] = out[0].space
            return out
        if op == "flatten":
            shape = node.shape
            if len(x) and shape is not None and len(shape) == 1 and len(_input_shape(a, node, path) or []) == 3:
                h, w = _input_shape(a, node, path)[1:]
                return [Segment(s.space, s.size, s.repeat * h * w) for s in x]
            return list(x)
        if node.attrs.channelwise:
            return list(x)
        # factorized_reduce and anything new: keep its channels whole
        why = f"{op} {path!r} reads or writes them"
        a.fix(x, why)
        a.opaque.add(path)
        return _fresh(a, node, why)
    if isinstance(node, GateNode):
        return list(ins[0])
    if isinstance(node, SumNode):
        return _join(a, ins)
    if isinstance(node, ConcatNode):
        return [s for lay in ins for s in lay]
    if isinstance(node, BlockNode):
        return _region(a, node.body, f"{path}.", ins)[0]
    if isinstance(node, ChoiceNode):
        # candidates read the choice's inputs and their (weighted) outputs are summed: a sum
        outs = [_region(a, cand.body, f"{path}.{cand.name}.", ins)[0] for cand in node.candidates]
        return _join(a, outs)
    if isinstance(node, MergedConvNode):
        why = f"merged conv {path!r} reads or writes them"
        for lay in ins:
            a.fix(lay, why)
        a.opaque.add(path)
        return _fresh(a, node, why)
    raise ValueError(f"channel analysis does not know node kind {node.kind!r}")


def _join(a: ChannelAnalysis, ins: list[list[Segment]]) -> list[Segment]:
    """Element-wise sum of values: couple their spaces segment by segment (fix them if misaligned)."""
    first = ins[0]
    for other in ins[1:]:
        if [(s.size, s.repeat) for s in other] != [(s.size, s.repeat) for s in first]:
            for lay in ins:
                a.fix(lay, "a sum (or choice) adds them to differently concatenated channels")
            return list(first)
        for s, t in zip(first, other):
            a.union(s.space, t.space)
    return list(first)


def _input_shape(a: ChannelAnalysis, node, path: str) -> list[int] | None:
    region, _ = a.nodes[path]
    return region[node.inputs[0]].shape


def kept_indices(layout: list[Segment], keep: dict[int, list[int]], a: ChannelAnalysis) -> list[int]:
    """Indices of a value's channels (features) that survive, given kept channels per space root."""
    out: list[int] = []
    offset = 0
    for seg in layout:
        root = a.find(seg.space)
        chans = keep.get(root, range(seg.size))
        for c in chans:
            out.extend(offset + c * seg.repeat + r for r in range(seg.repeat))
        offset += seg.size * seg.repeat
    return out
