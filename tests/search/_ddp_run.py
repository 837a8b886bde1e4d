"""DARTS-family searches, ``nasir train``'s trainer and DANCE training in two gloo processes, for
``test_distributed.py``, which starts this file under torchrun: process 0 writes each run's
parameters and logged losses to the folder named by the first argument, for the test to compare
with single-process runs on the same data.

The folder must already hold ``one.safetensors`` and ``train_one.safetensors``: a search and a
training checkpoint one process saved at step 1, which the two processes resume here; they also
save ``two.safetensors`` at step 1, for one process to resume.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import save_file

from nasir.data.tinyshapes import load_tiny
from nasir.distributed import Processes, processes
from nasir.frontends.elaborate import parse_file, std_path
from nasir.ir.arch import load_architecture
from nasir.ir.genotype import DARTS_V2
from nasir.lowering import lower
from nasir.search.darts import SearchConfig, SupernetSearch
from nasir.search.methods import METHODS
from nasir.train.trainer import Trainer

#: name -> (method, order): the runs compared step for step
CASES = {"darts1": ("darts", 1), "darts2": ("darts", 2), "gdas": ("gdas", 1)}
BATCH = 32


def data():
    """Weight and architecture halves: two global batches each, of 8 x 8 corners (the network is
    convolutional: small images keep the test fast)."""
    x, y = load_tiny("train")
    x = x[:, :, :8, :8]
    return (x[:2 * BATCH], y[:2 * BATCH]), (x[2 * BATCH:4 * BATCH], y[2 * BATCH:4 * BATCH])


@cache
def _space():
    return parse_file(std_path("darts"), C=4, layers=2, steps=2, multiplier=2)


def search_for(case: str, steps: int, procs: Processes | None = None) -> SupernetSearch:
    """A search of a small DARTS space with augmented batches (crop, flip, cutout)."""
    method, order = CASES[case]
    model = lower(_space(), METHODS[method].mode, seed=0)
    config = SearchConfig.for_method(method, order=order, steps=steps, epochs=0, batch_size=BATCH, save_every=1, augment=True,
                                     cutout=8)
    return SupernetSearch(model, config, processes=procs)


def result(search: SupernetSearch) -> dict[str, torch.Tensor]:
    """What the comparison looks at: every parameter (weights and alphas) and the logged losses."""
    out = {name: p.detach().clone() for name, p in search.model.named_parameters()}
    out["log.losses"] = torch.tensor(search.log.losses, dtype=torch.float64)
    out["log.accuracies"] = torch.tensor(search.log.accuracies, dtype=torch.float64)
    return out


def train_data():
    """One global batch of 32 x 32 images to train on (an epoch is one step), and one to test on."""
    x, y = load_tiny("train")
    return (x[:BATCH], y[:BATCH]), (x[BATCH:2 * BATCH], y[BATCH:2 * BATCH])


def trainer_for(steps: int, procs: Processes | None = None) -> Trainer:
    """``nasir train``'s trainer of DARTS_V2 in the evaluation network at width 4 (drop path, the
    auxiliary head) with the DARTS recipe; drop path rises to 0.6 over two epochs: 0 in the first
    step, 0.3 in the second."""
    from nasir.train.trainer import TrainConfig

    graph = parse_file(std_path("darts"), C=4, layers=3, eval=True)
    model = lower(graph, "fixed", arch=load_architecture(DARTS_V2, graph).arch, seed=0)
    config = TrainConfig.for_recipe("darts", steps=steps, batch_size=BATCH, drop_path=0.6, augment=True, cutout=8,
                                    save_every=1)
    return Trainer(model, config, network="darts_v2", processes=procs)


def trainer_result(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    out["log.losses"] = torch.tensor(trainer.log.losses, dtype=torch.float64)
    out["log.accuracies"] = torch.tensor(trainer.log.accuracies, dtype=torch.float64)
    return out


def dance_for(stage1: int, stage2: int, procs: Processes | None = None):
    """DANCE on ResNet-18 at width 4 (8 x 8 images), gates at half the channels."""
    from nasir.api import compile_file
    from nasir.dance.gated import GatedNetwork
    from nasir.dance.train import DanceConfig, DanceTrainer
    from nasir.passmanager import PassManager

    graph = PassManager.parse("dance-gates{budget=0.5}").run(compile_file("std/resnet18.nas", width=4))
    config = DanceConfig(stage1_steps=stage1, stage2_steps=stage2, batch_size=8, samples=2, cutout=4)
    return DanceTrainer(GatedNetwork(graph, seed=0), config, progress=False, processes=procs)


def dance_result(trainer) -> dict[str, torch.Tensor]:
    out = {name: p.detach().clone() for name, p in trainer.net.named_parameters()}
    out["log.losses"] = torch.tensor([h["loss"] for h in trainer.log.history], dtype=torch.float64)
    return out


def main(out: Path) -> None:
    torch.set_num_threads(1)
    with processes("cpu") as procs:
        runs(out, procs)  # in a function: its DDP modules are gone before the process group goes


def runs(out: Path, procs: Processes) -> None:
    assert procs.world == 2, procs
    for case in CASES:
        search = search_for(case, 1, procs)
        search.run(*data(), progress=False)
        procs.main_only(lambda s=search, c=case: save_file(result(s), out / f"{c}.safetensors"))
    search_for("darts1", 1, procs).run(*data(), checkpoint=out / "two.safetensors", progress=False)
    search = search_for("darts1", 2, procs)
    search.run(*data(), checkpoint=out / "one.safetensors", resume=True, progress=False)
    procs.main_only(lambda: save_file(result(search), out / "resumed_by_two.safetensors"))
    trainer = trainer_for(2, procs)
    trainer.run(*train_data(), progress=False)
    procs.main_only(lambda: save_file(trainer_result(trainer), out / "train.safetensors"))
    trainer = trainer_for(2, procs)
    trainer.run(*train_data(), checkpoint=out / "train_one.safetensors", resume=True, progress=False)
    procs.main_only(lambda: save_file(trainer_result(trainer), out / "train_resumed_by_two.safetensors"))
    trainer = dance_for(1, 0, procs)
    trainer.train(data()[0])
    procs.main_only(lambda: save_file(dance_result(trainer), out / "dance1.safetensors"))
    trainer = dance_for(0, 2, procs)  # stage 2: T = 2 samples, gradients averaged after the last
    trainer.train(data()[0])
    for p in trainer.net.parameters():  # every process ends with the same network
        first = p.detach().clone()
        torch.distributed.broadcast(first, src=0)
        assert torch.equal(first, p.detach()), "the processes' networks differ after DANCE stage 2"


if __name__ == "__main__":
    main(Path(sys.argv[1]))
