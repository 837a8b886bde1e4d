"""DANCE's three-stage training (Sec. 2.3, Alg. 1, appendix C).

* Stage 1 pre-trains the backbone with the gates open and frozen (cross-entropy, AdamW, OneCycle
  with 30% warm-up).
* Stage 2 trains everything jointly with the dual loop: per batch, T architectures are sampled by
  the select gates (exact C_l per group) and each one's loss (``losses.dance_loss``) is
  back-propagated; then three AdamW optimizers (backbone, gates, batch representation), each with
  its own OneCycle schedule, step once. With ``budget_range`` every batch trains a random global
  budget from that range, so one training serves every budget in it afterwards. With
  ``tau_start`` the Gumbel temperature anneals exponentially to ``tau_end`` (appendix C picks tau
  from [0.1, 1]): early samples explore, late ones follow the learned distribution, so the weights
  co-adapt with the architectures the gates will generate.
* Stage 3 (``finetune``) generates the architecture for a budget and data
  (``GatedNetwork.generate``), extracts the physically smaller network with the supernet's weights
  and fine-tunes it with cross-entropy.

Training is counted in steps (mini-batches) rather than epochs so that short demo runs and tests
are easy to size. AMP (bfloat16 autocast, which needs no loss scaling) is used on CUDA. Progress
shows in tqdm bars. ``checkpoint`` saves the network, the optimizer and scheduler states, the RNG
and the position (stage, step) every ``save_every`` steps or ``save_minutes`` minutes, whichever
comes first, and at the end of each stage, as safetensors + JSON (never pickle); ``resume``
continues the stage where it stopped, with the same batches, temperatures and random draws as an
uninterrupted run, which it equals bit for bit on the CPU. A checkpoint is validated as data first
(``DanceCheckpoint``): its configuration must be this run's (the save intervals may differ), its
position must lie within the run, and its optimizer and scheduler states must fit before anything
is loaded.

Many processes (``torchrun --nproc_per_node N nasir dance train ...``, ``nasir.distributed``): each
process trains on its rows of every global batch of ``batch_size`` images, with the network in
DistributedDataParallel (backbone, gates and batch representation alike; unused parameters allowed:
stage 1 leaves the gates out). Stage 2's T samples accumulate their gradients locally and are
averaged once, after the last. The budget and, on the CPU, the gates' Gumbel draws come from
generators seeded alike in every process; the gates see each process's share of the batch (the
batch representation is a function of it, as BatchNorm statistics are). Losses are logged as means
over the processes; process 0 alone shows progress and writes the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm.auto import tqdm

from nasir.checkpoint import (
    CheckpointMeta,
    flatten_state,
    load_checkpoint_as,
    restore_optimizer,
    restore_scheduler,
    save_checkpoint,
)
from nasir.dance.errors import DanceError
from nasir.dance.gated import GatedNetwork
from nasir.dance.losses import LossWeights, dance_loss
from nasir.data.images import ImageSet, augmentation_for
from nasir.data.loader import index_batches, stream
from nasir.diagnostics import NasirError
from nasir.distributed import Processes, wrap
from nasir.ir.graph import Graph
from nasir.save_schedule import CHECKPOINT_MINUTES, SaveSchedule

#: Training data: an ``ImageSet`` (``nasir.data``), or normalized images and labels.
Data = ImageSet | tuple[torch.Tensor, torch.Tensor]


@dataclass
class DanceConfig:
    stage1_steps: int = 200
    stage2_steps: int = 200
    stage3_steps: int = 100
    batch_size: int = 64
    samples: int = 2  # T architectures per batch
    lr_backbone: float = 1e-3
    lr_gates: float = 1e-3
    lr_repr: float = 5e-4
    lr_finetune: float = 5e-4
    weight_decay: float = 5e-4
    budget: float | None = None  # stage-2 budget for every group; None keeps the graph's gate budgets
    budget_range: tuple[float, float] | None = None  # per-batch random global budget in stage 2
    augment: bool = True  # random crop (pad 4) and horizontal flip of image batches
    cutout: int = 0  # side of the square cutout zeroes in training batches (0: none)
    data: str = "tinyshapes"  # the ``--data`` source trained on: recorded, checked on resume, default of extract
    grad_clip: float = 5.0
    tau_start: float | None = 1.0  # anneal the gates' Gumbel temperature over stage 2 (None: keep each gate's tau)
    tau_end: float = 0.1
    seed: int = 0
    save_every: int = 50
    save_minutes: float = CHECKPOINT_MINUTES
    amp: bool = True
    losses: LossWeights = field(default_factory=LossWeights)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def run_key(self) -> dict[str, Any]:
        """What a resumed run must share with the checkpoint (as JSON): all but the save intervals."""
        return {k: v for k, v in json.loads(json.dumps(self.to_json())).items() if k not in ("save_every", "save_minutes")}

    def validate(self) -> None:
        for name in ("stage1_steps", "stage2_steps", "stage3_steps"):
            if getattr(self, name) < 0:
                raise DanceError(f"{name} must be >= 0")
        if self.cutout < 0:
            raise DanceError(f"cutout must be >= 0, got {self.cutout}")
        if self.batch_size < 2 or self.samples < 1:
            raise DanceError("batch_size must be >= 2 and samples (T) >= 1")
        if (self.tau_start is not None and self.tau_start <= 0) or self.tau_end <= 0:
            raise DanceError("Gumbel temperatures tau_start and tau_end must be > 0")
        if self.budget_range is not None:
            lo, hi = self.budget_range
            if not 0 < lo <= hi <= 1:
                raise DanceError(f"budget_range must satisfy 0 < low <= high <= 1, got {self.budget_range}")


class GateOptions(BaseModel):
    """``GatedNetwork`` constructor options as a checkpoint stores them; sizes are bounded so that a
    damaged file cannot ask for a huge allocation before its weights are compared."""

    model_config = ConfigDict(extra="forbid", strict=True)

    embed_dim: int = Field(ge=1, le=4096)
    hidden: int = Field(ge=1, le=4096)
    tau: float = Field(gt=0, allow_inf_nan=False)
    lambdas: list[float] = Field(min_length=4, max_length=4)
    alpha: float = Field(allow_inf_nan=False)
    noise: float = Field(ge=0, allow_inf_nan=False)


class DanceCheckpoint(CheckpointMeta):
    """Metadata of a ``dance-train`` checkpoint."""

    kind: Literal["dance-train"] = "dance-train"
    graph: str
    config: DanceConfig
    net: GateOptions
    budgets: dict[str, int]
    taus: dict[str, float] = Field(default_factory=dict)
    stage: Literal["stage1", "stage2", "done"]
    step: int = Field(ge=0)
    seconds: float = Field(ge=0, allow_inf_nan=False)
    history: list[dict[str, float]]
    optim: dict[str, Any]
    sched1: dict[str, Any]
    sched2: dict[str, dict[str, Any]]
    #: the command line that continues this run, for messages about an unfinished one
    resume_command: str | None = None

    def positions(self) -> tuple[int, int]:
        """Steps taken in stage 1 and in stage 2; a ``ValueError`` when the position is impossible
        for the checkpoint's own configuration."""
        c = self.config
        steps1, steps2 = {"stage1": (self.step, 0), "stage2": (c.stage1_steps, self.step),
                          "done": (c.stage1_steps, c.stage2_steps)}[self.stage]
        if steps1 > c.stage1_steps or steps2 > c.stage2_steps or (self.stage == "done" and self.step != 0):
            raise ValueError(f"{self.stage} step {self.step} lies outside a run of {c.stage1_steps} + {c.stage2_steps} steps")
        if len(self.history) != steps1 + steps2 or any("loss" not in entry for entry in self.history):
            raise ValueError(f"{len(self.history)} history entries (each with a loss) for {steps1 + steps2} steps")
        return steps1, steps2


@dataclass
class DanceLog:
    stage: str = "stage1"
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    #: (stage, step) the run continued from; None when it started afresh
    resumed_from: tuple[str, int] | None = None


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _one_cycle(opt: torch.optim.Optimizer, lr: float, steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(2, steps), pct_start=0.3)


@torch.no_grad()
def accuracy(module: nn.Module, data: Data, batch_size: int = 256, device: str | torch.device = "cpu") -> float:
    images, labels = ImageSet.of(data).normalized()
    was = module.training
    module.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        out = module(images[start:start + batch_size].to(device))
        correct += int((out.argmax(1).cpu() == labels[start:start + batch_size]).sum())
    module.train(was)
    return correct / max(1, images.shape[0])


@torch.no_grad()
def recalibrate_bn(module: nn.Module, images: torch.Tensor, batches: int = 8, batch_size: int = 128,
                   device: str | torch.device = "cpu") -> None:
    """Recompute BatchNorm running statistics for the network as it is now (after pruning).

    Running statistics gathered while stage 2 sampled many architectures describe none of them; a
    few forward passes over training images fix that for the chosen one (as slimmable networks and
    OFA do). Every method of a comparison gets the same recalibration."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    was = module.training
    module.train()
    try:
        for b in range(batches):
            chunk = images[b * batch_size:(b + 1) * batch_size]
            if chunk.shape[0] < 2:
                break
            module(chunk.to(device))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        module.train(was)


class DanceTrainer:
    """Runs stages 1 and 2 on a ``GatedNetwork`` and stage 3 on the networks it extracts."""

    def __init__(self, net: GatedNetwork, config: DanceConfig, device: str | torch.device = "cpu",
                 progress: bool = True, resume_command: str | None = None, workers: int = 0,
                 processes: Processes | None = None):
        """``processes``: this process's place in a run of many (``nasir.distributed``; its device is
        used); None: a single process on ``device``."""
        config.validate()
        self.processes = processes or Processes(torch.device(device))
        self.processes.check_batch(config.batch_size)
        self.device = self.processes.device
        self.net = net.to(self.device)
        #: what the steps call: the network, in DistributedDataParallel with many processes
        self.forward = wrap(net, self.processes, find_unused_parameters=True)
        self.workers = workers  # DataLoader processes preparing batches; the batches do not depend on it
        self.config = config
        self.progress = progress and self.processes.main
        self.resume_command = resume_command
        self.log = DanceLog()
        c = config
        self.opt1 = torch.optim.AdamW(net.backbone_parameters(), lr=c.lr_backbone, weight_decay=c.weight_decay)
        self.sched1 = _one_cycle(self.opt1, c.lr_backbone, c.stage1_steps)
        self.opts2 = {
            "backbone": torch.optim.AdamW(net.backbone_parameters(), lr=c.lr_backbone / 2, weight_decay=c.weight_decay),
            "gates": torch.optim.AdamW(net.gate_parameters(), lr=c.lr_gates, weight_decay=0.0),
            "repr": torch.optim.AdamW(net.repr_parameters(), lr=c.lr_repr, weight_decay=0.0),
        }
        lrs = {"backbone": c.lr_backbone / 2, "gates": c.lr_gates, "repr": c.lr_repr}
        self.scheds2 = {k: _one_cycle(o, lrs[k], c.stage2_steps) for k, o in self.opts2.items()}
        self.budget_gen = torch.Generator().manual_seed(c.seed + 11)
        self.gate_gen = torch.Generator().manual_seed(c.seed + 13)

    # -- stages 1 and 2 ------------------------------------------------------------------------------
    def train(self, data: Data, checkpoint: str | Path | None = None, resume: bool = False) -> DanceLog:
        """Stages 1 and 2; resumable. Returns the log (loss history, position, time)."""
        data = ImageSet.of(data)
        if len(data) < self.config.batch_size:
            raise DanceError(f"{len(data)} training samples are fewer than one batch of {self.config.batch_size}")
        if resume and checkpoint is not None and Path(checkpoint).is_file():
            self.load(checkpoint)
            self.log.resumed_from = (self.log.stage, self.log.step)
        start = time.perf_counter() - self.log.seconds
        if self.log.stage == "stage1":
            self._stage(data, "stage1", self.config.stage1_steps, self._step1, checkpoint, start)
            self.log.stage, self.log.step = "stage2", 0
            if checkpoint is not None:
                self._save(checkpoint, start)
        if self.log.stage == "stage2":
            if self.config.budget is not None:
                self.net.set_budget(self.config.budget)
            self._stage(data, "stage2", self.config.stage2_steps, self._step2, checkpoint, start)
            self.log.stage, self.log.step = "done", 0
            if checkpoint is not None:
                self._save(checkpoint, start)
        self.log.seconds = time.perf_counter() - start
        self.net.set_mode("off")
        return self.log

    def _stage(self, data: ImageSet, stage: str, steps: int, step_fn, checkpoint, start: float) -> None:
        seed = self.config.seed * 1000 + (1 if stage == "stage1" else 2)
        # each batch augmented with a generator of its own: the same batches on resume, with any --workers
        batches = stream(data, self.config.batch_size, seed, augmentation_for(self.config.augment, self.config.cutout),
                         skip=self.log.step, workers=self.workers, pin_memory=self.device.type == "cuda",
                         part=self.processes.rows(self.config.batch_size))
        bar = tqdm(total=steps, initial=self.log.step, desc=f"dance {stage}", disable=not self.progress, leave=False)
        schedule = SaveSchedule(self.config.save_every, self.config.save_minutes, last_step=self.log.step)
        self.net.train()
        while self.log.step < steps:
            x, y = next(batches)
            parts = step_fn(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
            parts = dict(zip(parts, self.processes.mean(list(parts.values()))))
            self.log.history.append({"stage": 1.0 if stage == "stage1" else 2.0, **parts})
            self.log.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
            if checkpoint is not None and schedule.due(self.log.step) and self.log.step < steps:
                self._save(checkpoint, start)
                schedule.saved(self.log.step)
        bar.close()

    def _step1(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.net.set_mode("off")
        self.opt1.zero_grad(set_to_none=True)
        with _autocast(self.device, self.config.amp):
            logits = self.forward(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.backbone_parameters(), self.config.grad_clip)
        self.opt1.step()
        self.sched1.step()
        return {"loss": float(loss.detach())}

    def _step2(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        c = self.config
        net = self.net
        net.set_mode("sample")
        net.set_generator(self.gate_gen if self.device.type == "cpu" else None)
        if c.tau_start is not None:
            frac = self.log.step / max(1, c.stage2_steps - 1)
            tau = c.tau_start * (c.tau_end / c.tau_start) ** frac
            for g in net.groups:
                net.gate(g).tau = tau
        if c.budget_range is not None:
            lo, hi = c.budget_range
            net.set_budget(float(lo + (hi - lo) * torch.rand((), generator=self.budget_gen)))
        for opt in self.opts2.values():
            opt.zero_grad(set_to_none=True)
        previous: dict[str, list[torch.Tensor]] = {}
        totals: dict[str, float] = {}
        for sample in range(c.samples):
            # with many processes, gradients are averaged once, in the backward pass of the last sample
            local = sample < c.samples - 1 and self.processes.distributed
            with self.forward.no_sync() if local else contextlib.nullcontext():
                with _autocast(self.device, c.amp):
                    logits = self.forward(x)
                loss, parts = dance_loss(logits, y, net, c.losses, self.log.step, previous)
                (loss / c.samples).backward()
            for g, m in net.last_masks().items():
                previous.setdefault(g, []).append(m)
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach()) / c.samples
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v / c.samples
        nn.utils.clip_grad_norm_(list(net.parameters()), c.grad_clip)
        for key, opt in self.opts2.items():
            opt.step()
            self.scheds2[key].step()
        return totals

    # -- stage 3 ----------------------------------------------------------------------------------------
    def finetune(self, masks: dict[str, torch.Tensor], data: Data, steps: int | None = None) -> tuple[Graph, nn.Module]:
        """Stage 3: extract the network for ``masks`` and fine-tune it with cross-entropy."""
        graph, module = self.net.extract(masks)
        steps = self.config.stage3_steps if steps is None else steps
        return graph, finetune(module, data, steps, self.config, self.device, self.progress)

    # -- checkpoints --------------------------------------------------------------------------------
    def _save(self, path: str | Path, start: float) -> None:
        """``save`` in process 0; the others wait for it."""
        self.processes.main_only(lambda: self.save(path, start))

    def save(self, path: str | Path, start: float | None = None) -> None:
        tensors: dict[str, torch.Tensor] = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        opt_meta = {
            "opt1": flatten_state("opt1", self.opt1.state_dict(), tensors),
            **{f"opt2_{k}": flatten_state(f"opt2_{k}", o.state_dict(), tensors) for k, o in self.opts2.items()},
        }
        tensors["rng.cpu"] = torch.get_rng_state()
        for name, gen in self._generators():
            tensors[f"rng.{name}"] = gen.get_state()
        seconds = time.perf_counter() - start if start is not None else self.log.seconds
        meta = {
            "kind": "dance-train",
            "graph": self.net.graph.model_dump_json(exclude_none=True),
            "config": self.config.to_json(),
            "net": self.net.hparams,
            "budgets": {g: self.net.gate(g).keep for g in self.net.groups},
            "taus": {g: self.net.gate(g).tau for g in self.net.groups},
            "stage": self.log.stage, "step": self.log.step, "seconds": seconds,
            "history": self.log.history,
            "optim": opt_meta,
            "sched1": self.sched1.state_dict(),
            "sched2": {k: s.state_dict() for k, s in self.scheds2.items()},
            "resume_command": self.resume_command,
        }
        save_checkpoint(path, tensors, json.loads(json.dumps(meta, default=_jsonable)))

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint of this run; everything is checked before training continues."""
        tensors, meta = read_train_checkpoint(path)
        if set(meta.budgets) != set(self.net.groups):
            raise DanceError(f"{path}: checkpoint was made for other gate groups than this network's")
        ours, theirs = self.config.run_key(), meta.config.run_key()
        differ = [k for k in ours if ours[k] != theirs[k]]
        if differ:
            raise DanceError(f"{path}: checkpoint was made with {differ[0]}={theirs[differ[0]]!r}, this run has "
                             f"{ours[differ[0]]!r}", hint="resume with the same options, or start afresh")
        steps1, steps2 = _positions(meta, path)
        if set(meta.optim) != {"opt1", *(f"opt2_{k}" for k in self.opts2)} or set(meta.sched2) != set(self.scheds2):
            raise DanceError(f"{path}: checkpoint holds other optimizers than this trainer's")
        restore_optimizer(self.opt1, meta.optim["opt1"], tensors, str(path), DanceError)
        for k, o in self.opts2.items():
            restore_optimizer(o, meta.optim[f"opt2_{k}"], tensors, str(path), DanceError)
        restore_scheduler(self.sched1, meta.sched1, steps1, str(path), DanceError)
        for k, s in self.scheds2.items():
            restore_scheduler(s, meta.sched2[k], steps2, str(path), DanceError)
        _load_net(self.net, tensors, meta, path)
        rngs = {"cpu": torch.get_rng_state(), **{name: gen.get_state() for name, gen in self._generators()}}
        for name, now in rngs.items():
            saved = tensors.get(f"rng.{name}")
            if saved is None or saved.dtype != now.dtype or saved.shape != now.shape:
                raise DanceError(f"{path}: checkpoint lacks a valid random-generator state {name!r}")
        torch.set_rng_state(tensors["rng.cpu"])
        for name, gen in self._generators():
            gen.set_state(tensors[f"rng.{name}"])
        self.log = DanceLog(meta.stage, meta.step, list(meta.history), meta.seconds)

    def _generators(self) -> list[tuple[str, torch.Generator]]:
        return [("budget", self.budget_gen), ("gate", self.gate_gen)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


def read_train_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], DanceCheckpoint]:
    """Tensors and validated metadata of a ``dance-train`` checkpoint (its configuration and
    position checked too), with a ``DanceError`` for anything else."""
    tensors, meta = load_checkpoint_as(path, DanceCheckpoint, "DANCE training", DanceError)
    try:
        meta.config.validate()
    except DanceError as e:
        raise DanceError(f"{path}: checkpoint configuration is invalid: {e.message}") from None
    _positions(meta, path)
    return tensors, meta


def _positions(meta: DanceCheckpoint, path: str | Path) -> tuple[int, int]:
    try:
        return meta.positions()
    except ValueError as e:
        raise DanceError(f"{path}: impossible checkpoint position: {e}") from None


def network_from_checkpoint(path: str | Path) -> tuple[GatedNetwork, DanceConfig, dict[str, Any]]:
    """Rebuild the trained ``GatedNetwork`` (graph, weights, budgets) from a training checkpoint;
    returns it, the training configuration and the checkpoint's metadata as a dict."""
    from nasir.ir.verify import verify

    tensors, meta = read_train_checkpoint(path)
    try:
        graph = Graph.from_json(meta.graph, f"{path} (graph)")
        verify(graph)
        options = meta.net.model_dump()
        net = GatedNetwork(graph, **{**options, "lambdas": tuple(options["lambdas"])})
    except NasirError as e:
        raise DanceError(f"{path}: checkpoint graph is invalid: {e.message}", e.loc, e.hint) from None
    _load_net(net, tensors, meta, path)
    return net, meta.config, meta.model_dump()


def _load_net(net: GatedNetwork, tensors: dict[str, torch.Tensor], meta: DanceCheckpoint, path: str | Path) -> None:
    """Weights, then budgets and temperatures (plain attributes of the gates, kept in the metadata)."""
    if set(meta.budgets) != set(net.groups) or not set(meta.taus) <= set(net.groups):
        raise DanceError(f"{path}: checkpoint budgets name other gate groups than its graph's")
    for g, keep in meta.budgets.items():
        if not 1 <= keep <= net.groups[g].channels:
            raise DanceError(f"{path}: gate group {g!r} keeps {keep} of its {net.groups[g].channels} channels")
    if any(not tau > 0 for tau in meta.taus.values()):
        raise DanceError(f"{path}: gate temperatures must be > 0")
    try:
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    except RuntimeError as e:
        raise DanceError(f"{path}: checkpoint weights do not fit its graph ({str(e).splitlines()[0]})") from None
    for g, keep in meta.budgets.items():
        net.gate(g).keep = keep
    for g, tau in meta.taus.items():
        net.gate(g).tau = tau


def unfinished(meta: dict[str, Any]) -> str | None:
    """Where an unfinished training stopped (``network_from_checkpoint``'s metadata), e.g. 'stage 2
    stopped at step 40 of 200'; None when both stages finished."""
    if meta["stage"] == "done":
        return None
    total = meta["config"]["stage1_steps" if meta["stage"] == "stage1" else "stage2_steps"]
    return f"stage {meta['stage'][-1]} stopped at step {meta['step']} of {total}"


def finetune(module: nn.Module, data: Data, steps: int, config: DanceConfig, device: str | torch.device = "cpu",
             progress: bool = True) -> nn.Module:
    """Cross-entropy fine-tuning of an extracted network (AdamW + OneCycle)."""
    device = torch.device(device)
    module = module.to(device)
    if steps <= 0:
        return module
    data = ImageSet.of(data)
    opt = torch.optim.AdamW(module.parameters(), lr=config.lr_finetune, weight_decay=config.weight_decay)
    sched = _one_cycle(opt, config.lr_finetune, steps)
    gen = torch.Generator().manual_seed(config.seed + 3)
    batches = index_batches(len(data), config.batch_size, config.seed * 1000 + 3)
    module.train()
    for _ in tqdm(range(steps), desc="dance stage3", disable=not progress, leave=False):
        x, y = data.batch(next(batches), augmentation_for(config.augment, config.cutout), gen)
        opt.zero_grad(set_to_none=True)
        with _autocast(device, config.amp):
            out = module(x.to(device))
        loss = F.cross_entropy(out.float(), y.to(device))
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
        opt.step()
        sched.step()
    module.eval()
    return module
