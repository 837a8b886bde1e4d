"""Small chain spaces for the DNA tests (milliseconds per forward on CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasir.dna.space import Block, Cell, ChainSpace


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def tiny_block(c_in: int, c_out: int, stride: int, name: str) -> Block:
    """Two cells of different depth and width; layer choices include identity (variable depth)."""
    def cell(depth: int, width: int) -> Cell:
        layers = [[conv_bn(c_in, width, 3, stride), conv_bn(c_in, width, 5, stride)]]
        for _ in range(depth - 1):
            layers.append([conv_bn(width, width, 3), conv_bn(width, width, 1), nn.Identity()])
        layers.append(nn.Conv2d(width, c_out, 1))  # fixed projection to the teacher's width
        return Cell(layers)

    return Block([cell(2, 6), cell(3, 4)], name=name)


@pytest.fixture
def tiny_space() -> ChainSpace:
    torch.manual_seed(0)
    return ChainSpace([tiny_block(3, 8, 2, "b1"), tiny_block(8, 12, 2, "b2")])
