"""Matching and rewriting helpers of the TopoNAS topology passes (``pms``, ``fms``, ``topo-simplify``).

Both rewrites act on one choice node ``N`` (candidates ``O_j`` with weights from the arch parameter
``N.arch``) and never add learnable parameters: a group S of candidates becomes one candidate
covering the union of their original indices (weight P_S), holding a nested choice whose domain is
that union (weights q_i = p_i / P_S). See ``nasir.ir.nodes`` for the covers/domain convention.

* PMS (partial module sharing, TopoNAS 3.2.1): members of S start with the same module L on the
  region input and/or end with the same module T feeding the output. The group candidate computes
  ``T(mix(L(x)))`` with ``mix`` the choice over the members with L and T stripped.
* FMS (floating module sharing, TopoNAS 3.2.2): members of F are chains ``B_i . M . A_i`` with the
  same parameter-free middle M. The group candidate computes ``second(M(first(x)))`` where
  ``first`` chooses among the A_i and ``second`` among the B_i, both tied to the same covers.

When the group is the whole choice the shared modules are hoisted next to the choice instead of
wrapping it, named ``<choice>.<module>`` so that per-edge statistics still attribute them to the edge.

Only parameter-free modules are shared: each IR op owns its weights, so two candidates' convs are
never "the same function". BatchNorm without affine parameters counts as parameter-free (its batch
statistics are a function of its input; running statistics are buffers).

Shapes are kept up to date while rewriting (new nodes copy the shapes they stand for), so a whole
fixpoint runs without re-inferring the graph after every rewrite.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

from nasir.ir.graph import Graph
from nasir.ir.nodes import Candidate, ChoiceNode, InputNode, Node, OpNode, OutputNode, Region, sub_regions
from nasir.ir.rewrite import fresh_name, insert_after, insert_before, remove, replace_uses, run_to_fixpoint
from nasir.ir.verify import infer_shapes
from nasir.passmanager import Exactness, Pass, PassResult


# -- analysis ----------------------------------------------------------------------------------
def in_shape(region: Region, node: OpNode | ChoiceNode) -> tuple[int, ...]:
    return tuple(region[node.inputs[0]].shape or ())


def shareable(region: Region, op: OpNode) -> bool:
    """A module two candidates can hold once: parameter-free (so the same function everywhere)."""
    return not op.attrs.never_shared and op.attrs.params(list(in_shape(region, op))) == 0


def op_key(region: Region, op: OpNode) -> tuple:
    """Two ops with equal keys compute the same function of equally shaped inputs."""
    return (op.attrs, in_shape(region, op))


def _single_input(body: Region) -> InputNode | None:
    ins = body.inputs
    return ins[0] if len(ins) == 1 else None


def leading_op(body: Region) -> OpNode | None:
    """The op that is the only reader of the candidate's only input, if shareable."""
    x = _single_input(body)
    if x is None:
        return None
    users = body.users(x.name)
    if len(users) != 1 or not isinstance(users[0], OpNode) or users[0].inputs != [x.name]:
        return None
    return users[0] if shareable(body, users[0]) else None


def trailing_op(body: Region) -> OpNode | None:
    """The single-input op feeding the candidate's output and nothing else, if shareable."""
    outs = body.outputs
    if len(outs) != 1 or _single_input(body) is None:
        return None
    src = outs[0].inputs[0]
    node = body[src] if src in body else None
    if not isinstance(node, OpNode) or len(node.inputs) != 1 or len(body.users(node.name)) != 1:
        return None
    return node if shareable(body, node) else None


def straight_chain(body: Region) -> list[Node] | None:
    """The nodes of a candidate that is a straight chain ``input -> n1 -> ... -> output``, each
    reading the one before (so each used once)."""
    x = _single_input(body)
    outs = body.outputs
    if x is None or len(outs) != 1:
        return None
    nodes = [n for n in body.nodes if n.kind not in ("input", "output")]
    prev = x.name
    for n in nodes:
        if n.inputs != [prev]:
            return None
        prev = n.name
    return nodes if outs[0].inputs == [prev] else None


def chain(body: Region) -> list[OpNode] | None:
    """The ops of a candidate that is a straight chain of ops ``input -> op -> ... -> output``."""
    nodes = straight_chain(body)
    return nodes if nodes is not None and all(isinstance(n, OpNode) for n in nodes) else None  # type: ignore[return-value]


def weighted_choices(node: ChoiceNode) -> bool:
    """Choices the topology passes can rewrite: one input, every candidate reading it."""
    return len(node.inputs) == 1 and all(len(c.body.inputs) == 1 for c in node.candidates)


# -- bookkeeping -----------------------------------------------------------------------------
@dataclass
class Log:
    """Counts rewrites and collects approximation remarks, aggregated into a few notes."""

    result: PassResult
    approx: Counter = field(default_factory=Counter)

    def approximate(self, what: str) -> None:
        self.approx[what] += 1

    def finish(self, graph: Graph) -> None:
        for what, n in sorted(self.approx.items()):
            self.result.notes.append(f"approximate: {what} ({n} choice{'s' if n > 1 else ''})")
        from nasir.passes._topo_stats import edge_summary

        self.result.notes.append(edge_summary(graph))


def _fresh_candidate(node: ChoiceNode, base: str) -> str:
    return fresh_name(base, {c.name for c in node.candidates})


def _union(covers: Iterable[list[int]]) -> list[int]:
    return sorted(i for c in covers for i in c)


def _copy_op(op: OpNode, name: str, inputs: list[str]) -> OpNode:
    new = op.model_copy(deep=True)
    new.name = name
    new.inputs = inputs
    return new


def _replace_members(node: ChoiceNode, members: list[int], group: Candidate) -> None:
    """Swap the member candidates for ``group`` (at the first member's position)."""
    cover = _union(node.covers[j] for j in members)
    cands, covers = [], []
    for j, (c, cov) in enumerate(zip(node.candidates, node.covers)):
        if j == members[0]:
            cands.append(group)
            covers.append(cover)
        elif j not in members:
            cands.append(c)
            covers.append(cov)
    node.candidates = cands
    node.covers = covers


# -- PMS -------------------------------------------------------------------------------------
@dataclass
class PmsGroup:
    members: list[int]
    lead: bool
    trail: bool

    @property
    def saved(self) -> int:
        return (len(self.members) - 1) * (int(self.lead) + int(self.trail))


def find_pms_group(node: ChoiceNode, approximate: bool) -> PmsGroup | None:
    """The sharing that saves the most modules (ties: more members, then leading first).

    A trailing module is considered only if sharing it is exact (a parameter-free linear op) or
    ``approximate`` allows changing the function (ReLU, BatchNorm, max pooling).
    """
    if not weighted_choices(node):
        return None
    lead: dict[tuple, list[int]] = defaultdict(list)
    trail: dict[tuple, list[int]] = defaultdict(list)
    lead_op: dict[int, OpNode] = {}
    trail_op: dict[int, OpNode] = {}
    for j, cand in enumerate(node.candidates):
        op = leading_op(cand.body)
        if op is not None:
            lead[op_key(cand.body, op)].append(j)
            lead_op[j] = op
        op = trailing_op(cand.body)
        if op is not None and (approximate or op.attrs.linear):
            trail[op_key(cand.body, op)].append(j)
            trail_op[j] = op
    options: list[PmsGroup] = [PmsGroup(m, True, False) for m in lead.values() if len(m) > 1]
    options += [PmsGroup(m, False, True) for m in trail.values() if len(m) > 1]
    for lm in lead.values():
        for tm in trail.values():
            both = [j for j in lm if j in tm and lead_op[j].name != trail_op[j].name]
            if len(both) > 1:
                options.append(PmsGroup(both, True, True))
    if not options:
        return None
    return max(options, key=lambda g: (g.saved, len(g.members), g.lead))


def _strip_leading(body: Region) -> OpNode:
    op = leading_op(body)
    assert op is not None
    x = _single_input(body)
    replace_uses(body, op.name, x.name)
    remove(body, op.name)
    x.shape = list(op.shape) if op.shape else None
    return op


def _strip_trailing(body: Region) -> OpNode:
    op = trailing_op(body)
    assert op is not None
    out = body.outputs[0]
    out.inputs = [op.inputs[0]]
    out.shape = body[op.inputs[0]].shape
    remove(body, op.name)
    return op


def apply_pms(region: Region, node: ChoiceNode, group: PmsGroup, log: Log) -> None:
    """Rewrite ``node`` so that the group's shared leading/trailing modules run once."""
    # the first member's modules become the shared ones
    stripped: list[Candidate] = []
    lead = trail = None
    trail_in: list[int] | None = None
    for j in group.members:
        body = node.candidates[j].body.model_copy(deep=True)
        body.touch()
        if group.lead:
            op = _strip_leading(body)
            lead = lead or op
        if group.trail:
            trail_in = trail_in or body[trailing_op(body).inputs[0]].shape
            op = _strip_trailing(body)
            trail = trail or op
        stripped.append(Candidate(name=node.candidates[j].name, body=body))
    covers = [node.covers[j] for j in group.members]
    inner_shape = list(trail_in) if trail is not None else node.shape
    if trail is not None and not trail.attrs.linear:
        log.approximate(f"trailing {trail.attrs.signature()} shared after a weighted sum "
                        "(it is not linear, so the mixture of its outputs is not its output on the mixture)")
    log.result.count("pms-groups")
    log.result.count("modules-shared", group.saved)
    if len(group.members) == len(node.candidates):
        _hoist_pms(region, node, stripped, lead, trail, inner_shape)
        log.result.count("pms-hoisted")
        return
    body = Region()
    body.add(InputNode(name="x", shape=list(in_shape(region, node))))
    cur = "x"
    if lead is not None:
        cur = body.add(_copy_op(lead, body.fresh_name(lead.name), [cur])).name
    inner = ChoiceNode(name=body.fresh_name("mix"), inputs=[cur], loc=node.loc, shape=inner_shape, arch=node.arch,
                       covers=covers, domain=_union(covers), candidates=stripped)
    cur = body.add(inner).name
    if trail is not None:
        cur = body.add(_copy_op(trail, body.fresh_name(trail.name), [cur])).name
    body.add(OutputNode(name=body.fresh_name("out"), inputs=[cur], shape=node.shape))
    _replace_members(node, group.members, Candidate(name=_fresh_candidate(node, "shared"), body=body))


def _hoist_pms(region: Region, node: ChoiceNode, stripped: list[Candidate], lead: OpNode | None,
               trail: OpNode | None, inner_shape: list[int] | None) -> None:
    node.candidates = stripped
    if lead is not None:
        op = _copy_op(lead, region.fresh_name(f"{node.name}.{lead.name}"), list(node.inputs))
        op.loc = op.loc or node.loc
        insert_before(region, node.name, [op])
        node.inputs = [op.name]
    if trail is not None:
        op = _copy_op(trail, region.fresh_name(f"{node.name}.{trail.name}"), [node.name])
        insert_after(region, node.name, [op], take_uses=True)
        node.shape = inner_shape


# -- FMS -------------------------------------------------------------------------------------
@dataclass
class FmsGroup:
    members: list[int]
    #: per member: (start, end) of the shared middle M in its chain
    spans: dict[int, tuple[int, int]]
    length: int

    @property
    def saved(self) -> int:
        return (len(self.members) - 1) * self.length


def find_fms_group(node: ChoiceNode) -> FmsGroup | None:
    """Candidates ``B_i . M . A_i`` (A_i, B_i non-empty) sharing the parameter-free middle M.

    Picks the (F, M) saving the most modules; within a candidate the first occurrence of M is used.
    An A_i holding a width choice is never split off: the ``first`` choice sums the A_i, which would
    tie that width to the other members' channels (``nasir.ir.width``).
    """
    if not weighted_choices(node):
        return None
    found: dict[tuple, dict[int, tuple[int, int]]] = defaultdict(dict)
    for j, cand in enumerate(node.candidates):
        ops = chain(cand.body)
        if ops is None:
            continue
        n = len(ops)
        for s in range(1, n - 1):
            if ops[s - 1].width is not None:
                break  # the first choice would tie this width choice to the other members' channels
            for e in range(s + 1, n):
                if not shareable(cand.body, ops[e - 1]):
                    break
                key = (tuple(op.attrs for op in ops[s:e]), in_shape(cand.body, ops[s]))
                found[key].setdefault(j, (s, e))
    best: FmsGroup | None = None
    for key, spans in found.items():
        if len(spans) < 2:
            continue
        g = FmsGroup(sorted(spans), spans, len(key[0]))
        if best is None or (g.saved, g.length, len(g.members)) > (best.saved, best.length, len(best.members)):
            best = g
    return best


def _chain_region(template: Region, ops: list[OpNode], shape: list[int] | None) -> Region:
    """A candidate body computing ``ops`` in sequence, with ``template``'s input/output names."""
    x = template.inputs[0]
    out = template.outputs[0]
    body = Region()
    body.add(InputNode(name=x.name, shape=list(shape) if shape else None))
    cur = x.name
    for op in ops:
        cur = body.add(_copy_op(op, op.name, [cur])).name
    body.add(OutputNode(name=out.name, inputs=[cur], shape=body[cur].shape))
    return body


def apply_fms(region: Region, node: ChoiceNode, group: FmsGroup, log: Log) -> None:
    """Rewrite ``node``: ``second(M(first(x)))`` for the members, M computed once (approximate)."""
    firsts, seconds = [], []
    middle: list[OpNode] = []
    x_shape = list(in_shape(region, node))
    for j in group.members:
        cand = node.candidates[j]
        ops = chain(cand.body)
        s, e = group.spans[j]
        middle = middle or ops[s:e]
        firsts.append(Candidate(name=cand.name, body=_chain_region(cand.body, ops[:s], x_shape)))
        seconds.append(Candidate(name=cand.name, body=_chain_region(cand.body, ops[e:], ops[e - 1].shape)))
    covers = [node.covers[j] for j in group.members]
    domain = _union(covers)
    mid_in = firsts[0].body.outputs[0].shape
    log.approximate(f"floating {' -> '.join(op.attrs.signature() for op in middle)} shared between two "
                    "series choices (the second choice sees the mixture of the first)")
    log.result.count("fms-groups")
    log.result.count("modules-shared", group.saved)
    first = ChoiceNode(name="first", inputs=[], loc=node.loc, shape=mid_in, arch=node.arch, covers=covers,
                       domain=domain, candidates=firsts)
    second = ChoiceNode(name="second", inputs=[], loc=node.loc, shape=node.shape, arch=node.arch,
                        covers=[list(c) for c in covers], domain=list(domain), candidates=seconds)
    if len(group.members) == len(node.candidates):
        # hoist: first and M before the choice, which becomes the second choice (its users keep it)
        first.name = region.fresh_name(f"{node.name}.first")
        first.inputs = list(node.inputs)
        insert_before(region, node.name, [first])
        cur = first.name
        for op in middle:  # inserted one at a time, so each name is fresh against those before it
            copy = _copy_op(op, region.fresh_name(f"{node.name}.{op.name}"), [cur])
            insert_before(region, node.name, [copy])
            cur = copy.name
        node.inputs = [cur]
        node.candidates = seconds
        node.covers = second.covers
        log.result.count("fms-hoisted")
        return
    body = Region()
    body.add(InputNode(name="x", shape=x_shape))
    first.inputs = ["x"]
    cur = body.add(first).name
    for op in middle:
        cur = body.add(_copy_op(op, body.fresh_name(op.name), [cur])).name
    second.name = body.fresh_name("second")
    second.inputs = [cur]
    cur = body.add(second).name
    body.add(OutputNode(name="out", inputs=[cur], shape=node.shape))
    _replace_members(node, group.members, Candidate(name=_fresh_candidate(node, "floating"), body=body))


# -- fixpoint driver -----------------------------------------------------------------------------
def simplify(graph: Graph, *, pms: bool, fms: bool, approximate: bool, log: Log) -> None:
    """Apply PMS and/or FMS to every choice, recursively, until nothing changes (TopoNAS Alg. 1).

    Every rewrite removes at least one module, so the loop terminates; at the fixpoint no rule
    applies anywhere, so running it again changes nothing (idempotence).
    """
    infer_shapes(graph)
    rewrite_once = partial(_rewrite_once, pms=pms, fms=fms and approximate, approximate=approximate, log=log)
    run_to_fixpoint(lambda: _simplify_region(graph.body, rewrite_once))
    infer_shapes(graph)


def _rewrite_once(region: Region, node: ChoiceNode, *, pms: bool, fms: bool, approximate: bool, log: Log) -> bool:
    """The PMS or FMS rewrite of ``node`` that saves the most modules (PMS on ties: it never changes
    more than a trailing module); False if neither applies."""
    group = find_pms_group(node, approximate) if pms else None
    floating = find_fms_group(node) if fms else None
    if floating is not None and (group is None or floating.saved > group.saved):
        apply_fms(region, node, floating, log)
        return True
    if group is not None:
        apply_pms(region, node, group, log)
        return True
    return False


def _simplify_region(region: Region, rewrite_once: Callable[[Region, ChoiceNode], bool]) -> int:
    """Rewrite the regions nested in the nodes of ``region``, then every choice of ``region``, to a fixpoint.

    Innermost first: a nested choice's shared modules are hoisted before the choice holding it is
    looked at, so that choice sees them whether or not an earlier pass already hoisted them.
    """
    def sweep() -> int:
        done = 0
        for node in list(region.nodes):  # rewrites insert hoisted modules; skip nodes no longer in the region
            if isinstance(node, ChoiceNode) and node.name in region and region[node.name] is node:
                done += run_to_fixpoint(partial(rewrite_once, region, node))
        return done

    done = 0
    for node in list(region.nodes):
        for _, sub in sub_regions(node):
            done += _simplify_region(sub, rewrite_once)
    return done + run_to_fixpoint(sweep)


@dataclass
class SharingPass(Pass):
    """Base of ``pms``, ``fms`` and ``topo-simplify``: the ``approximate`` option decides their exactness.

    FMS is never exact, so with ``approximate=false`` it is skipped (``fms`` then changes nothing).
    """

    #: which rewrites this pass applies
    use_pms: ClassVar[bool] = True
    use_fms: ClassVar[bool] = False

    #: Allow the approximate rewrites (trailing non-linear sharing, and FMS where enabled).
    approximate: bool = True

    def exactness(self) -> Exactness:
        return "approximate" if self.approximate else "exact"

    def run(self, graph: Graph) -> PassResult:
        log = Log(PassResult())
        simplify(graph, pms=self.use_pms, fms=self.use_fms, approximate=self.approximate, log=log)
        log.finish(graph)
        return log.result
