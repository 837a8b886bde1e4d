"""partial-channel: PC-DARTS partial channel connections and edge normalization (Xu et al., ICLR 2020).
Approximate: it changes the function on purpose.

**Partial channels.** A choice ``y = choice(x)`` over a feature map of C channels becomes::

    part  = channel_slice(0, C/k)(x)          # 1/k of the channels go through the candidates,
    rest  = channel_slice(C/k, C)(x)          # the others bypass them
    y     = choice(part)                      # every candidate rebuilt for C/k channels
    rest' = max_pool(2, 2)(rest)              # only where the candidates reduce the resolution
    out   = channel_shuffle(k)(concat(y, rest'))

as ``MixedOp`` of the PC-DARTS reference does: candidates hold and compute 1/k of the weights and
activations, which is what lets PC-DARTS search with a batch of 256. Candidates are rebuilt by
dividing every output width of their ops (the ``out_channels`` of ``conv`` and
``factorized_reduce``, the ``out_features`` of ``linear``) by k; a choice keeps all its channels
where that cannot work (a width not divisible by k, an output with other channels than the input,
a width choice, an already merged conv), and a pass note says how many and why. The choice keeps
its name, so its candidates' weights keep their paths.

**Edge normalization** (``edge_norm``, on by default). Every sum of an ``input_choice`` -- the sum of
one edge per earlier state in a DARTS cell node -- gets edge weights (``SumNode.edge_weights``): a
parameter beta per input group, edge i scaled by ``softmax(beta)[i]``, trained with the alphas.
Derivation ranks a node's edges by their best non-'none' candidate weight times the edge weight,
the PC-DARTS genotype rule.

Search only: the architecture found is built without this pass (``search_only``), as PC-DARTS
trains its final network from the plain genotype; the choices' parameter names do not change, so
the architecture fits the space as written. Run it first in a pipeline: the passes after it
(``topo-simplify``, ``reparam``) work on the reduced choices as on any other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from pydantic import ValidationError

from nasir.diagnostics import NasirError, VerificationError
from nasir.ir.graph import Graph, InputGroup
from nasir.ir.nodes import ArchWeighted, BlockNode, ChoiceNode, ConcatNode, MergedConvNode, OpNode, Region, SumNode
from nasir.ir.ops import ChannelShuffle, ChannelSlice, MaxPool
from nasir.ir.rewrite import insert_after, insert_before, replace_uses, walk
from nasir.ir.verify import infer_region, infer_shapes
from nasir.passmanager import Exactness, Pass, PassResult, register

#: The op attributes that are output widths (``conv``, ``factorized_reduce``; ``linear``).
_OUTPUT_WIDTHS = ("out_channels", "out_features")


class _Whole(Exception):
    """A choice the pass leaves with all its channels; the message says why (a pass note)."""


@register
@dataclass
class PartialChannel(Pass):
    name = "partial-channel"
    summary = "PC-DARTS: 1/k of each choice's channels through its candidates, channel shuffle, edge weights"
    search_only: ClassVar[bool] = True

    k: int = 4
    edge_norm: bool = True

    def exactness(self) -> Exactness:
        return "approximate"

    def run(self, graph: Graph) -> PassResult:
        if self.k < 2:
            raise NasirError(f"partial-channel{{k={self.k}}}: k is the channel proportion 1/k and must be >= 2")
        infer_shapes(graph)
        result = PassResult()
        if self.edge_norm:
            normalize_edges(graph, result)
        whole: Counter[str] = Counter()
        for region in _cell_regions(graph.body):
            for node in list(region.nodes):
                if isinstance(node, ChoiceNode):
                    try:
                        self._split(region, node)
                        result.count("choices-partial")
                    except _Whole as why:
                        whole[str(why)] += 1
        result.notes += [f"{n} choice(s) keep all their channels: {why}" for why, n in sorted(whole.items())]
        return result

    def _split(self, region: Region, node: ChoiceNode) -> None:
        """Rewrite ``node`` as the module docstring shows, or raise ``_Whole``."""
        k = self.k
        if len(node.inputs) != 1:
            raise _Whole("they read several inputs")
        c, h, w = _feature_map(region[node.inputs[0]].shape)
        if c % k or node.shape is None or node.shape[0] != c:
            raise _Whole(f"their output channels differ from their input channels or are not divisible by k={k}")
        part = c // k
        choice = node.model_copy(deep=True)
        for cand in choice.candidates:
            _divide_widths(cand.body, k)
        try:
            outs = [infer_region(cand.body, [[part, h, w]]) for cand in choice.candidates]
        except VerificationError:
            raise _Whole(f"their candidates do not run on 1/{k} of the channels") from None
        out = outs[0][0]
        if any(o[0] != out for o in outs) or out[0] != part or out[1:] != node.shape[1:]:
            raise _Whole(f"their candidates do not map 1/{k} of the channels to 1/{k} of the channels")
        pool = _bypass_pool([c - part, h, w], out[1:])
        fresh = region.fresh_name
        head = OpNode(name=fresh(f"{node.name}_part"), inputs=list(node.inputs), attrs=ChannelSlice(stop=part),
                      loc=node.loc)
        rest = OpNode(name=fresh(f"{node.name}_rest"), inputs=list(node.inputs), attrs=ChannelSlice(start=part, stop=c),
                      loc=node.loc)
        after: list = []
        bypass = rest.name
        if pool is not None:
            after.append(OpNode(name=fresh(f"{node.name}_pool"), inputs=[rest.name], attrs=pool, loc=node.loc))
            bypass = after[-1].name
        cat = ConcatNode(name=fresh(f"{node.name}_cat"), inputs=[node.name, bypass], loc=node.loc)
        shuffle = OpNode(name=fresh(f"{node.name}_shuffle"), inputs=[cat.name], attrs=ChannelShuffle(groups=k),
                         loc=node.loc)
        replace_uses(region, node.name, shuffle.name)
        choice.inputs = [head.name]
        region.nodes[region.position(node.name)] = choice
        insert_before(region, node.name, [head, rest])
        insert_after(region, node.name, [*after, cat, shuffle])


def normalize_edges(graph: Graph, result: PassResult) -> None:
    """Give every sum of an input group's edges (in the group's order) that group's edge weights."""
    groups = {tuple(g.members): g for g in graph.input_groups}
    for region in _cell_regions(graph.body):
        for node in region.nodes:
            if isinstance(node, SumNode) and node.edge_weights is None:
                group = _group_of(node, region, groups)
                if group is not None:
                    node.edge_weights = group.name
                    result.count("sums-edge-weighted")
    if not result.stats.get("sums-edge-weighted"):
        result.notes.append("no sum of input_choice edges: nothing to normalize")


def _group_of(node: SumNode, region: Region, groups: dict[tuple[str, ...], InputGroup]) -> InputGroup | None:
    inputs = [region[i] for i in node.inputs]
    if not all(isinstance(i, ArchWeighted) for i in inputs):
        return None
    return groups.get(tuple(i.arch for i in inputs))


def _cell_regions(region: Region) -> Iterator[Region]:
    """``region`` and the bodies of the blocks in it: the regions whose choices are edges. Regions
    inside candidates are not: a candidate is rebuilt whole for its part of the channels."""
    yield region
    for node in region.nodes:
        if isinstance(node, BlockNode):
            yield from _cell_regions(node.body)


def _feature_map(shape: list[int] | None) -> tuple[int, int, int]:
    if shape is None or len(shape) != 3:
        raise _Whole("their input is not a feature map [C, H, W]")
    return shape[0], shape[1], shape[2]


def _divide_widths(body: Region, k: int) -> None:
    """Every op of ``body`` (at any depth) with 1/k of its output width; ``_Whole`` where that is not whole."""
    for _, node, _ in walk(body):
        if isinstance(node, MergedConvNode):
            raise _Whole("they hold merged convolutions (run partial-channel before reparam)")
        if not isinstance(node, OpNode):
            continue
        if node.width is not None:
            raise _Whole("their candidates choose widths")
        attrs = node.attrs.model_dump()
        for attr in _OUTPUT_WIDTHS:
            if attr in attrs:
                if attrs[attr] % k:
                    raise _Whole(f"a candidate width is not divisible by k={k}")
                attrs[attr] //= k
        try:
            node.attrs = type(node.attrs).model_validate(attrs)
        except ValidationError as e:
            raise _Whole(f"a candidate op cannot have 1/{k} of its width ({e.errors()[0]['msg']})") from None


def _bypass_pool(rest: list[int], size: list[int]) -> MaxPool | None:
    """The 2x2 stride-2 max pool that brings the bypassed channels to the candidates' resolution
    (PC-DARTS' ``MaxPool2d(2, 2)``; padding 1 where the size is odd), or None at the same resolution."""
    if rest[1:] == size:
        return None
    for padding in (0, 1):
        pool = MaxPool(kernel=2, stride=2, padding=padding)
        if pool.out_shape(rest)[1:] == size:
            return pool
    raise _Whole(f"the bypassed channels cannot be pooled from {rest[1:]} to the candidates' {size}")
