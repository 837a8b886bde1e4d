"""Graph statistics reported by the pass manager after every pass."""

from __future__ import annotations

from dataclasses import dataclass

from nasir.ir.cost import graph_cost
from nasir.ir.graph import Graph
from nasir.ir.nodes import MergedConvNode, Node, OpNode, Region, sub_regions
from nasir.ir.rewrite import used_arch
from nasir.ir.verify import infer_shapes


@dataclass(frozen=True)
class ModuleCounts:
    conv: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.conv + self.other


def _is_pointwise_after_dw(region: Region, node: OpNode) -> bool:
    """A 1x1 conv whose only input is a depthwise conv used by nothing else: a separable pair."""
    a = node.attrs
    if a.op != "conv" or a.kernel != 1 or a.groups != 1 or len(node.inputs) != 1:
        return False
    src = region[node.inputs[0]] if node.inputs[0] in region else None
    return isinstance(src, OpNode) and src.attrs.op == "dwconv" and len(region.users(src.name)) == 1


def node_counts(region: Region, node: Node, pair_separable: bool = False) -> ModuleCounts:
    """Modules of one node of ``region``, at every depth (see :func:`module_counts`)."""
    conv = other = 0
    if isinstance(node, OpNode):
        if node.attrs.conv_like:
            conv += 0 if pair_separable and _is_pointwise_after_dw(region, node) else 1
        elif not node.attrs.computes_nothing:
            other += 1
    elif isinstance(node, MergedConvNode):
        conv += 1
    for _, sub in sub_regions(node):
        inner = module_counts(sub, pair_separable)
        conv += inner.conv
        other += inner.other
    return ModuleCounts(conv, other)


def module_counts(region: Region, pair_separable: bool = False) -> ModuleCounts:
    """Modules that compute something, at every depth: conv-like ops and merged convs vs the rest.

    Ops that compute nothing (identity, zero, flatten) are not counted. With
    ``pair_separable`` a depthwise conv followed by its own 1x1 conv counts as one conv, as TopoNAS
    Table II counts a separable convolution.
    """
    conv = other = 0
    for node in region.nodes:
        c = node_counts(region, node, pair_separable)
        conv += c.conv
        other += c.other
    return ModuleCounts(conv, other)


@dataclass(frozen=True)
class GraphStats:
    modules: int
    conv: int
    params: int
    flops: int
    arch_params: int
    space_size: int


def graph_stats(graph: Graph, infer: bool = True) -> GraphStats:
    if infer:
        infer_shapes(graph)
    counts = module_counts(graph.body)
    cost = graph_cost(graph)
    return GraphStats(counts.total, counts.conv, cost.params, cost.flops, len(used_arch(graph.body)), graph.search_space_size())
