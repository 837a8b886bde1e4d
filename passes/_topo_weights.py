"""Carry weights from a supernet lowered before the TopoNAS passes into one lowered after them.

Needed to compare the two numerically (exactness tests, approximation tests) and to continue
training after rewriting. Module paths change under the rewrites; the correspondence is recovered
from two facts the passes guarantee:

* PMS and FMS never rename a weighted op and only *insert* path segments (``shared``, ``mix``,
  ``floating``, ``first``, ``second``) between the edge and the original candidate's name. So the
  original module of a weighted op at new path P is the unique original path whose segments form a
  subsequence of P's segments ending in the same op name (the longest one if several do).
* ``reparam`` records, for every kernel of a ``merged_conv``, the IR paths of the convs it replaced
  (``KernelCandidate.weight_names``: the depthwise or dense conv, then the pointwise conv); those
  paths are mapped to the original graph by the same rule.

Every learnable weight of the new module must find exactly one origin, else ``carry_weights``
raises: a silently re-initialized weight would make an equivalence test meaningless.
"""

from __future__ import annotations

import torch
from torch import nn

from nasir.ir.graph import Graph
from nasir.ir.nodes import MergedConvNode


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(s == t for t in it) for s in short)


def origin_of(path: str, old_paths: list[str]) -> str | None:
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


def weight_origins(before: nn.Module, after: nn.Module, after_graph: Graph) -> dict[str, str]:
    """Map every parameter (and matching buffer) name of ``after`` to a name in ``before``."""
    old_state = before.state_dict()
    old_modules = sorted({k.rsplit(".", 1)[0] for k in old_state if "." in k})
    merged = {path: node for path, node, _ in after_graph.walk() if isinstance(node, MergedConvNode)}
    params = {n for n, _ in after.named_parameters()}
    out: dict[str, str] = {}
    for key in after.state_dict():
        if key.startswith("arch."):
            if key in old_state:
                out[key] = key
            continue
        module, leaf = key.rsplit(".", 1)
        owner = next((m for m in merged if module.startswith(f"{m}.")), None)
        if owner is not None:
            # <merged>.kernels.<cand> / <merged>.pointwise.<cand>
            kind = module[len(owner) + 1:]
            kc = next((k for k in merged[owner].kernels if k.name == leaf), None)
            if kc is None or kc.source != "conv":
                continue
            src = kc.weight_names[0] if kind == "kernels" else kc.weight_names[-1]
            old = origin_of(src, old_modules)
            if old is None:
                raise ValueError(f"no original module for kernel {key!r} (was {src!r})")
            out[key] = f"{old}.weight"
            continue
        old = origin_of(module, old_modules)
        if old is not None and f"{old}.{leaf}" in old_state:
            out[key] = f"{old}.{leaf}"
        elif key in params:
            raise ValueError(f"no original module for parameter {key!r}")
    return out


@torch.no_grad()
def carry_weights(before: nn.Module, after: nn.Module, after_graph: Graph) -> dict[str, str]:
    """Copy ``before``'s weights (and arch parameters) into ``after``; returns the name map used."""
    mapping = weight_origins(before, after, after_graph)
    old_state = before.state_dict()
    new_state = after.state_dict()
    for new, old in mapping.items():
        src = old_state[old]
        dst = new_state[new]
        if src.shape != dst.shape:
            raise ValueError(f"{new!r} {tuple(dst.shape)} cannot take {old!r} {tuple(src.shape)}")
        dst.copy_(src)
    return mapping
