"""fms: floating module sharing (TopoNAS 3.2.2, Eq. 11-13). Approximate.

Candidates that are chains ``B_i . M . A_i`` with the same parameter-free middle M (the BN and ReLU
between the two halves of the DARTS separable convolutions) become ``second(M(first(x)))``: two
series choices over the A_i and over the B_i, tied to the same covers of the same architecture
parameter, so each sees the weights q_i = p_i / P_F, and M runs once. The group itself is weighted
by P_F inside the original choice. Applied recursively until nothing changes.

Never exact: the second choice sees the mixture of the first, so cross terms B_i(M(A_j x)) appear.
With ``approximate=false`` (the option every sharing pass has) nothing is shared and the pass is exact.
"""

from __future__ import annotations

from nasir.passes._topo_match import SharingPass
from nasir.passmanager import register


@register
class FloatingModuleSharing(SharingPass):
    name = "fms"
    summary = "share a floating middle module between two series choices (TopoNAS FMS)"
    use_pms = False
    use_fms = True
