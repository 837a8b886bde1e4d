"""Small gated graphs that keep the DANCE tests fast on 2 cores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasir.api import compile_file
from nasir.passmanager import PassManager


def gated(space: str, budget: float = 0.5, **overrides):
    return PassManager.parse(f"dance-gates{{budget={budget}}}").run(compile_file(space, **overrides))


@pytest.fixture
def resnet():
    """ResNet-18 of the std library at width 4 (same topology, 1/16 of the channels)."""
    return compile_file("std/resnet18.nas", width=4)


@pytest.fixture
def gated_resnet():
    return gated("std/resnet18.nas", width=4)


@pytest.fixture
def gated_vgg():
    """VGG with a short cfg: the classifier reads a flattened 16x8x8 map (flatten coupling)."""
    return gated("std/vgg16.nas", cfg=[8, "M", 16, 16, "M"])


@pytest.fixture
def make_gated():
    return gated


@pytest.fixture
def randomize_bn():
    return _randomize_bn


def _randomize_bn(module: nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine terms, so exactness tests catch missed slices."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.track_running_stats:  # (nb201's search cells keep none: batch statistics)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) * 2 - 1)
