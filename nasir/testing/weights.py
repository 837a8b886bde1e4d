"""Carry weights from a supernet lowered before the TopoNAS passes into one lowered after them.

Needed to compare the two numerically (exactness tests, approximation tests) and to continue
training after rewriting. Module paths change under the rewrites; the correspondence is recovered
from three facts the passes guarantee:

* PMS and FMS never rename a weighted op and only *insert* path segments (``shared``, ``mix``,
  ``floating``, ``first``, ``second``) between the edge and the original candidate's name. So the
  original module of a weighted op at new path P is the unique original path whose segments form a
  subsequence of P's segments ending in the same op name (the longest one if several do).
* A module that PMS or FMS shares is the first member's module, under that module's name (prefixed
  with the choice's name when hoisted next to the choice). It is parameter-free, but a BatchNorm
  keeps running statistics: they come from the first member's module that ``before`` has (in a
  fixed lowering, the chosen member's). For a leading BatchNorm every member saw the same input, so
  all members hold the same statistics; for a trailing one (an approximation) any member's are as
  good as another's.
* ``reparam`` records, for every kernel of a ``merged_conv``, the IR paths of the convs it replaced
  (``KernelCandidate.weight_names``: the depthwise or dense conv, then the pointwise conv); those
  paths are mapped to the original graph by the same rule. A kernel's bias (``biases.<cand>``) is
  its conv's bias.

Every learnable weight and every buffer (BatchNorm running statistics) of the new module must find
exactly one origin, else ``carry_weights`` raises: a silently re-initialized weight or statistic
would make an equivalence test meaningless.
"""

from __future__ import annotations

import torch
from torch import nn

from nasir.ir.graph import Graph
from nasir.ir.nodes import ChoiceNode, MergedConvNode, Node, Region
from nasir.lowering import NasirModule


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(s == t for t in it) for s in short)


def _origin_of(path: str, old_paths: list[str]) -> str | None:
    """The original module path a rewritten module path descends from (None if there is none)."""
    segs = path.split(".")
    found = [p for p in old_paths if p.split(".")[-1] == segs[-1] and _is_subsequence(p.split("."), segs)]
    if not found:
        return None
    longest = max(len(p.split(".")) for p in found)
    best = [p for p in found if len(p.split(".")) == longest]
    if len(best) > 1:
        raise ValueError(f"module {path!r} could descend from any of {best}")
    return best[0]


def _member_names(node: Node) -> list[str] | None:
    """The candidate names of a choice, or of the choice a merged convolution replaced."""
    if isinstance(node, ChoiceNode):
        return [c.name for c in node.candidates]
    if isinstance(node, MergedConvNode):
        return [k.name for k in node.kernels]
    return None


def _shared_origin(path: str, node: Node, region: Region, old_modules: list[str]) -> str | None:
    """The original module of a module PMS or FMS shared: the first member's module of that name.

    Hoisted modules are named ``<choice>.<name>`` next to their choice; in a group candidate
    (``shared``, ``floating``) the members are the candidates of the group's first choice (``mix``,
    ``first``), and the module kept its name. ``reparam`` may since have merged that choice into a
    ``merged_conv`` of the same name, whose kernels keep the candidates' names.
    """
    prefix = path[:len(path) - len(node.name)]
    groups = [n for n in region.nodes if _member_names(n)]
    hoisted = [g for g in groups if node.name.startswith(f"{g.name}.")]
    if hoisted:
        group = max(hoisted, key=lambda g: len(g.name))
        return _member_origin(prefix, group, node.name[len(group.name) + 1:], old_modules)
    return _member_origin(prefix, groups[0], node.name, old_modules) if groups else None


def _hoisted(node: Node, region: Region) -> bool:
    """Whether ``node`` is a module PMS or FMS hoisted next to a choice (``<choice>.<name>``).

    Asked before the subsequence rule: the hoisted ``choice.bn`` of a nested choice named ``choice``
    reads as a descendant of the enclosing candidate (``e.nest`` + ``choice`` + ``bn``) and would
    take that candidate's own trailing ``bn`` instead of the first member's.
    """
    return any(node.name.startswith(f"{g.name}.") for g in region.nodes if _member_names(g))


def _member_origin(prefix: str, group: Node, name: str, old_modules: list[str]) -> str | None:
    """Module ``name`` of the first member of ``group`` that ``before`` has (a fixed lowering has
    the chosen one only). A member that is itself a group (a later rewrite) is searched in turn."""
    for j, member in enumerate(_member_names(group)):
        member_path = f"{prefix}{group.name}.{member}"
        old = _origin_of(f"{member_path}.{name}", old_modules)
        if old is None and isinstance(group, ChoiceNode):
            inner = [n for n in group.candidates[j].body.nodes if _member_names(n)]
            old = _member_origin(f"{member_path}.", inner[0], name, old_modules) if inner else None
        if old is not None:
            return old
    return None


def _ir_name(module: nn.Module, name: str) -> str:
    """The IR path of a state-dict name (lowering renames names that clash with module attributes)."""
    return module.ir_name(name) if isinstance(module, NasirModule) else name


def _weight_origins(before: nn.Module, after: nn.Module, after_graph: Graph) -> dict[str, str]:
    """Map every parameter and buffer name of ``after`` to a name in ``before``; the matching runs on IR paths."""
    old_names = {_ir_name(before, k): k for k in before.state_dict()}
    old_modules = sorted({k.rsplit(".", 1)[0] for k in old_names if "." in k})
    nodes = {path: (node, region) for path, node, region in after_graph.walk()}
    merged = {path: node for path, (node, _) in nodes.items() if isinstance(node, MergedConvNode)}
    out: dict[str, str] = {}
    for name in after.state_dict():
        key = _ir_name(after, name)
        if name.startswith("arch."):  # the module's architecture parameters (a layer named arch is ``arch_``)
            if key in old_names:
                out[name] = old_names[key]
            continue
        module, leaf = key.rsplit(".", 1)
        owner = next((m for m in merged if module in (f"{m}.kernels", f"{m}.pointwise", f"{m}.biases")), None)
        if owner is not None:
            # <merged>.kernels.<cand> / <merged>.pointwise.<cand> / <merged>.biases.<cand>
            kind = module[len(owner) + 1:]
            kc = next((k for k in merged[owner].kernels if k.name == leaf), None)
            if kc is None or kc.source != "conv":
                continue
            src = kc.weight_names[-1] if kind == "pointwise" else kc.weight_names[0]
            old = _origin_of(src, old_modules)
            if old is None:
                raise ValueError(f"no original module for kernel {key!r} (was {src!r})")
            out[name] = old_names[f"{old}.{'bias' if kind == 'biases' else 'weight'}"]
            continue
        old = module if module in old_modules else None
        if old is None and module in nodes and _hoisted(*nodes[module]):
            old = _shared_origin(module, *nodes[module], old_modules)
        if old is None:
            old = _origin_of(module, old_modules)
        if old is None and module in nodes:
            old = _shared_origin(module, *nodes[module], old_modules)
        if old is None or f"{old}.{leaf}" not in old_names:
            raise ValueError(f"no original module for {key!r}")
        out[name] = old_names[f"{old}.{leaf}"]
    return out


@torch.no_grad()
def carry_weights(before: nn.Module, after: nn.Module, after_graph: Graph) -> dict[str, str]:
    """Copy ``before``'s weights, BatchNorm statistics and arch parameters into ``after``.

    ``after`` is ``after_graph`` lowered (supernet or fixed mode), ``before`` the graph it was
    rewritten from, lowered the same way. Returns the name map used (``after`` name -> ``before``
    name).
    """
    mapping = _weight_origins(before, after, after_graph)
    old_state = before.state_dict()
    new_state = after.state_dict()
    for new, old in mapping.items():
        src = old_state[old]
        dst = new_state[new]
        if src.shape != dst.shape:
            raise ValueError(f"{new!r} {tuple(dst.shape)} cannot take {old!r} {tuple(src.shape)}")
        dst.copy_(src)
    return mapping
