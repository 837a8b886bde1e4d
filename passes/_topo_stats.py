"""Per-edge module counts in the units of TopoNAS Table II.

An *edge* is a top-level weighted node (a choice or merged conv not nested in another choice's
candidate; blocks are looked through), together with the modules the topology passes hoisted next
to it (named ``<edge>.<module>``). Counting follows the paper: a "conv" is one convolution, where a
depthwise conv directly followed by a 1x1 conv (a separable pair) counts once and a merged conv
counts once; every other module computing something (ReLU, BN, pools) is "non-conv"; identity,
zero and flatten count nothing. ``nasir.ir.stats.module_counts`` counts the two halves of a
separable pair separately, which is why this module exists.
"""

from __future__ import annotations

from collections import Counter

from nasir.ir.graph import Graph
from nasir.ir.nodes import BlockNode, ChoiceNode, MergedConvNode, Node, OpNode, Region, sub_regions
from nasir.ir.ops import FREE_OPS
from nasir.ir.stats import CONV_LIKE, ModuleCounts


def _is_pointwise_after_dw(region: Region, node: OpNode) -> bool:
    a = node.attrs
    if a.op != "conv" or a.kernel != 1 or a.groups != 1 or len(node.inputs) != 1:
        return False
    src = region[node.inputs[0]] if node.inputs[0] in region else None
    return isinstance(src, OpNode) and src.attrs.op == "dwconv" and len(region.users(src.name)) == 1


def _node_counts(region: Region, node: Node) -> tuple[int, int]:
    conv = other = 0
    if isinstance(node, OpNode):
        if node.attrs.op in CONV_LIKE:
            conv += 0 if _is_pointwise_after_dw(region, node) else 1
        elif node.attrs.op not in FREE_OPS:
            other += 1
    elif isinstance(node, MergedConvNode):
        conv += 1
    for _, sub in sub_regions(node):
        c = region_counts(sub)
        conv += c.conv
        other += c.other
    return conv, other


def region_counts(region: Region) -> ModuleCounts:
    """Table II counts of every module in ``region``, at every depth."""
    conv = other = 0
    for node in region.nodes:
        c, o = _node_counts(region, node)
        conv += c
        other += o
    return ModuleCounts(conv, other)


def edge_counts(graph: Graph) -> dict[str, ModuleCounts]:
    """Table II counts of every edge, keyed by the edge node's path."""
    out: dict[str, ModuleCounts] = {}
    _edges(graph.body, "", out)
    return out


def _edges(region: Region, prefix: str, out: dict[str, ModuleCounts]) -> None:
    weighted = [n.name for n in region.nodes if isinstance(n, (ChoiceNode, MergedConvNode))]

    def owner(name: str) -> str | None:
        # hoisted modules and FMS' hoisted first choice are named ``<edge>.<local>``
        found = [e for e in weighted if e != name and name.startswith(f"{e}.")]
        return max(found, key=len) if found else None

    for node in region.nodes:
        if isinstance(node, BlockNode):
            _edges(node.body, f"{prefix}{node.name}.", out)
            continue
        edge = owner(node.name)
        if edge is None and node.name not in weighted:
            continue
        key = f"{prefix}{edge or node.name}"
        conv, other = _node_counts(region, node)
        prev = out.get(key, ModuleCounts())
        out[key] = ModuleCounts(prev.conv + conv, prev.other + other)


def edge_summary(graph: Graph) -> str:
    """One line: how many edges have which counts, e.g. ``6+8=14 x84``."""
    hist = Counter((c.conv, c.other) for c in edge_counts(graph).values())
    parts = [f"{c}+{o}={c + o} x{n}" for (c, o), n in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "modules per edge (conv+non-conv=total x edges): " + (", ".join(parts) if parts else "no edges")
