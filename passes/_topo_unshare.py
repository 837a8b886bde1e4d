"""Undoing PMS and FMS: what makes ``topo-simplify`` reach one fixpoint whatever ran before it.

PMS and FMS commit to one grouping of a choice's candidates, and groupings conflict: a ReLU that
PMS shares between candidates a, b, c pulls a and b into a group that FMS can no longer join with
d, whose BN -> ReLU middle a and b share. So ``pms,fms`` and ``fms,pms`` leave different graphs.
``topo-simplify`` therefore first turns every sharing structure back into the plain choice it
came from (``unshare``), then rewrites that choice by one deterministic rule; its result depends on
the original candidates only.

The structures, each read off the IR (no bookkeeping of its own):

* a *group candidate*: a body that is a chain of parameter-free ops and choices on the outer
  choice's own architecture parameter (``mix`` of PMS; ``first`` and ``second`` of FMS), whose
  covers agree. It expands back into one member per inner candidate:
  ``shared ops + first_k + middle ops + second_k + shared ops``;
* *hoisted modules*: the parameter-free ops named ``<choice>.<op>`` that feed the choice (shared
  leading modules, FMS' middle) or read it (shared trailing modules), and FMS' hoisted first choice
  ``<choice>.first``. They move back into every candidate.

With ``approximate=false`` only what exact rewrites make is undone (leading modules, linear trailing
modules): undoing an approximate rewrite changes the function back, which an exact pass must not.
Member names come back from the candidates the rewrites kept; shared modules get their name back
in each member, made fresh where that member already uses it.
"""

from __future__ import annotations

import re

from nasir.ir.graph import Graph
from nasir.ir.names import FreshNames, fresh_name
from nasir.ir.nodes import Candidate, ChoiceNode, InputNode, Node, OpNode, OutputNode, Region, sub_regions
from nasir.ir.rewrite import copy_body, remove, replace_uses
from nasir.passes._topo_match import shareable, straight_chain


def unshare(graph: Graph, approximate: bool) -> int:
    """Undo the sharing structures of every choice, innermost first; returns how many were undone."""
    return _unshare_region(graph.body, approximate)


def _unshare_region(region: Region, approximate: bool) -> int:
    undone = 0
    for node in list(region.nodes):
        for _, sub in sub_regions(node):
            undone += _unshare_region(sub, approximate)
    for node in list(region.nodes):
        if isinstance(node, ChoiceNode) and node.name in region and region[node.name] is node:
            undone += _unshare_choice(region, node, approximate)
    return undone


def _unshare_choice(region: Region, node: ChoiceNode, approximate: bool) -> int:
    if len(node.inputs) != 1 or any(len(c.body.inputs) != 1 for c in node.candidates):
        return 0
    undone = 0
    while _expand_one_group(node, approximate):
        undone += 1
    while _unhoist_leading(region, node, approximate):
        undone += 1
    while _unhoist_trailing(region, node, approximate):
        undone += 1
    if undone:  # members back in the order of the original candidates
        order = sorted(range(len(node.candidates)), key=lambda j: min(node.covers[j], default=-1))
        node.candidates = [node.candidates[j] for j in order]
        node.covers = [node.covers[j] for j in order]
    return undone


# -- group candidates ----------------------------------------------------------------------------
def _expand_one_group(node: ChoiceNode, approximate: bool) -> bool:
    """Replace the first group candidate of ``node`` by its members; False if it has none."""
    for j, cand in enumerate(node.candidates):
        members = _members(node, cand.body, approximate)
        if members is not None:
            taken = {c.name for i, c in enumerate(node.candidates) if i != j}
            names = FreshNames(taken)
            expanded = []
            for name, body, cover in members:
                new_name = names(name)
                taken.add(new_name)
                expanded.append((Candidate(name=new_name, body=body), cover))
            node.candidates[j:j + 1] = [c for c, _ in expanded]
            node.covers[j:j + 1] = [cover for _, cover in expanded]
            return True
    return False


def _members(node: ChoiceNode, body: Region, approximate: bool) -> list[tuple[str, Region, list[int]]] | None:
    """(name, body, cover) of the members a group candidate stands for; None if ``body`` is no group."""
    chain = straight_chain(body)
    if chain is None:
        return None
    inner = [i for i, n in enumerate(chain) if isinstance(n, ChoiceNode)]
    if not inner or any(chain[i].arch != node.arch for i in inner):
        return None
    if any(not (isinstance(n, OpNode) and shareable(body, n)) for i, n in enumerate(chain) if i not in inner):
        return None
    choices = [chain[i] for i in inner]
    if any(sorted(map(sorted, c.covers)) != sorted(map(sorted, choices[0].covers)) for c in choices):
        return None
    trailing = chain[inner[-1] + 1:]
    exact = len(inner) == 1 and all(op.attrs.linear for op in trailing)
    if not (exact or approximate):
        return None
    x = body.inputs[0]
    members = []
    for k, cover in enumerate(choices[0].covers):
        own = [n.candidates[next(i for i, c in enumerate(n.covers) if sorted(c) == sorted(cover))].body for n in choices]
        parts: list[tuple[Region, bool]] = []
        ops: list[OpNode] = []
        for n in chain:
            if isinstance(n, ChoiceNode):
                if ops:
                    parts.append((_op_region(ops, x, own), False))
                    ops = []
                parts.append((own[choices.index(n)], True))
            else:
                ops.append(n)
        if ops:
            parts.append((_op_region(ops, x, own), False))
        members.append((choices[0].candidates[k].name, join(parts), list(cover)))
    return members


# -- hoisted modules -----------------------------------------------------------------------------
def _hoisted(region: Region, node: ChoiceNode, name: str) -> bool:
    return name.startswith(f"{node.name}.") and name in region


def _unhoist_leading(region: Region, node: ChoiceNode, approximate: bool) -> bool:
    """Move the hoisted module feeding ``node`` back into its candidates (a hoisted first choice
    is composed with them candidate by candidate)."""
    source = node.inputs[0]
    if not _hoisted(region, node, source) or len(region.users(source)) != 1:
        return False
    pred = region[source]
    if isinstance(pred, OpNode) and len(pred.inputs) == 1 and shareable(region, pred):
        for cand in node.candidates:
            op = _local_copy(pred, node, cand.body)
            cand.body = join([(_op_region([op], cand.body.inputs[0]), False), (cand.body, True)])
    elif isinstance(pred, ChoiceNode) and pred.arch == node.arch and approximate and len(pred.inputs) == 1:
        _unshare_choice(region, pred, approximate)
        firsts = {tuple(sorted(c)): cand for c, cand in zip(pred.covers, pred.candidates)}
        if sorted(firsts) != sorted(tuple(sorted(c)) for c in node.covers):
            return False
        for cover, cand in zip(node.covers, node.candidates):
            cand.body = join([(firsts[tuple(sorted(cover))].body, True), (cand.body, True)])
    else:
        return False
    node.inputs = list(pred.inputs)
    remove(region, pred.name)
    return True


def _unhoist_trailing(region: Region, node: ChoiceNode, approximate: bool) -> bool:
    """Move the hoisted module reading ``node`` back into its candidates."""
    users = region.users(node.name)
    if len(users) != 1 or not _hoisted(region, node, users[0].name):
        return False
    op = users[0]
    if not (isinstance(op, OpNode) and op.inputs == [node.name] and shareable(region, op)):
        return False
    if not (approximate or op.attrs.linear):
        return False
    for cand in node.candidates:
        local = _local_copy(op, node, cand.body)
        cand.body = join([(cand.body, True), (_op_region([local], cand.body.outputs[0]), False)])
    node.shape = list(op.shape) if op.shape else None
    replace_uses(region, op.name, node.name)
    remove(region, op.name)
    return True


#: The inner choices that PMS (``mix``) and FMS (``first``, ``second``) build, and their fresh variants.
_STRUCTURAL_CHOICE = re.compile(r"(mix|first|second)(_\d+)?")


def _local_copy(op: OpNode, node: ChoiceNode, body: Region) -> OpNode:
    """A hoisted op under the name it had in the candidates (``<choice>.relu`` -> ``relu``), for ``body``."""
    copy = op.model_copy(deep=True)
    copy.name = _own_name(op.name[len(node.name) + 1:], [body])
    return copy


def _own_name(name: str, bodies: list[Region]) -> str:
    """``name`` without the scopes of structural choices that none of ``bodies`` has any more.

    An op hoisted out of FMS' inner ``second`` is named ``second.relu``; hoisted again, or shared by
    a later PMS group, it keeps that name. Once the group that held ``second`` is expanded the
    members have no ``second``, and the op goes back as ``relu``: undoing and redoing then give the
    same names, so ``topo-simplify`` is idempotent.
    """
    while "." in name:
        scope, rest = name.split(".", 1)
        if not _STRUCTURAL_CHOICE.fullmatch(scope) or any(scope in body for body in bodies):
            break
        name = rest
    return name


# -- building bodies -----------------------------------------------------------------------------
def _op_region(ops: list[OpNode], like: Node, own: list[Region] | None = None) -> Region:
    """A body computing ``ops`` in sequence on an input shaped like ``like`` (shared ops of a group
    going back to members made of the ``own`` bodies: see ``_own_name``)."""
    body = Region()
    body.add(InputNode(name="x", shape=list(like.shape) if like.shape else None))
    cur = "x"
    for op in ops:
        copy = op.model_copy(deep=True)
        if own is not None:
            copy.name = _own_name(op.name, own)
        copy.inputs = [cur]
        cur = body.add(copy).name
    body.add(OutputNode(name="out", inputs=[cur], shape=body[cur].shape))
    return body


def join(parts: list[tuple[Region, bool]]) -> Region:
    """Candidate bodies in sequence as one body (each part reads the previous part's output).

    Parts flagged True keep their node names (a member's own modules, whose names are weight
    paths) unless an earlier part took them; the others (copies of shared modules) take fresh
    names where those are used.
    """
    kept = {n.name for part, keep in parts if keep for n in part.nodes if n.kind not in ("input", "output")}
    body = Region()
    taken = _Union(kept, body)
    own = [part for part, keep in parts if keep] or [parts[0][0]]  # the input and output keep a member's names
    first_in = own[0].inputs[0]
    cur = body.add(InputNode(name=fresh_name(first_in.name, taken), shape=parts[0][0].inputs[0].shape,
                             loc=first_in.loc)).name
    for part, keep in parts:
        def name_for(n: Node, keep: bool = keep) -> str:
            return fresh_name(n.name, taken) if not keep or n.name in body else n.name

        cur = copy_body(part, {part.inputs[0].name: cur}, name_for, body.add)
    last_out = own[-1].outputs[0]
    body.add(OutputNode(name=fresh_name(last_out.name, taken), inputs=[cur], shape=body[cur].shape, loc=last_out.loc))
    return body


class _Union:
    """Names taken in either of two containers (the kept names, and the body being built)."""

    def __init__(self, first: set[str], second: Region):
        self.first, self.second = first, second

    def __contains__(self, name: object) -> bool:
        return name in self.first or name in self.second
