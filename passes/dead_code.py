"""dead-code: drop nodes no output depends on, and architecture parameters nothing uses (exact)."""

from __future__ import annotations

from nasir.ir.graph import Graph
from nasir.ir.rewrite import all_regions, live_nodes, used_arch
from nasir.passmanager import Exactness, Pass, PassResult, register


@register
class DeadCode(Pass):
    name = "dead-code"
    summary = "remove nodes that no output depends on and unused architecture parameters"

    def exactness(self) -> Exactness:
        return "exact"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult()
        for region in list(all_regions(graph.body)):
            live = live_nodes(region)
            dead = [n.name for n in region.nodes if n.name not in live]
            if dead:
                region.nodes = [n for n in region.nodes if n.name in live]
                region.touch()
                result.count("nodes-removed", len(dead))
        used = used_arch(graph.body)
        unused = [a for a in graph.arch if a not in used]
        for a in unused:
            del graph.arch[a]
        if unused:
            result.count("arch-params-removed", len(unused))
        kept = []
        for group in graph.input_groups:
            group.members = [m for m in group.members if m in used]
            if group.members:
                kept.append(group)
        graph.input_groups = kept
        return result
