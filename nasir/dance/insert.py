"""Gate placement on the IR (the work of the ``dance-gates`` pass).

For every prunable channel group found by ``channels.analyze`` one gate group is created, named
after its first conv/linear producer. A gate goes

* after every producer's per-channel tail (the conv itself, or the chain of BatchNorms that is its
  only reader), so that a pruned channel is exactly zero from there on; and
* after every other op of the group that does not map zero to zero (a BatchNorm after a residual
  sum in a pre-activation block, a sigmoid), so it stays zero everywhere a consumer can read it.

That invariant is what makes extraction exact: every conv that reads a group sees zeros in the
pruned channels, so dropping those input channels changes nothing. All gates of a group share one
mask, and their ``budget`` is the group's: the ``gate`` annotation of its first annotated
producer, else the pass's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nasir.dance.channels import ChannelAnalysis, analyze, breaks_zero
from nasir.dance.errors import DanceError
from nasir.ir.graph import Graph
from nasir.ir.nodes import GateNode, OpNode, Region
from nasir.ir.rewrite import insert_after
from nasir.ir.verify import infer_shapes


def resolve_keep(budget: float | int, channels: int) -> int:
    """A budget as a fraction in (0, 1] or a channel count >= 1 -> the number of channels C_l kept.

    Defined with the placement (torch-free) because the ``dance-gates`` pass resolves budgets too;
    ``SelectGate`` and the baselines import it from here.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise DanceError(f"budget must be a fraction in (0, 1] or a channel count >= 1, got {budget!r}")
    if isinstance(budget, float) and budget <= 1.0:
        return max(1, min(channels, int(round(budget * channels))))
    if budget != int(budget) or budget > channels:
        raise DanceError(f"budget {budget!r} channels is not a whole count in 1..{channels}")
    return int(budget)


@dataclass
class GateGroup:
    name: str
    channels: int
    budget: float
    producers: list[str]
    gates: list[str]


def _tail(region: Region, name: str) -> str:
    """Follow the single-reader chain of BatchNorms after a producer."""
    while True:
        users = region.users(name)
        if len(users) == 1 and isinstance(users[0], OpNode) and users[0].attrs.op == "bn":
            name = users[0].name
            continue
        return name


def gate_groups(graph: Graph) -> dict[str, GateGroup]:
    """The gate groups of an already gated graph (group name -> channels, budget, producers, gates)."""
    out: dict[str, GateGroup] = {}
    for path, node, _ in graph.walk():
        if isinstance(node, GateNode):
            g = out.setdefault(node.group, GateGroup(node.group, node.channels, node.budget or 1.0, [], []))
            g.gates.append(path)
    if out:
        infer_shapes(graph)
        a = analyze(graph)
        producers = a.groups()
        for g in out.values():
            root = a.root_of(g.gates[0])
            g.producers = list(producers.get(root, [])) if root is not None else []
    return out


def insert_gates(graph: Graph, budget: float = 0.5, min_channels: int = 2,
                 analysis: ChannelAnalysis | None = None) -> dict[str, GateGroup]:
    """Insert gate nodes in place; returns the groups created. ``budget``: a fraction in (0, 1] or
    a channel count, the default for groups without a ``gate`` annotation."""
    infer_shapes(graph)
    a = analysis or analyze(graph)
    created: dict[str, GateGroup] = {}
    after: dict[str, str] = {}  # node path -> group name
    for root, producers in a.groups().items():
        channels = a.sizes[root]
        if channels < min_channels:
            continue
        name = producers[0]
        annotated = [a.nodes[p][1].budget for p in producers if a.nodes[p][1].budget is not None]
        raw = annotated[0] if annotated else budget
        keep = resolve_keep(raw, channels)
        group = GateGroup(name, channels, keep / channels, list(producers), [])
        for p in producers:
            region, node = a.nodes[p]
            prefix = p[: len(p) - len(node.name)]
            after[prefix + _tail(region, node.name)] = name
        for path in a.order:
            region, node = a.nodes[path]
            if breaks_zero(node) and a.root_of(path) == root:
                chain_end = _chain_end(a, path)
                after.setdefault(chain_end, name)
        created[name] = group
    for path, name in after.items():
        region, node = a.nodes[path]
        group = created[name]
        gate_name = region.fresh_name(f"{node.name}_gate")
        gate = GateNode(name=gate_name, inputs=[node.name], group=name, channels=group.channels,
                        budget=group.budget, loc=node.loc)
        insert_after(region, node.name, [gate], take_uses=True)
        group.gates.append(path[: len(path) - len(node.name)] + gate_name)
    infer_shapes(graph)
    return created


def _chain_end(a: ChannelAnalysis, path: str) -> str:
    """A zero-breaking op followed only by more BatchNorms: gate after the last of them."""
    region, node = a.nodes[path]
    prefix = path[: len(path) - len(node.name)]
    return prefix + _tail(region, node.name)
