"""Predictors of stand-alone accuracy, each a list of scores (higher: predicted better), one per
architecture of a study, so that the harness ranks them all the same way.

* ``params`` and ``flops``: the IR cost model (``nasir.ir.cost.arch_cost``) of each fixed
  architecture; the naive baseline "bigger is better";
* ``spos``: a single-path one-shot supernet (``nasir.search``, method ``spos``) trained once, each
  architecture then evaluated on the held-out split through its own path, batch-norm statistics
  recomputed for that path first (the SPOS evaluation);
* ``dna``: a rating file of ``nasir dna rate``; an architecture's score is minus the sum of the
  scores of the paths it takes through the rated blocks (DNA's search objective, lower is better);
* ``file``: any other predictor (DANCE's, a zero-cost proxy, ...) as a ``PredictorFile``, JSON
  ``{"format": "nasir-predictor-1", "name": ..., "scores": {label: score}}`` keyed by the
  architecture labels of the study (``arch_label``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from nasir.data.images import ImageSet
from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph

Arch = Mapping[str, int]


def arch_label(graph: Graph, arch: Arch) -> str:
    """``name=candidate`` pairs of the architecture, in the parameter order of the graph."""
    return ",".join(f"{name}={graph.arch[name].candidates[arch[name]]}" for name in graph.arch if name in arch)


def sample_architectures(graph: Graph, count: int, seed: int) -> list[dict[str, int]]:
    """``count`` distinct architectures drawn uniformly (every parameter independently), in the
    order drawn; fewer if the space has fewer."""
    g = torch.Generator().manual_seed(seed)
    names = list(graph.arch)
    total = 1
    for name in names:
        total *= graph.arch[name].size
    seen: dict[tuple[int, ...], None] = {}
    while len(seen) < min(count, total):
        key = tuple(int(torch.randint(graph.arch[name].size, (1,), generator=g)) for name in names)
        seen.setdefault(key, None)
    return [dict(zip(names, key)) for key in seen]


def cost_scores(graph: Graph, archs: Sequence[Arch]) -> dict[str, list[float]]:
    """Parameters and FLOPs of each architecture (IR cost model)."""
    from nasir.ir.cost import arch_cost
    from nasir.ir.verify import infer_shapes

    infer_shapes(graph)
    costs = [arch_cost(graph, dict(a)) for a in archs]
    return {"params": [float(c.params) for c in costs], "flops": [float(c.flops) for c in costs]}


def dna_scores(graph: Graph, archs: Sequence[Arch], ratings_path: str | Path) -> list[float]:
    """Minus each architecture's summed DNA path score from a ``nasir dna rate`` file: in every
    rated block, the path whose picks the architecture makes."""
    from nasir.dna.rating import load_ratings

    ratings = load_ratings(ratings_path)
    if any(r.names is None for r in ratings):
        raise NasirError(f"{ratings_path}: the ratings carry no candidate names (rate an IR space, not std/mbconv's "
                         "built-in student space)")
    out = []
    for arch in archs:
        picks = {name: graph.arch[name].candidates[i] for name, i in arch.items()}
        total = 0.0
        for rating in ratings:
            matching = [k for k, path in enumerate(rating.paths)
                        if all(picks.get(name) == cand for name, cand in rating.names.picks(path).items())]
            if len(matching) != 1:
                raise NasirError(f"{ratings_path}: block {rating.name} has {len(matching)} paths matching "
                                 f"{arch_label(graph, arch)}; was it rated on this space?")
            total += rating.scores[matching[0]]
        out.append(-total)
    return out


class PredictorFile(BaseModel):
    """A predictor's scores for the architectures of a study, keyed by ``arch_label``; higher is
    predicted better (negate losses). ``predictor.schema.json`` is this model's schema."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["nasir-predictor-1"] = "nasir-predictor-1"
    #: what produced the scores, e.g. "dance" or "synflow"
    name: str
    scores: dict[str, float]

    @classmethod
    def json_schema(cls) -> dict:
        return cls.model_json_schema()


def file_scores(graph: Graph, archs: Sequence[Arch], path: str | Path) -> tuple[str, list[float]]:
    """(name, scores) of a ``PredictorFile``, one score per architecture of the study."""
    from nasir.io import read_json

    try:
        doc = PredictorFile.model_validate(read_json(path))
    except ValidationError as e:
        raise NasirError(f"{path}: not a predictor file: {e.errors()[0]['msg']} at "
                         f"{'.'.join(map(str, e.errors()[0]['loc'])) or 'top level'}",
                         hint='write {"format": "nasir-predictor-1", "name": ..., "scores": {label: score}}') from None
    missing = [arch_label(graph, a) for a in archs if arch_label(graph, a) not in doc.scores]
    if missing:
        raise NasirError(f"{path}: no score for {len(missing)} architecture(s) of the study, e.g. {missing[0]!r}")
    return doc.name, [doc.scores[arch_label(graph, a)] for a in archs]


@torch.no_grad()
def recalibrate_batch_norm(model: torch.nn.Module, batches: Sequence[torch.Tensor]) -> None:
    """Recompute every batch-norm layer's running statistics as the plain average over ``batches``
    (the path being evaluated sees its own statistics, not the supernet's mixture)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for x in batches:
        model(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


def spos_scores(graph: Graph, archs: Sequence[Arch], train: ImageSet, held: ImageSet, steps: int, seed: int,
                batch_size: int = 64, lr: float = 0.05, calibration_batches: int = 4, device: str | torch.device = "cpu",
                log: Callable[[str], None] | None = None) -> list[float]:
    """Train an SPOS supernet for ``steps`` on ``train``, then the held-out accuracy of each
    architecture's path (batch norm recalibrated on ``calibration_batches`` training batches)."""
    from nasir.lowering import lower
    from nasir.ranking.train import accuracy
    from nasir.runtime import FixedSampler
    from nasir.search.darts import SearchConfig, SupernetSearch

    config = SearchConfig.for_method("spos", steps=steps, epochs=0, batch_size=batch_size, lr=lr, seed=seed)
    model = lower(graph, mode="sampled", seed=seed)
    SupernetSearch(model, config, device=device).run(train, held, progress=False)
    calibration = [train.batch(torch.arange(k * batch_size, (k + 1) * batch_size) % len(train))[0].to(device)
                   for k in range(calibration_batches)]
    out = []
    for arch in archs:
        model.sampler = FixedSampler(arch)
        recalibrate_batch_norm(model, calibration)
        out.append(accuracy(model, held, device=device))
        if log is not None:
            log(f"spos {arch_label(graph, arch)}: held-out accuracy {out[-1]:.4f}")
    return out
