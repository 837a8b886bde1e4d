"""fms: floating module sharing (TopoNAS 3.2.2, Eq. 11-13). Approximate.

Candidates that are chains ``B_i . M . A_i`` with the same parameter-free middle M (the BN and ReLU
between the two halves of the DARTS separable convolutions) become ``second(M(first(x)))``: two
series choices over the A_i and over the B_i, tied to the same covers of the same architecture
parameter, so each sees the weights q_i = p_i / P_F, and M runs once. The group itself is weighted
by P_F inside the original choice. Applied recursively until nothing changes.

Never exact: the second choice sees the mixture of the first, so cross terms B_i(M(A_j x)) appear.
"""

from __future__ import annotations

from nasir.ir.graph import Graph
from nasir.passes._topo_match import Log, simplify
from nasir.passmanager import Pass, PassResult, register


@register
class FloatingModuleSharing(Pass):
    name = "fms"
    summary = "share a floating middle module between two series choices (TopoNAS FMS)"
    exactness = "approximate"

    def run(self, graph: Graph) -> PassResult:
        log = Log(PassResult())
        simplify(graph, pms=False, fms=True, approximate=True, log=log)
        log.finish(graph)
        return log.result
