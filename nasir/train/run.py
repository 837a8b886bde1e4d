"""Train one architecture of a space from scratch: the Python API behind ``nasir train``.

    >>> import nasir
    >>> graph = nasir.compile_file("std/darts.nas", C=4, layers=3)
    >>> trained = nasir.train_network(graph, "arch.json", steps=5, batch_size=16, output="net.safetensors")
    >>> trained.test_accuracy, trained.parameters, trained.flops

``train_network`` lowers the fixed network (``lower(graph, "fixed", arch=...)``), loads ``--data``
at the space's resolution, trains it with the recipe that applies to the space
(``nasir.train.recipes``; any setting can be given), evaluates it on the whole test set and
writes it, if asked, as a fixed-network safetensors file (the plain network's IR and weights, what
``nasir export --format safetensors`` writes): ``nasir export FILE --format onnx|pt2`` exports it,
``nasir.exporting.load_fixed_network(FILE)`` loads it. Every output location is checked before
anything is trained. Parameters and FLOPs are those of the network the papers report (DARTS_V2's
3.3M): an auxiliary head, which runs in training only, is counted on its own.

Under ``torchrun`` (``processes``, ``nasir.distributed``) every process trains its share of each
batch and evaluates its share of the test set; process 0 alone writes the checkpoint, the log and
the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasir.diagnostics import NasirError
from nasir.distributed import Processes
from nasir.ir.arch import ArchSource, load_architecture
from nasir.ir.graph import Graph
from nasir.lowering import NasirModule
from nasir.train.recipes import RECIPES, recipe_for
from nasir.train.trainer import TrainConfig, Trainer, TrainLog


@dataclass
class TrainedNetwork:
    """What ``train_network`` trained and measured."""

    model: NasirModule
    config: TrainConfig
    log: TrainLog
    #: accuracy on the whole test set after the run (NaN for a data source without test images)
    test_accuracy: float
    test_images: int
    #: trainable parameters of the network, without its auxiliary head (if it has one)
    parameters: int
    #: multiply-accumulates of one forward pass of one image, without the auxiliary head (the IR's cost model)
    flops: int
    #: the auxiliary head's parameters and FLOPs (0: the network has none)
    aux_parameters: int = 0
    aux_flops: int = 0
    #: the fixed-network file written (None: none was asked for)
    output: Path | None = None


def network_description(graph: Graph) -> str:
    """``name(param=value, ...)``: what a checkpoint records as the network it trained."""
    return f"{graph.name}({', '.join(f'{k}={v}' for k, v in graph.params.items())})"


def train_network(graph: Graph, arch: ArchSource, *, data: str = "tinyshapes", recipe: str | None = None,
                  device: str = "cpu", workers: int = 0, checkpoint: str | Path | None = None, resume: bool = False,
                  log: str | Path | None = None, output: str | Path | None = None, progress: bool = True,
                  processes: Processes | None = None, **options: Any) -> TrainedNetwork:
    """Train ``graph`` at ``arch`` from scratch (see the module docstring). ``recipe``: ``darts`` or
    ``nb201`` (None: the one for the space); ``options``: ``TrainConfig`` fields (``steps``,
    ``epochs``, ``batch_size``, ``lr``, ``amp``, ...) that replace the recipe's. ``processes``: this
    process's place in a run of many (its device is used instead of ``device``)."""
    from nasir.data import load_data
    from nasir.data.sources import check_classes, space_resolution
    from nasir.io import check_output
    from nasir.ir.arch import resolve_arch
    from nasir.ir.cost import arch_cost, aux_head_cost
    from nasir.lowering import lower
    from nasir.runtime import AuxHead

    for path, what in ((checkpoint, "checkpoint"), (log, "log"), (output, "output")):
        if path is not None:
            check_output(path, what)
    recipe = recipe or recipe_for(graph.name)
    if recipe not in RECIPES:
        raise NasirError(f"unknown training recipe {recipe!r}", hint=f"choose one of {', '.join(RECIPES)}")
    picks = load_architecture(arch, graph).arch
    images = load_data(data, space_resolution(graph))
    check_classes(graph, images)
    seed = options.get("seed", 0)
    model = lower(graph, "fixed", arch=picks, seed=seed)
    config = TrainConfig.for_recipe(recipe, **{"augment": images.crop_flip, "data": images.spec, **options})
    trainer = Trainer(model, config, device=device, workers=workers, network=network_description(graph), arch=picks,
                      processes=processes)
    run_log = trainer.run(images.train, images.test, checkpoint=checkpoint, resume=resume, progress=progress, log=log)
    accuracy = trainer.evaluate(images.test)[1] if len(images.test) else float("nan")
    cost, head = arch_cost(graph, resolve_arch(graph, picks)), aux_head_cost(graph)
    head_parameters = sum(p.numel() for m in model.modules() if isinstance(m, AuxHead) for p in m.parameters())
    written = None
    if output is not None:
        from nasir.exporting import save_fixed_network

        trainer.processes.main_only(lambda: save_fixed_network(graph, picks, model, output))
        written = Path(output)
    model.eval()
    return TrainedNetwork(model, config, run_log, accuracy, len(images.test),
                          sum(p.numel() for p in model.parameters()) - head_parameters, cost.flops - head.flops,
                          head_parameters, head.flops, written)

