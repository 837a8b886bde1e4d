"""Baselines for the paper's Fig. 3 comparison, at exactly the same per-group channel counts as DANCE.

* **score-only pruning** (the paper's Score-based Pruning): keep the top C_l channels of the
  importance score alone (static, dynamic, feature and correlation terms of the trained gates),
  without the data-aware MLP and without sampling, i.e. what DANCE's gates would pick if their
  learned distribution over architectures were dropped;
* **random selection**: C_l channels uniformly at random per group from the same supernet;
* **magnitude** (a classical reference, not in the paper): the C_l channels whose BatchNorm scale
  |gamma| (or producer weight L1 norm when there is no BatchNorm) is largest, summed over the
  group's producers.

All return masks in the format of ``GatedNetwork.generate``, so every method is evaluated,
extracted and fine-tuned through the same code.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nasir.dance.gated import GatedNetwork
from nasir.dance.insert import resolve_keep

METHODS = ("dance", "score", "random", "magnitude")


def _keep(net: GatedNetwork, group: str, budget: float | int | Mapping | None) -> int:
    if budget is None:
        return net.gate(group).keep
    value = budget[group] if isinstance(budget, Mapping) else budget
    return resolve_keep(value, net.groups[group].channels)


def _top(values: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros_like(values, dtype=torch.float32).scatter(0, torch.topk(values.float(), k).indices, 1.0)


def score_masks(net: GatedNetwork, budget: float | int | Mapping | None = None) -> dict[str, torch.Tensor]:
    return {g: _top(net.gate(g).static_score().cpu(), _keep(net, g, budget)) for g in net.groups}


def random_masks(net: GatedNetwork, budget: float | int | Mapping | None = None,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    out = {}
    for g, group in net.groups.items():
        perm = torch.randperm(group.channels, generator=generator)
        out[g] = torch.zeros(group.channels).scatter(0, perm[:_keep(net, g, budget)], 1.0)
    return out


def _following_bn(net: GatedNetwork, producer: str) -> str | None:
    """The BatchNorm that alone reads ``producer`` (its module path), if any."""
    for path, node, region in net.graph.walk():
        if path == producer:
            users = region.users(node.name)
            if len(users) == 1 and getattr(users[0], "kind", None) == "op" and users[0].attrs.op == "bn":
                return path[: len(path) - len(node.name)] + users[0].name
    return None


@torch.no_grad()
def magnitude_masks(net: GatedNetwork, budget: float | int | Mapping | None = None) -> dict[str, torch.Tensor]:
    modules = dict(net.backbone.named_modules())
    out = {}
    for g, group in net.groups.items():
        total = torch.zeros(group.channels)
        for producer in group.producers:
            bn = modules.get(_following_bn(net, producer) or "")
            if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) and bn.affine:
                total += bn.weight.detach().abs().cpu()
            else:
                total += modules[producer].weight.detach().abs().cpu().flatten(1).sum(1)
        out[g] = _top(total, _keep(net, g, budget))
    return out


def masks_for(method: str, net: GatedNetwork, budget: float | int, data: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One entry point for the comparison: ``dance`` needs ``data`` (it is data-aware)."""
    if method == "dance":
        if data is None:
            raise ValueError("DANCE generates architectures from data: pass data")
        return net.generate(data, budget)
    if method == "score":
        return score_masks(net, budget)
    if method == "random":
        return random_masks(net, budget, generator)
    if method == "magnitude":
        return magnitude_masks(net, budget)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
