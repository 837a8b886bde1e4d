"""topo-simplify: PMS and FMS applied recursively to a fixpoint (TopoNAS Alg. 1).

Every choice, and every choice a rewrite creates, is rewritten by PMS (preferred: it never changes
more than a trailing module) or else FMS, until no rule applies anywhere. Each rewrite removes at
least one module, so this terminates, and at the fixpoint a second run changes nothing.

Approximate by default (trailing BN sharing and FMS, as the paper). With ``approximate=false`` only
exact leading/linear-trailing sharing runs (FMS is skipped) and the pass is exact.
"""

from __future__ import annotations

from nasir.ir.graph import Graph
from nasir.passes._topo_match import Log, simplify
from nasir.passmanager import Pass, PassResult, register


@register
class TopoSimplify(Pass):
    name = "topo-simplify"
    summary = "PMS + FMS recursively to a fixpoint (TopoNAS Alg. 1)"
    exactness = "approximate"

    #: Allow the approximate rewrites (trailing non-linear sharing, FMS).
    approximate: bool = True

    def __post_init__(self) -> None:
        self.exactness = "approximate" if self.approximate else "exact"

    def run(self, graph: Graph) -> PassResult:
        log = Log(PassResult())
        simplify(graph, pms=True, fms=True, approximate=self.approximate, log=log)
        log.finish(graph)
        return log.result
