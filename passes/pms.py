"""pms: partial module sharing (TopoNAS 3.2.1, Eq. 6-10).

Inside a choice, a group S of candidates (possibly a strict subset) that start with the same
module L applied to the choice's input, and/or end with the same module T, becomes one candidate
``T(mix(L(x)))`` weighted by P_S = sum_{i in S} p_i, where ``mix`` chooses among the members with L
and T stripped, weighted by q_i = p_i / P_S. Both weights derive from the original architecture
parameter through covers/domains: no new learnable parameters, and argmax readouts are unchanged.
Applied recursively to the choices it creates, until no choice has anything left to share.

Exactness: sharing a leading module is exact (only parameter-free modules are shared, and they
see the same input). Sharing a trailing module is exact only when it is linear and parameter-free
(average pooling, flatten), since the q_i sum to one. A trailing ReLU, max pool or BatchNorm
(whose batch statistics are taken over the mixture instead of per candidate, in training mode) is
an approximation; TopoNAS accepts it for the trailing BN of the DARTS convolutions. With
``approximate=true`` (default, as the paper) such modules are shared, reported in the pass notes
and the pass declares itself approximate; with ``approximate=false`` only exact sharing happens and
the pass is exact.
"""

from __future__ import annotations

from nasir.passes._topo_match import SharingPass
from nasir.passmanager import register


@register
class PartialModuleSharing(SharingPass):
    """``approximate`` also shares trailing non-linear modules (ReLU, BatchNorm, max pool)."""

    name = "pms"
    summary = "share leading/trailing modules of candidate groups (TopoNAS PMS)"
    use_pms = True
    use_fms = False
