"""topo-simplify: PMS and FMS applied recursively to a fixpoint (TopoNAS Alg. 1).

Every choice, and every choice a rewrite creates, is rewritten by PMS (preferred: it never changes
more than a trailing module) or else FMS, until no rule applies anywhere. Each rewrite removes at
least one module, so this terminates, and at the fixpoint a second run changes nothing.

Approximate by default (trailing BN sharing and FMS, as the paper). With ``approximate=false`` only
exact leading/linear-trailing sharing runs (FMS is skipped) and the pass is exact.
"""

from __future__ import annotations

from nasir.passes._topo_match import SharingPass
from nasir.passmanager import register


@register
class TopoSimplify(SharingPass):
    """``approximate=false`` keeps only exact sharing (FMS is skipped then)."""

    name = "topo-simplify"
    summary = "PMS + FMS recursively to a fixpoint (TopoNAS Alg. 1)"
    use_pms = True
    use_fms = True
