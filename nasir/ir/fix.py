"""One architecture of a graph as a plain network, whatever passes rewrote the graph.

Passes make a supernet cheaper without changing what any one architecture computes: module
sharing hoists modules out of choices (TopoNAS PMS/FMS), ``reparam`` merges a choice's convolutions
into one ``merged_conv``. So the fixed network of a rewritten graph is still the plain architecture:
every choice becomes its chosen candidate, inlined, and every merged convolution the plain op its
chosen kernel stands for (``fold_merged_conv``):

* a learnable kernel: one ``conv`` with the candidate's size, dilation, stride, grouping and bias
  (``dwconv`` when it is depthwise), or ``dwconv -> conv(C, 1)`` for a depthwise->pointwise pair.
  Exact: a merged conv at a one-hot weight convolves with that kernel embedded in the merged
  footprint, padded to its centre, which is the candidate's own dilated convolution. Where the
  merged conv normalizes kernels, a depthwise->pointwise pair folds into one dense ``conv`` (named
  after its pointwise conv): normalization acts on the pair's reparameterized kernel, the product
  PW[o, c] DW[c], and subtracting that product's mean leaves no depthwise->pointwise factorization;
* the identity delta: nothing (the value passes through);
* the uniform pooling kernel: the ``avg_pool(k, stride, count_include_pad = true)`` it came from;
* a picked candidate that was a ``zero`` (merged convs drop zeros, keeping their index): ``zero``.

Lowering in fixed mode (``nasir.lowering``) emits these ops, ``fix_architecture`` writes them into
the IR (the ``fix-arch`` pass, ``nasir export --format safetensors``). Both name a folded op
``<merged conv>.<candidate>.<name of the op it replaced>``, so the IR path of every module of a
fixed network is the same in the lowered module and in the fixed graph. A folded op's weight and
bias are the merged conv's kernel and bias of the candidate (``FoldedOp.params``), the kernel
normalized first where the merged conv normalizes kernels (TopoNAS 3.5, ``FoldedOp.normalize``):
``NasirModule.sliced_state_dict`` folds a trained supernet's weights that way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from nasir.ir.graph import Graph
from nasir.ir.nodes import ChoiceNode, KernelCandidate, MergedConvNode, OpNode, Region, sub_regions
from nasir.ir.ops import AvgPool, Conv, DWConv, OpAttrs, Zero
from nasir.ir.rewrite import inline_region, replace_node
from nasir.ir.verify import infer_shapes
from nasir.ir.width import fix_widths


@dataclass(frozen=True)
class FoldedOp:
    """One plain op standing for (part of) a merged convolution's chosen candidate."""

    node: OpNode
    #: The op's parameters (``weight``, ``bias``) -> the merged conv's parameters they are, relative
    #: to it (``kernels.<candidate>``, ``pointwise.<candidate>``, ``biases.<candidate>``).
    params: dict[str, str] = field(default_factory=dict)
    #: Whether the weight is normalized (kernel normalization; biases never are) before it is this op's.
    normalize: bool = False
    #: A normalized depthwise->pointwise pair folded into one dense conv: the source of its pointwise
    #: kernel (``pointwise.<candidate>``); the weight is the product PW[o, c] DW[c], normalized.
    pointwise: str | None = None


def chosen_kernel(node: MergedConvNode, pick: int) -> KernelCandidate | None:
    """The kernel candidate of ``node`` covering original candidate ``pick``; None when ``pick`` was a
    zero candidate the merge dropped."""
    return next((k for k, cover in zip(node.kernels, node.covers) if pick in cover), None)


def _plain_ops(node: MergedConvNode, kernel: KernelCandidate | None, c_in: int) -> list[tuple[str, OpAttrs, dict[str, str]]]:
    """(local name, op, its parameters' sources) of what ``kernel`` stands for, in order. A conv is
    named after the op it replaced (``weight_names``), so the fixed network reads like the plain space's."""
    if kernel is None:
        return [("zero", Zero(stride=node.stride), {})]
    if kernel.source == "identity":
        return []
    if kernel.source == "avg_pool":
        return [(f"{kernel.name}.avg_pool", AvgPool(kernel=kernel.kernel, stride=node.stride, count_include_pad=True), {})]
    taps = {"kernel": kernel.kernel, "stride": node.stride, "dilation": kernel.dilation}
    first, second = ([name.rsplit(".", 1)[-1] for name in kernel.weight_names] + ["conv", "conv"])[:2]
    if kernel.pointwise and node.normalize:  # the normalized product PW DW (``fold_merged_conv``)
        return [(f"{kernel.name}.{second}", Conv(out_channels=node.out_channels, **taps),
                 {"weight": f"kernels.{kernel.name}"})]
    if kernel.pointwise:  # never with a bias
        second = second if second != first else f"{second}_pointwise"  # two ops whose names end alike
        return [(f"{kernel.name}.{first}", DWConv(**taps), {"weight": f"kernels.{kernel.name}"}),
                (f"{kernel.name}.{second}", Conv(out_channels=node.out_channels), {"weight": f"pointwise.{kernel.name}"})]
    params = {"weight": f"kernels.{kernel.name}"} | ({"bias": f"biases.{kernel.name}"} if kernel.bias else {})
    if node.groups == c_in == node.out_channels and c_in > 1:
        return [(f"{kernel.name}.{first}", DWConv(bias=kernel.bias, **taps), params)]
    return [(f"{kernel.name}.{first}", Conv(out_channels=node.out_channels, groups=node.groups, bias=kernel.bias, **taps),
             params)]


def fold_merged_conv(node: MergedConvNode, pick: int, in_shape: list[int]) -> list[FoldedOp]:
    """The plain ops, in order, computing what ``node`` (reading a value of ``in_shape``) computes when
    its architecture parameter picks original candidate ``pick``; empty for the identity.

    The op nodes are named ``<node>.<local name>``, chained from ``node``'s input, with their shapes.
    """
    kernel = chosen_kernel(node, pick)
    folded: list[FoldedOp] = []
    source, shape = node.inputs[0], list(in_shape)
    for local, attrs, params in _plain_ops(node, kernel, in_shape[0]):
        out = attrs.out_shape(shape)
        op = OpNode(name=f"{node.name}.{local}", inputs=[source], loc=node.loc, shape=out, attrs=attrs)
        product = f"pointwise.{kernel.name}" if kernel is not None and kernel.pointwise and node.normalize else None
        folded.append(FoldedOp(op, params, normalize=node.normalize and bool(params), pointwise=product))
        source, shape = op.name, out
    return folded


def fix_architecture(graph: Graph, picks: Mapping[str, int]) -> Counter:
    """Turn ``graph`` in place into the plain network ``picks`` (``resolve_arch``'s indices) choose:
    no choices, no merged convs, no width choices (``fix_widths``), no architecture parameters.
    Returns what it did (counts).

    A choice's chosen candidate is inlined with its path as a name prefix (``e.cand.conv``), so
    weights keep their names; a choice whose picked candidate a pass dropped computes zero.
    """
    infer_shapes(graph)  # a folded op needs its input's shape
    counts: Counter = Counter()
    _fix_region(graph.body, picks, counts)
    widths = fix_widths(graph, picks)
    if widths:
        counts["widths-fixed"] = widths
    graph.arch = {}
    graph.input_groups = []
    infer_shapes(graph)  # the fixed widths' shapes
    return counts


def _fix_region(region: Region, picks: Mapping[str, int], counts: Counter) -> None:
    for node in list(region.nodes):
        if isinstance(node, ChoiceNode):
            pick = picks[node.arch]
            chosen = next((c for c, cover in zip(node.candidates, node.covers) if pick in cover), None)
            if chosen is None:  # the picked candidate was a zero a pass dropped
                replace_node(region, node.name, [OpNode(name=node.name, inputs=node.inputs[:1], loc=node.loc,
                                                        shape=node.shape, attrs=Zero())])
                counts["dropped-zeros-fixed"] += 1
                continue
            _fix_region(chosen.body, picks, counts)
            inline_region(region, node.name, chosen.body, f"{node.name}.{chosen.name}.")
            counts["choices-fixed"] += 1
        elif isinstance(node, MergedConvNode):
            folded = fold_merged_conv(node, picks[node.arch], region[node.inputs[0]].shape)
            replace_node(region, node.name, [f.node for f in folded], folded[-1].node.name if folded else node.inputs[0])
            counts["merged-convs-folded"] += 1
        else:
            for _, sub in sub_regions(node):
                _fix_region(sub, picks, counts)
