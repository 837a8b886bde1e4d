"""DANCE's channel groups: the IR's channel-dependency analysis plus the rule gates need.

The analysis itself (layouts, spaces, what couples and what fixes channels) is
``nasir.ir.channels``, shared with width choices. Gates add one rule: a per-channel op that can
turn a zero channel nonzero (bn, sigmoid) must be followed by a gate, and a concatenation would
need one gate per segment there, so such ops applied to a concatenation keep their channels whole.
"""

from __future__ import annotations

from nasir.ir.channels import ChannelAnalysis, Segment, analyze_channels, kept_indices
from nasir.ir.graph import Graph
from nasir.ir.nodes import OpNode

__all__ = ["ChannelAnalysis", "Segment", "analyze", "breaks_zero", "kept_indices"]


def breaks_zero(node: object) -> bool:
    """A channelwise op that can turn a zero channel nonzero (bn, sigmoid): a gate must follow it
    for extraction to stay exact."""
    return isinstance(node, OpNode) and node.attrs.channelwise and not node.attrs.zero_preserving


def analyze(graph: Graph) -> ChannelAnalysis:
    """The channel analysis of ``graph`` (shapes must be inferred) with DANCE's gate rule applied."""
    a = analyze_channels(graph)
    for path in a.order:
        _, node = a.nodes[path]
        if breaks_zero(node) and len(a.layouts[path]) > 1:
            a.fix(a.layouts[path], f"{node.attrs.op} {path!r} maps zero channels of a concatenation to nonzero")
    return a
