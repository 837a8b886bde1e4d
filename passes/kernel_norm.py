"""kernel-norm: kernel normalization (TopoNAS 3.5, Eq. 28). Approximate (on purpose).

After reparameterization the merged kernel is sum_i q_i k_i, so scaling a candidate's kernel up and
its weight down leaves the loss unchanged: the architecture weights are not identifiable and the
search drifts. Normalizing every learnable candidate's reparameterized kernel before the merge
removes that freedom: each output filter becomes (k_i - mean(k_i)) / (std(k_i) + eps) / sqrt(fan_in)
with eps = 1e-5, where a depthwise -> pointwise candidate's reparameterized kernel is the dense
product PW_i[o, c] DW_i[c] (``nasir.kernels.reference`` documents the statistics, and why the gain
and the product: standardizing the two factors one by one left a DARTS supernet unable to learn).
Fixed kernels (identity delta, uniform pooling) are left as they are, and so are filters of a single
number (a ``dwconv(1)`` kernel alone): standardizing one number gives 0, which would turn the
candidate into a zero op (``nasir.kernels.reference.single_tap``).

The pass marks every ``merged_conv`` node ``normalize=true``; the lowered ``MergedConv`` passes the
flag to the kernel, which standardizes inside the fused op. ``reparam{kernel_norm=true}`` does the
same in one step. Run it after ``reparam``: a graph without merged convs is left unchanged, with a
note saying so.
"""

from __future__ import annotations

from nasir.ir.graph import Graph
from nasir.ir.nodes import MergedConvNode
from nasir.passmanager import Exactness, Pass, PassResult, register


@register
class KernelNorm(Pass):
    name = "kernel-norm"
    summary = "standardize candidate kernels of merged convs before the merge (TopoNAS Eq. 28)"

    def exactness(self) -> Exactness:
        return "approximate"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult()
        if not normalize_merged_convs(graph, result):
            result.notes.append("no merged_conv nodes: run reparam first")
        return result


def normalize_merged_convs(graph: Graph, result: PassResult) -> bool:
    """Mark every merged conv ``normalize=true`` (counting those that were not); False if there is none.

    ``reparam{kernel_norm=true}`` calls this after merging.
    """
    merged = [n for _, n, _ in graph.walk() if isinstance(n, MergedConvNode)]
    for node in merged:
        if not node.normalize:
            node.normalize = True
            result.count("kernels-normalized")
    return bool(merged)
