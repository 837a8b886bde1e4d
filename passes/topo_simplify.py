"""topo-simplify: PMS and FMS applied recursively to a fixpoint (TopoNAS Alg. 1).

Every choice, and every choice a rewrite creates, is rewritten by the PMS or FMS rewrite that
saves the most modules (PMS on ties: it never changes more than a trailing module), until no rule
applies anywhere. Each rewrite removes at least one module, so this terminates, and at the
fixpoint a second run changes nothing.

The fixpoint does not depend on what ran before: sharing structures left by earlier ``pms`` or
``fms`` passes (or an earlier ``topo-simplify``) are first undone (``_topo_unshare``), so
``pms,fms,topo-simplify``, ``fms,pms,topo-simplify`` and ``topo-simplify`` end in the same graph.

Approximate by default (trailing BN sharing and FMS, as the paper). With ``approximate=false`` only
exact leading/linear-trailing sharing runs (FMS is skipped) and the pass is exact.
"""

from __future__ import annotations

from nasir.ir.graph import Graph
from nasir.passes._topo_match import SharingPass
from nasir.passes._topo_unshare import unshare
from nasir.passmanager import PassResult, register


@register
class TopoSimplify(SharingPass):
    """``approximate=false`` keeps only exact sharing (FMS is skipped then)."""

    name = "topo-simplify"
    summary = "PMS + FMS recursively to a fixpoint (TopoNAS Alg. 1)"
    use_pms = True
    use_fms = True

    def run(self, graph: Graph) -> PassResult:
        before = graph.body.model_dump_json()
        undone = unshare(graph, self.approximate)
        result = super().run(graph)
        if graph.body.model_dump_json() == before:  # a fixpoint already: undone and redone alike
            return PassResult(notes=result.notes)
        if undone:
            result.count("sharings-undone", undone)
        return result
