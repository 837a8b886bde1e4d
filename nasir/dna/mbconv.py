"""MBConv networks and block spaces as plain ``nn.Module``s (DNA Sec. 4.2, Table 1).

Used by the demo, by DNA+ (which must rebuild a searched architecture scaled in depth and width,
so it needs a constructive description, ``NetSpec``, not just modules) and by tests. A network is
``stem -> blocks[0] -> ... -> blocks[N-1] -> head``; the block boundaries of a ``ChainNet`` are its
submodules ``blocks.0``, ``blocks.1``, ..., which ``TeacherBlocks`` cuts at.

A student block offers cells of different depth and width; every layer of a cell chooses a
kernel size and an expansion rate, and a cell ends in a 1x1 projection to the teacher's block
width, so that cells are interchangeable (the same design as ``std/mbconv.nas``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from torch import nn

from nasir.dna.errors import DNAError
from nasir.dna.space import Block, Cell, ChainSpace, Path


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, 1x1 project; residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, e: int = 6, stride: int = 1):
        super().__init__()
        mid = c_in * e
        self.body = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def projection(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


@dataclass
class BlockSpec:
    """One block of a fixed network: MBConv layers ``ops`` [(k, e), ...] of width ``channels``,
    the first with ``stride``, then a projection to ``width`` (the block's output width)."""

    ops: list[tuple[int, int]]
    channels: int
    width: int
    stride: int = 1


@dataclass
class NetSpec:
    blocks: list[BlockSpec]
    stem: int = 16
    classes: int = 10
    #: Stride of the stem convolution: a teacher matches a student whose stem downsamples (``std/mbconv.nas``).
    stem_stride: int = 1

    def to_json(self) -> dict:
        return asdict(self)


class ChainNet(nn.Module):
    """stem -> blocks -> head (global pool + linear): a teacher or a retrained student."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = spec
        self.stem = stem(spec.stem, spec.stem_stride)
        blocks, c_in = [], spec.stem
        for b in spec.blocks:
            layers = [MBConv(c_in if i == 0 else b.channels, b.channels, k, e, b.stride if i == 0 else 1)
                      for i, (k, e) in enumerate(b.ops)]
            layers.append(projection(b.channels, b.width))
            blocks.append(nn.Sequential(*layers))
            c_in = b.width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, spec.classes))

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)

    @property
    def boundaries(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.blocks))]


@dataclass
class SpaceSpec:
    """A student space: per block, cells [(layers, channels), ...], a stride and the teacher width."""

    cells: list[list[tuple[int, int]]]
    strides: list[int]
    kernels: list[int] = field(default_factory=lambda: [3, 5, 7])
    expansions: list[int] = field(default_factory=lambda: [3, 6])
    stem: int = 16

    @property
    def ops(self) -> list[tuple[int, int]]:
        return [(k, e) for k in self.kernels for e in self.expansions]

    def size(self) -> int:
        n = len(self.ops)
        return math.prod(sum(n**layers for layers, _ in block) for block in self.cells)


def stem(channels: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, channels, 3, stride, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU6())


def student_space(spec: SpaceSpec, widths: Sequence[int]) -> ChainSpace:
    """The supernet of ``spec`` whose block k outputs ``widths[k]`` channels (the teacher's).

    Block 1 takes the image (the teacher's stem belongs to its first block), so every cell of
    block 1 starts with a fixed stem layer (a single-candidate layer)."""
    if len(widths) != len(spec.cells) or len(spec.strides) != len(spec.cells):
        raise DNAError(f"space has {len(spec.cells)} blocks, {len(spec.strides)} strides, teacher {len(widths)} blocks")
    blocks, c = [], spec.stem
    for b, (cells, stride, width) in enumerate(zip(spec.cells, spec.strides, widths)):
        built = []
        for layers, ch in cells:
            cell_layers: list = [stem(spec.stem)] if b == 0 else []
            for i in range(layers):
                cell_layers.append([MBConv(c if i == 0 else ch, ch, k, e, stride if i == 0 else 1) for k, e in spec.ops])
            cell_layers.append(projection(ch, width))
            built.append(Cell(cell_layers, name=f"{layers}x{ch}"))
        blocks.append(Block(built, name=f"block{b + 1}"))
        c = width
    return ChainSpace(blocks)


def arch_to_spec(space_spec: SpaceSpec, widths: Sequence[int], arch: Sequence[Path], classes: int = 10) -> NetSpec:
    """The fixed network that a searched architecture (one path per block) describes."""
    ops = space_spec.ops
    blocks = []
    for b, ((ci, path_ops), cells, stride, width) in enumerate(zip(arch, space_spec.cells, space_spec.strides, widths)):
        _, ch = cells[ci]
        searched = path_ops[1 if b == 0 else 0:-1]  # drop the stem (block 1) and the projection layers
        blocks.append(BlockSpec([ops[o] for o in searched], ch, width, stride))
    return NetSpec(blocks, space_spec.stem, classes)


def _round8(x: float) -> int:
    return max(8, int(round(x / 8)) * 8)


def scale_spec(spec: NetSpec, depth: float = 1.0, width: float = 1.0) -> NetSpec:
    """EfficientNet-style compound scaling (DNA+ Eq. 9): layers x depth (ceil, repeating the
    block's last op), channels and widths x width (rounded to multiples of 8)."""
    blocks = []
    for b in spec.blocks:
        n = max(1, math.ceil(len(b.ops) * depth))
        ops = list(b.ops) + [b.ops[-1]] * (n - len(b.ops))
        blocks.append(BlockSpec(ops[:n], _round8(b.channels * width), _round8(b.width * width), b.stride))
    return NetSpec(blocks, _round8(spec.stem * width), spec.classes)
