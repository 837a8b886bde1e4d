"""What a DNA partition holds: each block's shapes, search space and cells (DNA Table 1).

Read by the ``dna-partition`` pass (its notes) and by the DNA driver (teacher shapes, the CLI's
``partition`` report, the chain space). Torch-free: it reads only the IR, so passes may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from nasir.dna.errors import DNAError
from nasir.ir.graph import Graph
from nasir.ir.nodes import BlockNode, ChoiceNode, Node, Region


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


def chain_layers(nodes: Sequence[Node]) -> list[ChoiceNode | list[Node]]:
    """A chain of nodes as DNA layers: each choice one layer (of its candidates), each stretch of
    fixed nodes between choices one fixed layer. The chain space (``ir_space``) and the path names
    (``path_names``) both split chains this way, so layer k means the same to both."""
    layers: list[ChoiceNode | list[Node]] = []
    for node in nodes:
        if isinstance(node, ChoiceNode):
            layers.append(node)
        elif layers and isinstance(layers[-1], list):
            layers[-1].append(node)
        else:
            layers.append([node])
    return layers


def ordered_picks(graph: Graph, choice: ChoiceNode) -> list[tuple[int, str]]:
    """(candidate position, picked name) of a choice's candidates in DNA op order: by the first
    original candidate each covers (the order ``ir_space`` enumerates them in)."""
    names = graph.arch[choice.arch].candidates
    return [(j, names[m]) for m, j in sorted((min(c), j) for j, c in enumerate(choice.covers))]


class LayerNames(BaseModel):
    """The architecture parameter a DNA layer chooses, and the candidate name of each op index."""

    model_config = ConfigDict(extra="forbid", strict=True)

    param: str
    picks: list[str] = Field(min_length=1)


class CellNames(BaseModel):
    """One cell of a block: its candidate name in the block's cell choice (none when the block has
    one cell), and per layer the parameter it chooses (none for a fixed layer)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pick: str | None = None
    layers: list[LayerNames | None]


class PathNames(BaseModel):
    """How the paths ``(cell, ops)`` of one DNA block name architecture parameters of the IR space
    it came from, so that a DNA result is an ordinary architecture of ``network``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    network: str
    cell_param: str | None = None
    cells: list[CellNames] = Field(min_length=1)

    def _cell(self, path: tuple[int, Sequence[int]]) -> tuple[CellNames, list[tuple[LayerNames, int]]]:
        ci, ops = path
        if not 0 <= ci < len(self.cells) or len(ops) != len(self.cells[ci].layers):
            raise DNAError(f"path {{cell {ci}, ops {list(ops)}}} does not fit the block's {len(self.cells)} cells")
        cell = self.cells[ci]
        chosen = [(layer, o) for layer, o in zip(cell.layers, ops) if layer is not None]
        if any(not 0 <= o < len(layer.picks) for layer, o in chosen):
            raise DNAError(f"path {{cell {ci}, ops {list(ops)}}}: an op index is out of range")
        return cell, chosen

    def picks(self, path: tuple[int, Sequence[int]]) -> dict[str, str]:
        """The candidate each parameter of the path picks."""
        cell, chosen = self._cell(path)
        picks = {self.cell_param: cell.pick} if self.cell_param is not None and cell.pick is not None else {}
        for layer, o in chosen:
            if picks.setdefault(layer.param, layer.picks[o]) != layer.picks[o]:
                raise DNAError(f"path {{cell {path[0]}, ops {list(path[1])}}} picks two candidates of the tied "
                               f"parameter {layer.param!r}")
        return picks

    def label(self, path: tuple[int, Sequence[int]]) -> str:
        """The path as text: the cell's name, then the candidate picked by each choice layer."""
        cell, chosen = self._cell(path)
        ops = " ".join(layer.picks[o] for layer, o in chosen)
        return f"{cell.pick}: {ops}" if cell.pick is not None else ops


def path_names(graph: Graph) -> list[PathNames]:
    """Per block of a partitioned graph, the names of its paths, cell by cell and layer by layer
    as ``nasir.dna.ir_space.space_from_graph`` builds them (the stem is a fixed first layer of
    block 1)."""
    def layers(nodes: Sequence[Node]) -> list[LayerNames | None]:
        return [LayerNames(param=layer.arch, picks=[name for _, name in ordered_picks(graph, layer)])
                if isinstance(layer, ChoiceNode) else None for layer in chain_layers(nodes)]

    top = graph.body
    blocks = [n for n in top.nodes if isinstance(n, BlockNode)]
    out = []
    for k, block in enumerate(blocks):
        stem = k == 0 and any(n.kind != "input" for n in top.nodes[:top.nodes.index(block)])
        prefix: list[LayerNames | None] = [None] if stem else []
        body = [n for n in block.body.nodes if n.kind not in ("input", "output")]
        choice = cell_choice(block)
        if choice is None:
            out.append(PathNames(network=graph.name, cells=[CellNames(layers=prefix + layers(body))]))
            continue
        i = body.index(choice)
        before, after = layers(body[:i]), layers(body[i + 1:])
        cells = []
        for j, pick in ordered_picks(graph, choice):
            inner = [n for n in choice.candidates[j].body.nodes if n.kind not in ("input", "output")]
            cells.append(CellNames(pick=pick, layers=prefix + before + layers(inner) + after))
        out.append(PathNames(network=graph.name, cell_param=choice.arch, cells=cells))
    return out
