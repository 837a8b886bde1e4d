"""Shape inference and the IR verifier.

``infer_shapes`` fills ``node.shape`` everywhere (regions get their input shapes from the node that
owns them) and ``verify`` checks structural invariants on top. Both raise ``VerificationError``
located at the DSL text of the offending node, so a channel mismatch introduced by a typo in a
``.nas`` file points at that line.
"""

from __future__ import annotations

from pydantic import ValidationError

from nasir.diagnostics import VerificationError
from nasir.ir.graph import Graph
from nasir.ir.nodes import (
    ArchWeighted,
    BlockNode,
    ChoiceNode,
    ConcatNode,
    GateNode,
    InputNode,
    KernelCandidate,
    MergedConvNode,
    Node,
    OpNode,
    OutputNode,
    Region,
    SumNode,
)
from nasir.ir.ops import ShapeError
from nasir.ir.width import check_widths

_ARITY = {"op": 1, "output": 1, "gate": 1, "merged_conv": 1, "input": 0}


def infer_shapes(graph: Graph) -> None:
    _infer_region(graph.body, None)


def _fail(node: Node, message: str, hint: str | None = None) -> VerificationError:
    return VerificationError(f"{message} (at node '{node.name}')", node.loc, hint)


def _infer_region(region: Region, input_shapes: list[list[int]] | None) -> list[list[int]]:
    shapes: dict[str, list[int]] = {}
    for node in region.nodes:
        if isinstance(node, InputNode):
            if input_shapes is not None:
                if node.index >= len(input_shapes):
                    raise _fail(node, f"region input {node.index} has no value")
                node.shape = list(input_shapes[node.index])
            elif node.shape is None:
                raise _fail(node, "network input has no shape", "declare it as `input x: [3, 32, 32]`")
            shapes[node.name] = node.shape
            continue
        missing = [i for i in node.inputs if i not in shapes]
        if missing:
            raise _fail(node, f"uses {missing[0]!r} before it is defined")
        ins = [shapes[i] for i in node.inputs]
        node.shape = _node_shape(node, ins)
        shapes[node.name] = node.shape
    return [shapes[o.name] for o in region.outputs]


def infer_region(region: Region, input_shapes: list[list[int]]) -> list[list[int]]:
    """Fill the shapes of a nested region (a candidate body) whose inputs have ``input_shapes``;
    returns its output shapes. A pass that rebuilds a region for other inputs checks it with this."""
    return _infer_region(region, input_shapes)


def _node_shape(node: Node, ins: list[list[int]]) -> list[int]:
    try:
        if isinstance(node, OpNode):
            return node.attrs.out_shape(ins[0])
        if isinstance(node, (OutputNode, GateNode)):
            if isinstance(node, GateNode) and ins[0][0] != node.channels:
                raise ShapeError(f"gate over {node.channels} channels applied to {ins[0][0]}")
            return list(ins[0])
        if isinstance(node, SumNode):
            if not ins:
                raise ShapeError("sum of nothing")
            for s in ins[1:]:
                if s != ins[0]:
                    raise ShapeError(f"sum of mismatched shapes {ins[0]} and {s}")
            return list(ins[0])
        if isinstance(node, ConcatNode):
            if not ins or any(len(s) != len(ins[0]) or s[1:] != ins[0][1:] for s in ins):
                raise ShapeError(f"concat needs equal spatial sizes, got {ins}")
            return [sum(s[0] for s in ins), *ins[0][1:]]
        if isinstance(node, ChoiceNode):
            outs = []
            for cand in node.candidates:
                out = _infer_region(cand.body, ins)
                if len(out) != 1:
                    raise ShapeError(f"candidate {cand.name!r} must have one output")
                outs.append(out[0])
            for cand, s in zip(node.candidates, outs):
                if s != outs[0]:
                    message = (f"candidates disagree on output shape: {node.candidates[0].name!r} gives {outs[0]}, "
                               f"{cand.name!r} gives {s}")
                    if s[1:] == outs[0][1:]:
                        raise _fail(node, message, "to choose a channel count, put the value choice on the conv "
                                                   "itself, conv(one_of [...], k), or pass it into a template as "
                                                   "shared(one_of [...]): a width choice (docs/width-choices.md)")
                    raise ShapeError(message)
            return outs[0]
        if isinstance(node, MergedConvNode):
            c, h, w = ins[0]
            k = max(kc.dilation * (kc.kernel - 1) + 1 for kc in node.kernels)
            pad = k // 2
            size = lambda n: (n + 2 * pad - k) // node.stride + 1  # noqa: E731
            return [node.out_channels, size(h), size(w)]
        if isinstance(node, BlockNode):
            outs = _infer_region(node.body, ins)
            return outs[0]
    except ShapeError as e:
        raise _fail(node, str(e), "check the channel counts passed to this op and to its inputs") from None
    raise _fail(node, f"unknown node kind {node.kind!r}")


def verify(graph: Graph) -> None:
    """Check every invariant of the IR, then shapes and what width choices need. Raises ``VerificationError``."""
    _verify_region(graph, graph.body, top=True)
    for group in graph.input_groups:
        for m in group.members:
            if m not in graph.arch:
                raise VerificationError(f"input group {group.name!r} names unknown arch parameter {m!r}")
    infer_shapes(graph)
    check_widths(graph)


def _verify_region(graph: Graph, region: Region, top: bool) -> None:
    seen: set[str] = set()
    if not region.outputs:
        where = region.nodes[0] if region.nodes else None
        raise VerificationError("region has no output", where.loc if where else None)
    for node in region.nodes:
        if node.name in seen:
            raise _fail(node, "duplicate node name")
        if "" in node.name.split("."):
            raise _fail(node, "a node name is dot-separated non-empty parts (they become module paths)")
        for src in node.inputs:
            if src not in seen:
                raise _fail(node, f"input {src!r} is not defined before this node")
        if node.shape is not None and any(d < 1 for d in node.shape):
            raise _fail(node, f"shape {node.shape} has a dimension below 1 (channels and sizes are positive)")
        want = _ARITY.get(node.kind)
        if want is not None and len(node.inputs) != want:
            raise _fail(node, f"{node.kind} takes {want} input(s), got {len(node.inputs)}")
        if isinstance(node, OpNode):
            _verify_attrs(node)
            if node.width is not None:
                _verify_width(graph, node)
        if isinstance(node, MergedConvNode):
            _verify_kernels(node)
        if isinstance(node, ArchWeighted):
            _verify_weighted(graph, node)
        if isinstance(node, SumNode) and node.edge_weights is not None:
            _verify_edge_weights(graph, node)
        if isinstance(node, ChoiceNode):
            for cand in node.candidates:
                if not cand.name or "." in cand.name:
                    raise _fail(node, f"candidate name {cand.name!r} must be non-empty and without dots "
                                      "(it names one module)")
                if len(cand.body.inputs) > len(node.inputs):
                    raise _fail(node, f"candidate {cand.name!r} reads more inputs than the choice has")
                _verify_region(graph, cand.body, top=False)
        if isinstance(node, BlockNode):
            _verify_region(graph, node.body, top=False)
        seen.add(node.name)
    _verify_aux(region, top)


def _verify_aux(region: Region, top: bool) -> None:
    """An auxiliary output is the network's (a region nested in a choice or block returns one value),
    there is at most one, and beside the one output that ``AuxOutput`` pairs it with."""
    aux = region.aux_outputs
    if not aux:
        return
    if not top:
        raise _fail(aux[0], "an auxiliary output belongs to the network's top level, not to a nested region")
    if len(aux) > 1:
        raise _fail(aux[1], "a network has at most one auxiliary output")
    if len(region.outputs) != 1:
        raise _fail(aux[0], f"a network with an auxiliary output has exactly one output, not {len(region.outputs)}",
                    "training returns the pair (logits, aux_logits)")


def _verify_attrs(node: OpNode) -> None:
    """Re-check the attribute ranges: a pass may have built them with ``model_copy(update=...)``, which skips them."""
    try:
        type(node.attrs).model_validate(node.attrs.model_dump())
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise _fail(node, f"{node.attrs.op}: attribute {key!r}: {first['msg']}") from None


def _verify_width(graph: Graph, node: OpNode) -> None:
    """A width choice: on an op that has a width attribute, whose value is the largest width, over a
    width parameter with one width per candidate, all different."""
    attrs, width = node.attrs, node.width
    if attrs.width_attr is None:
        raise _fail(node, f"{attrs.op} has no output width to choose", "width choices go on conv, pwconv or linear")
    if getattr(attrs, "groups", 1) != 1:
        raise _fail(node, f"a width choice needs a dense conv, not groups={attrs.groups}")
    param = graph.arch.get(width.arch)
    if param is None:
        raise _fail(node, f"unknown architecture parameter {width.arch!r}")
    if param.kind != "width":
        raise _fail(node, f"architecture parameter {width.arch!r} is a {param.kind} choice, not a width choice")
    if len(width.widths) != param.size:
        raise _fail(node, f"{len(width.widths)} widths for the {param.size} candidates of {width.arch!r}")
    if len(set(width.widths)) != len(width.widths):
        raise _fail(node, f"width choice {width.arch!r} lists a width twice: {width.widths}")
    if getattr(attrs, attrs.width_attr) != max(width.widths):
        raise _fail(node, f"{attrs.op}: {attrs.width_attr}={getattr(attrs, attrs.width_attr)} must be the largest "
                          f"width of its width choice, {max(width.widths)}")


def _verify_edge_weights(graph: Graph, node: SumNode) -> None:
    """Edge weights come from an input group with one member per input of the sum."""
    group = next((g for g in graph.input_groups if g.name == node.edge_weights), None)
    if group is None:
        raise _fail(node, f"edge weights of unknown input group {node.edge_weights!r}")
    if len(group.members) != len(node.inputs):
        raise _fail(node, f"edge weights of input group {group.name!r} ({len(group.members)} edges) "
                          f"on a sum of {len(node.inputs)} inputs")


def _verify_kernels(node: MergedConvNode) -> None:
    """Re-check every kernel candidate (a bias only on a learnable kernel without a pointwise conv)."""
    for kc in node.kernels:
        try:
            KernelCandidate.model_validate(kc.model_dump())
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise _fail(node, f"kernel {kc.name!r}: {key!r}: {first['msg']}") from None


def _verify_weighted(graph: Graph, node: ArchWeighted) -> None:
    param = graph.arch.get(node.arch)
    if param is None:
        raise _fail(node, f"unknown architecture parameter {node.arch!r}")
    if param.kind == "width":
        raise _fail(node, f"architecture parameter {node.arch!r} chooses widths, not candidates")
    count = len(node.candidates) if isinstance(node, ChoiceNode) else len(node.kernels)
    if len(node.covers) != count:
        raise _fail(node, f"{len(node.covers)} covers for {count} candidates")
    flat = [i for c in node.covers for i in c]
    if len(flat) != len(set(flat)):
        raise _fail(node, "candidate covers overlap")
    if not set(flat) <= set(node.domain):
        raise _fail(node, "candidate covers leave the choice's domain")
    if any(i < 0 or i >= param.size for i in node.domain):
        raise _fail(node, f"domain {node.domain} out of range for {param.size} candidates of {node.arch!r}")
    if isinstance(node, MergedConvNode) and node.form == "grouped" and not any(k.pointwise for k in node.kernels):
        raise _fail(node, "the grouped form needs depthwise -> pointwise candidates",
                    "use form dense or separate (select-merge-form{form=auto} picks one)")
