"""Rating step (DNA Alg. 1): score every path of every cell of a block with feature sharing.

Each cell is walked depth first: a layer's candidates are applied to the output of the prefix
that leads to them, so a prefix shared by many paths is computed once (a cell of d layers with c
candidates runs c + c^2 + ... + c^d candidate forwards instead of d * c^d). The score is the
relative L1 loss of Eq. 7,

    score(path) = ||Y - Y_hat(X)||_1 / (K * sqrt(D(Y)))

over a whole evaluation set, with Y the teacher's block output, X the teacher's previous block
output, K the number of elements of Y and D(Y) its variance. Absolute errors are summed per batch
in float64 in the same order whether or not features are shared, so feature sharing gives exactly
the same scores as evaluating each path on its own (``rate_block(..., feature_sharing=False)``).

A block distilled with DNA++'s self-supervised loss (``head=``, its trained projection heads) is
rated in the space it was trained in: Y is the teacher's embedding Z = P_t(teacher output) and
Y_hat the student's Z_hat = P_s(student output), so teacher and student widths may differ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import torch
from pydantic import ValidationError

from nasir.dna.blocks import PathNames
from nasir.dna.errors import DNAError
from nasir.dna.space import Block, Cell, Path, path_from_json, path_to_json
from nasir.io import atomic_write_text, read_json

FORMAT = "nasir-dna-rating-1"


@dataclass
class BlockRating:
    """Scores and costs of every path of one block, in ``Block.paths()`` order; ``names`` (a block
    of an IR space) says which architecture parameters each path picks."""

    name: str
    paths: list[Path]
    scores: list[float]
    params: list[int] = field(default_factory=list)
    flops: list[int] = field(default_factory=list)
    names: PathNames | None = None

    def ranked(self) -> list[int]:
        """Path positions from best (lowest score) to worst; ties keep enumeration order."""
        return sorted(range(len(self.scores)), key=lambda i: (self.scores[i], i))

    def label(self, i: int) -> str:
        """Path ``i`` as text: candidate names when known, else its cell and op indices as in the JSON."""
        if self.names is not None:
            return self.names.label(self.paths[i])
        cell, ops = self.paths[i]
        return f"cell {cell} ops {list(ops)}"

    def to_json(self) -> dict:
        rows = []
        for rank, i in enumerate(self.ranked()):
            row = {"rank": rank + 1, "index": i, **path_to_json(self.paths[i]), "score": self.scores[i]}
            if self.params:
                row["params"] = self.params[i]
            if self.flops:
                row["flops"] = self.flops[i]
            rows.append(row)
        doc = {"block": self.name, "paths": rows}
        if self.names is not None:
            doc["names"] = self.names.model_dump()
        return doc

    @classmethod
    def from_json(cls, data: object) -> BlockRating:
        if not isinstance(data, dict) or not isinstance(data.get("paths"), list):
            raise DNAError("a block rating is an object with 'block' and a list 'paths'")
        rows = sorted(data["paths"], key=lambda r: r.get("index", 0) if isinstance(r, dict) else 0)
        try:
            paths = [path_from_json(r) for r in rows]
            scores = [float(r["score"]) for r in rows]
            params = [int(r["params"]) for r in rows] if rows and all("params" in r for r in rows) else []
            flops = [int(r["flops"]) for r in rows] if rows and all("flops" in r for r in rows) else []
        except (KeyError, TypeError, ValueError) as e:
            raise DNAError(f"malformed rating row ({e})") from None
        if [r.get("index") for r in rows] != list(range(len(rows))):
            raise DNAError(f"rating of block {data.get('block')!r}: path indices are not 0..{len(rows) - 1}")
        if any(not math.isfinite(s) for s in scores):
            raise DNAError(f"rating of block {data.get('block')!r} holds non-finite scores")
        names = None
        if data.get("names") is not None:
            try:
                names = PathNames.model_validate(data["names"])
            except ValidationError as e:
                first = e.errors()[0]
                raise DNAError(f"rating of block {data.get('block')!r}: invalid names at "
                               f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return cls(str(data.get("block", "")), paths, scores, params, flops, names)


def save_ratings(path: str | FsPath, ratings: Sequence[BlockRating], space: Sequence[str] = ()) -> None:
    """Write the table; ``space`` (the command-line arguments naming the rated space, e.g. ``[file,
    "-D", "C=4"]``) lets later steps print the exact command that builds the searched network."""
    doc: dict = {"format": FORMAT, "blocks": [r.to_json() for r in ratings]}
    if space:
        doc["space"] = list(space)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def rated_space(path: str | FsPath) -> list[str]:
    """The space arguments ``save_ratings`` recorded ([] when none, or not a list of strings)."""
    doc = read_json(path, "ratings", DNAError)
    space = doc.get("space") if isinstance(doc, dict) else None
    return space if isinstance(space, list) and space and all(isinstance(w, str) for w in space) else []


def load_ratings(path: str | FsPath) -> list[BlockRating]:
    doc = read_json(path, "ratings", DNAError)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DNAError(f"{path}: not a nasir DNA rating table (expected format {FORMAT!r})")
    return [BlockRating.from_json(b) for b in doc.get("blocks", [])]


# -- scoring -------------------------------------------------------------------------------------
def _batches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int):
    if inputs.shape[0] != targets.shape[0]:
        raise DNAError(f"block inputs ({inputs.shape[0]} samples) and targets ({targets.shape[0]}) differ in length")
    if inputs.shape[0] == 0:
        raise DNAError("no samples to rate on")
    for start in range(0, inputs.shape[0], batch_size):
        yield inputs[start:start + batch_size], targets[start:start + batch_size]


def _denominator(targets: torch.Tensor) -> float:
    var = float(targets.double().var(unbiased=False))
    if not var > 0:
        raise DNAError("the teacher's block output is constant: the relative L1 loss (Eq. 7) is undefined")
    return targets.numel() * math.sqrt(var)


def _l1(y: torch.Tensor, g: torch.Tensor) -> float:
    if y.shape != g.shape:
        raise DNAError(f"student block output {list(y.shape)} does not match the teacher's {list(g.shape)}",
                       hint="a block trained with the DNA++ loss is rated through its projection heads (head=)")
    return float((y - g).abs().sum(dtype=torch.float64))


def _student_side(head: torch.nn.Module | None) -> Callable[[torch.Tensor], torch.Tensor]:
    return (lambda y: y) if head is None else head.student_proj


def _teacher_side(targets: torch.Tensor, head: torch.nn.Module | None, batch_size: int,
                  device: str | torch.device) -> torch.Tensor:
    """The rating targets: teacher features, or (DNA++) their embeddings through the teacher head."""
    if head is None:
        return targets
    return torch.cat([head.teacher_proj(targets[i:i + batch_size].to(device)).cpu()
                      for i in range(0, targets.shape[0], batch_size)])


def _dfs(cell: Cell, depth: int, x: torch.Tensor, g: torch.Tensor, sums: list[float], pos: list[int],
         project: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Alg. 1 DFS-Forward: run each candidate on the shared prefix output, recurse, score leaves."""
    layer = cell.layers[depth]
    last = depth == len(cell.layers) - 1
    for cand in layer:
        y = cand(x)
        if last:
            sums[pos[0]] += _l1(project(y), g)
            pos[0] += 1
        else:
            _dfs(cell, depth + 1, y, g, sums, pos, project)


@torch.no_grad()
def rate_block(block: Block, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 64,
               feature_sharing: bool = True, device: str | torch.device = "cpu", name: str | None = None,
               costs: bool = True, progress: Callable[[int], None] | None = None,
               head: torch.nn.Module | None = None) -> BlockRating:
    """Score every path of ``block`` (Eq. 7) on the teacher features ``inputs`` -> ``targets``.

    The block runs in eval mode (BatchNorm with running statistics). ``progress`` is called with
    the number of samples finished after each batch. ``head``: the DNA++ projection heads the
    block was trained with (``SelfSupervisedBlockLoss``, see ``distill.load_trained_block``);
    scores then compare embeddings.
    """
    paths = list(block.paths())
    sums = [0.0] * len(paths)
    was_training = block.training
    block.eval().to(device)
    if head is not None:
        head.eval().to(device)
    targets = _teacher_side(targets, head, batch_size, device)
    denom = _denominator(targets)
    project = _student_side(head)
    try:
        for x, g in _batches(inputs, targets, batch_size):
            x, g = x.to(device), g.to(device)
            if feature_sharing:
                pos = [0]
                for cell in block.cells:
                    _dfs(cell, 0, x, g, sums, pos, project)
            else:
                for i, path in enumerate(paths):
                    sums[i] += _l1(project(block(x, path)), g)
            if progress is not None:
                progress(x.shape[0])
    finally:
        block.train(was_training)
    scores = [s / denom for s in sums]
    params: list[int] = []
    flops: list[int] = []
    if costs:
        table = block.path_costs(inputs[:1].to(device))
        params = [c.params for c in table]
        flops = [c.flops for c in table]
    return BlockRating(name or block.block_name or "", paths, scores, params, flops)


def candidate_forwards(block: Block, feature_sharing: bool = True) -> int:
    """Candidate-module forwards per batch: what feature sharing saves."""
    total = 0
    for cell in block.cells:
        if feature_sharing:
            prefix = 1
            for n in cell.choices:
                prefix *= n
                total += prefix
        else:
            total += cell.size * len(cell.choices)
    return total
