"""Per-edge module counts in the units of TopoNAS Table II.

An *edge* is a top-level weighted node (a choice or merged conv not nested in another choice's
candidate; blocks are looked through), together with the modules the topology passes hoisted next
to it (named ``<edge>.<module>``). Counting follows the paper: a "conv" is one convolution, where a
depthwise conv directly followed by a 1x1 conv (a separable pair) counts once and a merged conv
counts once; every other module computing something (ReLU, BN, pools) is "non-conv"; identity,
zero and flatten count nothing (``nasir.ir.stats.module_counts(..., pair_separable=True)``);
this module adds the grouping of modules into edges, and ``EdgeCountInstrument``, which puts the
per-edge histogram under every row of ``nasir compile --stats``.
"""

from __future__ import annotations

from collections import Counter

from nasir.ir.graph import Graph
from nasir.ir.nodes import ArchWeighted, BlockNode, Region
from nasir.ir.rewrite import weighted_nodes
from nasir.ir.stats import ModuleCounts, node_counts
from nasir.passmanager import Pass, PassInstrument, PassRecord


def edge_counts(graph: Graph) -> dict[str, ModuleCounts]:
    """Table II counts of every edge, keyed by the edge node's path."""
    out: dict[str, ModuleCounts] = {}
    _edges(graph.body, "", out)
    return out


def _edges(region: Region, prefix: str, out: dict[str, ModuleCounts]) -> None:
    weighted = [n.name for n in region.nodes if isinstance(n, ArchWeighted)]

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
        counts = node_counts(region, node, pair_separable=True)
        prev = out.get(key, ModuleCounts())
        out[key] = ModuleCounts(prev.conv + counts.conv, prev.other + counts.other)


def edge_summary(graph: Graph) -> str:
    """One line: how many edges have which counts, e.g. ``6+8=14 x84``."""
    hist = Counter((c.conv, c.other) for c in edge_counts(graph).values())
    parts = [f"{c}+{o}={c + o} x{n}" for (c, o), n in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "modules per edge (conv+non-conv=total x edges): " + (", ".join(parts) if parts else "no edges")


class EdgeCountInstrument(PassInstrument):
    """Adds ``edge_summary`` to the report row of the input and of every pass, for graphs with choices."""

    def before_pipeline(self, graph: Graph, record: PassRecord) -> None:
        _add_summary(graph, record)

    def after_pass(self, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        _add_summary(graph, record)


def _add_summary(graph: Graph, record: PassRecord) -> None:
    if next(weighted_nodes(graph.body), None) is not None:
        record.report_lines.append(edge_summary(graph))
