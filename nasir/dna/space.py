"""Chain-structured block search spaces over ordinary ``nn.Module`` candidates.

DNA splits a supernet into blocks trained and searched on their own (DNA Sec. 3.2-3.3). A block
holds one or more *cells* of different depth and width (DNA Table 1); a cell is a sequence of
*layers*; a layer is a list of candidate modules (one candidate = a fixed layer; an
``nn.Identity`` candidate gives variable depth). A *path* through a block picks a cell and one
candidate per layer of that cell: ``(cell, (op_0, op_1, ...))``. An architecture is one path per
block.

Paths are enumerated cell by cell in lexicographic order of their op indices; the rating step
(feature sharing), the cost tables and the search all use this order, so a path's position in
the enumeration is a stable index.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from nasir.dna.costs import ZERO, ModuleCost, measure
from nasir.dna.errors import DNAError

Path = tuple[int, tuple[int, ...]]


class Cell(nn.Module):
    """A sequence of layers, each choosing one of its candidate modules."""

    def __init__(self, layers: Sequence[nn.Module | Sequence[nn.Module]], name: str | None = None):
        super().__init__()
        if not layers:
            raise DNAError("a cell needs at least one layer")
        mods = []
        for i, layer in enumerate(layers):
            cands = list(layer) if isinstance(layer, (list, tuple, nn.ModuleList)) else [layer]
            if not cands:
                raise DNAError(f"layer {i} of cell {name or '?'} has no candidates")
            mods.append(nn.ModuleList(cands))
        self.layers = nn.ModuleList(mods)
        self.cell_name = name

    @property
    def choices(self) -> tuple[int, ...]:
        """Number of candidates of each layer."""
        return tuple(len(layer) for layer in self.layers)

    @property
    def size(self) -> int:
        return math.prod(self.choices)

    def ops(self) -> Iterator[tuple[int, ...]]:
        """Every op sequence, in lexicographic order."""
        return itertools.product(*(range(n) for n in self.choices))

    def check_ops(self, ops: Sequence[int]) -> tuple[int, ...]:
        ops = tuple(int(o) for o in ops)
        if len(ops) != len(self.layers) or any(not 0 <= o < n for o, n in zip(ops, self.choices)):
            raise DNAError(f"ops {list(ops)} do not fit cell {self.cell_name or ''} with choices {list(self.choices)}")
        return ops

    def sample(self, generator: torch.Generator | None = None) -> tuple[int, ...]:
        """One op per layer, uniformly (the single-path sampling of DNA training)."""
        return tuple(int(torch.randint(n, (1,), generator=generator)) for n in self.choices)

    def forward(self, x: torch.Tensor, ops: Sequence[int]) -> torch.Tensor:
        for layer, o in zip(self.layers, ops):
            x = layer[o](x)
        return x

    def layer_costs(self, x: torch.Tensor) -> tuple[list[list[ModuleCost]], torch.Tensor]:
        """Per layer, the cost of every candidate on input ``x`` (batch of 1), and the output.

        Raises ``DNAError`` when the candidates of a layer disagree on their output shape: a
        chain needs interchangeable candidates.
        """
        table = []
        for i, layer in enumerate(self.layers):
            costs, outs = [], []
            for cand in layer:
                c, y = measure(cand, x)
                costs.append(c)
                outs.append(y)
            shapes = {tuple(y.shape) for y in outs}
            if len(shapes) != 1:
                raise DNAError(f"layer {i} of cell {self.cell_name or ''}: candidates give different output shapes "
                               f"{sorted(shapes)}; every candidate of a layer must map the same input to the same shape")
            table.append(costs)
            x = outs[0]
        return table, x


class Block(nn.Module):
    """One DNA block: alternative cells fed the same input, trained against one teacher block."""

    def __init__(self, cells: Sequence[Cell | Sequence[nn.Module | Sequence[nn.Module]]], name: str | None = None):
        super().__init__()
        built = [c if isinstance(c, Cell) else Cell(c, name=f"cell{i + 1}") for i, c in enumerate(cells)]
        if not built:
            raise DNAError("a block needs at least one cell")
        self.cells = nn.ModuleList(built)
        self.block_name = name

    @property
    def size(self) -> int:
        return sum(c.size for c in self.cells)

    def paths(self) -> Iterator[Path]:
        for ci, cell in enumerate(self.cells):
            for ops in cell.ops():
                yield ci, ops

    def path_index(self, path: Path) -> int:
        """Position of ``path`` in ``paths()`` order."""
        ci, ops = self.check_path(path)
        index = sum(c.size for c in self.cells[:ci])
        stride = 1
        for o, n in reversed(list(zip(ops, self.cells[ci].choices))):
            index += o * stride
            stride *= n
        return index

    def check_path(self, path: Path) -> Path:
        ci, ops = path
        if not 0 <= int(ci) < len(self.cells):
            raise DNAError(f"block {self.block_name or ''} has {len(self.cells)} cells, no cell {ci}")
        return int(ci), self.cells[int(ci)].check_ops(ops)

    def forward(self, x: torch.Tensor, path: Path) -> torch.Tensor:
        ci, ops = path
        return self.cells[ci](x, ops)

    def path_costs(self, example: torch.Tensor) -> list[ModuleCost]:
        """Cost of every path, in ``paths()`` order, from per-candidate lookup tables."""
        out = []
        for cell in self.cells:
            table, _ = cell.layer_costs(example[:1])
            for ops in cell.ops():
                total = ZERO
                for layer_costs, o in zip(table, ops):
                    total = total + layer_costs[o]
                out.append(total)
        return out

    def extract(self, path: Path) -> nn.Sequential:
        """The chosen path as a plain module (weights copied, not shared)."""
        ci, ops = self.check_path(path)
        cell = self.cells[ci]
        return nn.Sequential(*(copy.deepcopy(layer[o]) for layer, o in zip(cell.layers, ops)))


class ChainSpace(nn.Module):
    """Blocks in sequence: the student supernet of DNA."""

    def __init__(self, blocks: Sequence[Block]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    @property
    def size(self) -> int:
        """Exact number of architectures (product of the blocks' path counts)."""
        return math.prod(b.size for b in self.blocks)

    def forward(self, x: torch.Tensor, arch: Sequence[Path]) -> torch.Tensor:
        if len(arch) != len(self.blocks):
            raise DNAError(f"architecture has {len(arch)} block paths, the space has {len(self.blocks)} blocks")
        for block, path in zip(self.blocks, arch):
            x = block(x, path)
        return x

    def extract(self, arch: Sequence[Path]) -> nn.Sequential:
        return nn.Sequential(*(b.extract(p) for b, p in zip(self.blocks, arch)))


def path_to_json(path: Path) -> dict:
    return {"cell": int(path[0]), "ops": [int(o) for o in path[1]]}


def path_from_json(data: object) -> Path:
    if not isinstance(data, dict) or "cell" not in data or "ops" not in data:
        raise DNAError(f"a path is a JSON object {{\"cell\": int, \"ops\": [int, ...]}}, got {data!r}")
    try:
        return int(data["cell"]), tuple(int(o) for o in data["ops"])
    except (TypeError, ValueError):
        raise DNAError(f"malformed path {data!r}") from None
