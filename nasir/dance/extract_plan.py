"""Extraction, IR part: gate masks -> a plain, physically smaller graph (torch-free).

Given one 0/1 mask per gate group, every conv/linear keeps only its surviving output channels and
reads only the surviving channels of its input, BatchNorms and depthwise convs keep their
surviving channels, and the gate nodes disappear. Because the gates leave pruned channels exactly
zero wherever they are read (see ``insert``), the extracted network computes the same function as
the gated network with the same masks; ``tests/dance`` checks it numerically.

``extract_graph`` only changes ``out_channels``/``out_features`` (input channels are inferred from
shapes) and returns the ``ExtractPlan``: the kept indices of every weighted op, which
``nasir.dance.extract`` uses to slice the weights. This half imports no torch, so the
``dance-extract`` pass can use it (passes import only the IR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nasir.dance.channels import ChannelAnalysis, analyze, kept_indices
from nasir.dance.errors import DanceError
from nasir.ir.graph import Graph
from nasir.ir.nodes import GateNode, OpNode
from nasir.ir.rewrite import all_regions
from nasir.ir.verify import infer_shapes, verify

#: One entry per channel of the gate group: 1 keeps the channel, 0 prunes it.
Mask = Sequence[int] | Sequence[bool] | Sequence[float]


@dataclass
class ExtractPlan:
    """Kept indices per weighted op (node path -> (input indices, output indices))."""

    slices: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    gates: list[str] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)


def _mask_indices(group: str, mask: Mask, channels: int) -> list[int]:
    values = list(mask)
    if len(values) != channels:
        raise DanceError(f"mask of gate group {group!r} has {len(values)} entries, the group has {channels} channels")
    if not all(v in (0, 1) for v in values):
        raise DanceError(f"mask of gate group {group!r} must hold only 0 and 1")
    idx = [i for i, v in enumerate(values) if v == 1]
    if not idx:
        raise DanceError(f"mask of gate group {group!r} keeps no channel; keep at least one")
    return idx


def plan_extraction(graph: Graph, masks: Mapping[str, Mask], analysis: ChannelAnalysis | None = None) -> ExtractPlan:
    """Which indices every weighted op keeps for these masks (groups without a mask keep all)."""
    infer_shapes(graph)
    a = analysis or analyze(graph)
    roots: dict[str, int] = {}
    channels: dict[str, int] = {}
    plan = ExtractPlan()
    for path in a.order:
        node = a.nodes[path][1]
        if isinstance(node, GateNode):
            root = a.root_of(path)
            if root is None or (node.group in roots and roots[node.group] != root):
                raise DanceError(f"gate {path!r} of group {node.group!r} does not sit on one channel group")
            if a.is_fixed(root):
                raise DanceError(f"gate {path!r} sits on channels that cannot be pruned (network input/output or an op "
                                 "nasir cannot slice)")
            roots[node.group] = root
            channels[node.group] = node.channels
            plan.gates.append(path)
    unknown = sorted(set(masks) - set(roots))
    if unknown:
        raise DanceError(f"mask for unknown gate group {unknown[0]!r}",
                         hint=f"the graph's groups: {', '.join(sorted(roots)) or 'none (run dance-gates first)'}")
    keep: dict[int, list[int]] = {}
    for group, mask in masks.items():
        keep[roots[group]] = _mask_indices(group, mask, channels[group])
        plan.kept[group] = len(keep[roots[group]])
    for path in a.order:
        node = a.nodes[path][1]
        if not isinstance(node, OpNode) or path in a.opaque:
            continue
        op = node.attrs.op
        if op not in ("conv", "linear", "dwconv", "bn"):
            continue
        in_layout = a.layouts[_input_path(path, node)]
        plan.slices[path] = (kept_indices(in_layout, keep, a), kept_indices(a.layouts[path], keep, a))
        plan.kinds[path] = op
    return plan


def _input_path(path: str, node: OpNode) -> str:
    return path[: len(path) - len(node.name)] + node.inputs[0]


def extract_graph(graph: Graph, masks: Mapping[str, Mask]) -> tuple[Graph, ExtractPlan]:
    """A copy of ``graph`` without gates, every layer shrunk to the channels its masks keep."""
    plan = plan_extraction(graph, masks)
    out = graph.copy_deep()
    by_path = {path: node for path, node, _ in out.walk()}
    for path, (_, keep_out) in plan.slices.items():
        node = by_path[path]
        if plan.kinds[path] == "conv":
            node.attrs = node.attrs.model_copy(update={"out_channels": len(keep_out)})
        elif plan.kinds[path] == "linear":
            node.attrs = node.attrs.model_copy(update={"out_features": len(keep_out)})
    for region in all_regions(out.body):
        for node in [n for n in region.nodes if isinstance(n, GateNode)]:
            for user in region.users(node.name):
                user.inputs = [node.inputs[0] if i == node.name else i for i in user.inputs]
            region.nodes.remove(node)
            region.touch()
    verify(out)
    return out, plan
