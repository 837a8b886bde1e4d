"""Parameter and FLOP counts of candidate modules, measured once per candidate.

The search step needs the cost of every path of every block (DNA keeps "a pre-calculated lookup
table"). In a chain every candidate of a layer sees the same input shape, so a path's cost is the
sum of its candidates' costs and one measurement per candidate is enough. FLOPs are counted as
multiply-accumulates of convolutions and linear layers (the convention of the MBConv papers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModuleCost:
    params: int
    flops: int

    def __add__(self, other: ModuleCost) -> ModuleCost:
        return ModuleCost(self.params + other.params, self.flops + other.flops)


ZERO = ModuleCost(0, 0)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(module: nn.Module, x: torch.Tensor) -> tuple[ModuleCost, torch.Tensor]:
    """(cost per sample, output) of ``module`` on the example batch ``x``.

    Runs in eval mode under ``no_grad`` and restores the training flag afterwards.
    """
    macs = 0

    def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        per_sample = out[0].numel() if out.dim() > 1 else out.numel()
        if isinstance(mod, nn.modules.conv._ConvNd):
            k = 1
            for s in mod.kernel_size:
                k *= s
            macs += per_sample * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            macs += per_sample * mod.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(x)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return ModuleCost(count_params(module), macs), out
