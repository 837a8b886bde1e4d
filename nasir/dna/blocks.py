"""What a DNA partition holds: each block's shapes, search space and cells (DNA Table 1).

Read by the ``dna-partition`` pass (its notes) and by the DNA driver (teacher shapes, the CLI's
``partition`` report, the chain space). Torch-free: it reads only the IR, so passes may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasir.ir.graph import Graph
from nasir.ir.nodes import BlockNode, ChoiceNode, Region


@dataclass
class CellInfo:
    name: str
    layers: int
    width: int | None
    size: int


@dataclass
class BlockInfo:
    name: str
    input_shape: list[int] | None
    output_shape: list[int] | None
    size: int
    cells: list[CellInfo]

    def line(self) -> str:
        shape = lambda s: "x".join(map(str, s)) if s else "?"  # noqa: E731
        cells = ", ".join(f"{c.name} ({c.layers} layers, {c.width} ch, {c.size} paths)" for c in self.cells)
        return f"{self.name}: [{shape(self.input_shape)}] -> [{shape(self.output_shape)}], {self.size} paths" + \
            (f"; cells: {cells}" if cells else "")

    def to_json(self) -> dict:
        return {"block": self.name, "input": self.input_shape, "output": self.output_shape, "size": self.size,
                "cells": [c.__dict__ for c in self.cells]}


def _region_size(graph: Graph, region: Region) -> int:
    return Graph(name="block", body=region, arch=graph.arch).search_space_size()


def _layers(region: Region) -> list[ChoiceNode]:
    return [n for n in region.nodes if isinstance(n, ChoiceNode)]


def cell_choice(block: BlockNode) -> ChoiceNode | None:
    """The block's choice between cells: its only top-level choice whose candidates hold choices."""
    top = _layers(block.body)
    if len(top) == 1 and any(_layers(c.body) for c in top[0].candidates):
        return top[0]
    return None


def block_infos(graph: Graph) -> list[BlockInfo]:
    infos = []
    for node in graph.body.nodes:
        if not isinstance(node, BlockNode):
            continue
        choice = cell_choice(node)
        cells = []
        if choice is not None:
            for cand in choice.candidates:
                layers = _layers(cand.body)
                width = layers[0].shape[0] if layers and layers[0].shape else None
                cells.append(CellInfo(cand.name, len(layers), width, _region_size(graph, cand.body)))
        infos.append(BlockInfo(node.name, node.body.inputs[0].shape, node.shape, _region_size(graph, node.body), cells))
    return infos
