"""dance-gates: insert DANCE select gates on channel dimensions (exact while the gates are open).

A channel-dependency analysis (``nasir.dance.channels``) groups channels that must be pruned
together: layers joined by a residual add share one group, concatenations keep their parts apart,
BatchNorms follow their conv. Every prunable group gets a gate group (named after its first
conv/linear); gates sit where a pruned channel must read as zero (``nasir.dance.insert``). Lowered
gates start with all masks at one, so the pass is exact: the gated network computes the original
function until a DANCE controller closes gates.

Options: ``budget`` is the default C_l of groups without a ``gate`` annotation, a fraction in
(0, 1] or a channel count; ``min_channels`` skips groups narrower than that.
"""

from __future__ import annotations

from nasir.dance.errors import DanceError
from nasir.dance.insert import insert_gates
from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ir.nodes import GateNode
from nasir.ir.width import has_widths
from nasir.passmanager import Exactness, Pass, PassResult, register


@register
class DanceGates(Pass):
    name = "dance-gates"
    summary = "insert DANCE select gates, one per group of coupled channels, with a budget"

    budget: float = 0.5
    min_channels: int = 2

    def exactness(self) -> Exactness:
        return "exact"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult()
        if has_widths(graph):
            raise NasirError("dance-gates: the graph has width choices; DANCE gates prune layers of fixed width",
                             hint="fix the widths first (fix-arch), or search the width with DANCE instead")
        if any(isinstance(n, GateNode) for _, n, _ in graph.walk()):
            result.notes.append("graph already has gates; nothing inserted")
            return result
        try:
            groups = insert_gates(graph, budget=self.budget, min_channels=self.min_channels)
        except DanceError as e:
            raise NasirError(f"dance-gates: {e.message}", e.loc, e.hint) from None
        result.count("gate-groups", len(groups))
        result.count("gates", sum(len(g.gates) for g in groups.values()))
        coupled = sum(1 for g in groups.values() if len(g.producers) > 1)
        if coupled:
            result.notes.append(f"{coupled} group(s) couple several layers (residual adds share one mask)")
        return result
