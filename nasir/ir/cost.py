"""Cost model: parameters and multiply-accumulates (reported as FLOPs) per node and candidate.

Shapes must be inferred first (``nasir.ir.verify.infer_shapes``). Supernet cost counts every
candidate, and every width choice at its largest width (the one weight all widths share);
``arch_cost`` counts only what a fixed architecture runs, at its chosen widths; ``width_costs``
what each width of one width choice costs in the layers that follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ir.merge_forms import forward_macs
from nasir.ir.nodes import BlockNode, ChoiceNode, MergedConvNode, Node, OpNode, Region
from nasir.ir.rewrite import aux_head, width_ops
from nasir.ir.width import WidthAnalysis, fix_widths, has_widths


@dataclass(frozen=True)
class Cost:
    params: int = 0
    flops: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.flops + other.flops)


def _input_shape(node: Node, region: Region) -> list[int]:
    src = region[node.inputs[0]]
    assert src.shape is not None, "run shape inference before asking for costs"
    return src.shape


def node_cost(node: Node, region: Region) -> Cost:
    """Supernet cost of one node: all candidates of a choice are counted."""
    if isinstance(node, OpNode):
        shape = _input_shape(node, region)
        return Cost(node.attrs.params(shape), node.attrs.macs(shape))
    if isinstance(node, ChoiceNode):
        total = Cost()
        for cand in node.candidates:
            total = total + region_cost(cand.body)
        return total
    if isinstance(node, MergedConvNode):
        c_in = _input_shape(node, region)[0]
        params = 0
        for kc in node.kernels:
            if kc.source != "conv":
                continue
            if kc.pointwise:
                params += c_in * kc.kernel**2 + node.out_channels * c_in
            else:
                params += node.out_channels * (c_in // node.groups) * kc.kernel**2
            params += node.out_channels if kc.bias else 0
        if node.form is not None:  # what the chosen form computes
            shape = _input_shape(node, region)
            return Cost(params, forward_macs(node, c_in, (shape[1], shape[2]), node.form))
        k = max(kc.dilation * (kc.kernel - 1) + 1 for kc in node.kernels)
        o, h, w = node.shape or [0, 0, 0]
        dense_groups = 1 if any(kc.pointwise for kc in node.kernels) else node.groups
        return Cost(params, o * h * w * (c_in // dense_groups) * k * k)
    if isinstance(node, BlockNode):
        return region_cost(node.body)
    return Cost()


def region_cost(region: Region) -> Cost:
    total = Cost()
    for node in region.nodes:
        total = total + node_cost(node, region)
    return total


def graph_cost(graph: Graph) -> Cost:
    return region_cost(graph.body)


def aux_head_cost(graph: Graph) -> Cost:
    """Cost of the auxiliary head (``nasir.ir.rewrite.aux_head``), all its candidates counted: it runs
    in training only, and papers leave it out of the parameters they report (DARTS' 3.3M)."""
    body = graph.body
    total = Cost()
    for name in aux_head(body):
        total = total + node_cost(body[name], body)
    return total


def candidate_costs(node: ChoiceNode) -> list[Cost]:
    return [region_cost(c.body) for c in node.candidates]


def arch_cost(graph: Graph, arch: dict[str, int]) -> Cost:
    """Cost of the fixed architecture choosing original index ``arch[name]`` for each parameter."""
    if has_widths(graph):
        graph = _at_widths(graph, arch)
    return _arch_region_cost(graph.body, arch)


def _at_widths(graph: Graph, picks: dict[str, int]) -> Graph:
    """A copy of ``graph`` whose width choices are fixed at ``picks``, shapes inferred."""
    from nasir.ir.verify import infer_shapes  # verify imports the width analysis, as this module does

    graph = graph.copy_deep()
    fix_widths(graph, picks)
    infer_shapes(graph)
    return graph


def width_costs(graph: Graph, arch: str, analysis: WidthAnalysis | None = None) -> list[Cost]:
    """Cost of the ops whose channels width parameter ``arch`` resizes (its producers, the layers
    following them, the layers reading them), at each of its widths; every other width choice at
    its largest width. Shapes must be inferred."""
    analysis = analysis or WidthAnalysis(graph)
    touched = analysis.touched(arch)
    largest = {n.width.arch: n.width.widths.index(max(n.width.widths)) for n in width_ops(graph.body)}
    out = []
    for pick in range(graph.arch[arch].size):
        sized = _at_widths(graph, largest | {arch: pick})
        total = Cost()
        for path, node, region in sized.walk():
            if path in touched and isinstance(node, OpNode):
                total = total + node_cost(node, region)
        out.append(total)
    return out


def _arch_region_cost(region: Region, arch: dict[str, int]) -> Cost:
    total = Cost()
    for node in region.nodes:
        if isinstance(node, ChoiceNode):
            pick = arch[node.arch]
            for cand, cover in zip(node.candidates, node.covers):
                if pick in cover:
                    total = total + _arch_region_cost(cand.body, arch)
        elif isinstance(node, BlockNode):
            total = total + _arch_region_cost(node.body, arch)
        elif isinstance(node, MergedConvNode):
            pick = arch[node.arch]
            c_in = _input_shape(node, region)[0]
            o, h, w = node.shape or [0, 0, 0]
            for kc, cover in zip(node.kernels, node.covers):
                if pick not in cover or kc.source != "conv":
                    continue
                if kc.pointwise:
                    total = total + Cost(c_in * kc.kernel**2 + o * c_in, (c_in * kc.kernel**2 + o * c_in) * h * w)
                else:
                    per = o * (c_in // node.groups) * kc.kernel**2
                    total = total + Cost(per + (o if kc.bias else 0), per * h * w)
        else:
            total = total + node_cost(node, region)
    return total


#: Most weights (elements) a lowered network may hold: 2^32 is 16 GiB of float32, far beyond the
#: supernets nasir trains, and a bound that keeps a damaged IR file (a 99,999 x 99,999 kernel)
#: from asking for terabytes.
MAX_WEIGHTS = 2**32


def check_weight_budget(graph: Graph, limit: int = MAX_WEIGHTS) -> None:
    """Refuse, before anything is allocated, a graph whose supernet would hold more than ``limit``
    weights; the error points at its largest node. Shapes must be inferred first."""
    total, largest, where = 0, 0, None
    for path, node, region in graph.walk():
        if isinstance(node, (OpNode, MergedConvNode)):
            params = node_cost(node, region).params
            total += params
            if params > largest:
                largest, where = params, (path, node)
    if total > limit and where is not None:
        path, node = where
        raise NasirError(f"the network would hold {total:,} weights, more than nasir's limit of {limit:,}; "
                         f"{path!r} alone has {largest:,}", node.loc, hint="check the layer sizes (kernel, channels)")
