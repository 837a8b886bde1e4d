"""Training a fixed network from scratch with a recipe's settings (``nasir train``).

``Trainer(model, config)`` trains any ``nn.Module`` that maps images to logits: SGD with momentum
(Nesterov where the recipe says), weight decay, cosine annealing from ``lr`` to ``lr_min`` stepped
per epoch (DARTS) or per step (NB201), gradient-norm clipping, label smoothing. Networks in the
evaluation form of a space add two things (``nasir.runtime``): ``DropPath`` modules, whose
probability rises linearly over the run (epoch ``e`` of ``E``: ``drop_path * e / E``, as DARTS'
``train.py`` sets it at the start of every epoch), and an auxiliary head, whose ``AuxOutput`` in
training mode adds ``auxiliary_weight`` times its cross entropy to the loss.

Length: ``epochs`` passes over the training set (``len(train) // batch_size`` steps each, the
last partial batch dropped), or, with ``epochs=0``, ``steps`` steps (smoke runs). After every
epoch (and at the end of a run that stops inside one) a record holds the epoch's mean training
loss and accuracy, the loss and accuracy on the test set (eval mode; a partial epoch uses as many
test images as it trained on), the learning rate, the drop-path probability and the time; ``log``
writes the records as JSON lines and TensorBoard scalars (``nasir.search.epoch_log``).

Precision and layout: ``amp="bf16"`` runs forward and loss under ``torch.autocast`` in bfloat16
(CUDA or CPU); ``amp="fp16"`` in float16 with a ``GradScaler`` (CUDA only: a CPU run is refused);
``channels_last`` keeps weights and batches in NHWC. ``compile`` runs the forward (and the
backward AOTAutograd derives from it) under ``torch.compile``. The drop-path probability is a
tensor (``runtime.DropPath``), so its rise at every epoch compiles nothing again; drop path
switching on (after the first epoch) compiles once more.

Resume: ``checkpoint`` saves the weights, the optimizer (and gradient scaler) state, the step and
the records every ``save_every`` steps or ``save_minutes`` minutes, whichever comes first, after
every epoch and at the end; ``resume`` continues from it bit for bit: the data order, each batch's
augmentation and each step's random draws (drop path) are functions of the seed and the step, and
the learning rate and drop-path probability functions of the step. A checkpoint is checked before
anything changes: its metadata as data (``TrainCheckpoint``), its network and architecture against
this run's, its configuration (only the run length, the save intervals, ``compile`` and
``channels_last`` may differ) and its step against this run's length.

Many processes (``torchrun --nproc_per_node N nasir train ...``, ``nasir.distributed``): each
process trains on its rows of every global batch of ``batch_size`` images through the network in
DistributedDataParallel, which averages the gradients, so a step equals a single-process step on
the whole batch (with BatchNorm statistics per process). Drop path draws the mask of the whole
batch in every process and keeps its rows (``runtime.DropPath.rows``); the auxiliary head runs
only where its loss counts (``runtime.set_auxiliary_head``), so every parameter gets a gradient.
Losses, accuracies and evaluations are means over all processes; process 0 alone shows progress
and writes the log and the checkpoint, which any number of processes resumes. The epoch loop is
``nasir.epochs``, shared with ``nasir search``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from nasir.checkpoint import CheckpointMeta, flatten_state, load_checkpoint_as, restore_optimizer, same_json_kind, save_checkpoint
from nasir.data.images import ImageSet, augmentation_for
from nasir.data.loader import stream
from nasir.diagnostics import NasirError
from nasir.distributed import Processes, wrap
from nasir.epochs import EpochRun
from nasir.runtime import AuxOutput, set_auxiliary_head, set_drop_path, share_drop_path
from nasir.save_schedule import CHECKPOINT_MINUTES
from nasir.search.epoch_log import Record
from nasir.sgd import SGDSettings
from nasir.train.recipes import RECIPES

AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainConfig(SGDSettings):
    """A training run: the recipe's settings (``for_recipe``; the SGD ones in ``SGDSettings``), the
    run's length, data and machinery."""

    recipe: str = "nb201"
    steps: int = 20
    #: > 0: the run is this many epochs and ``steps`` is not used
    epochs: int = 0
    batch_size: int = 96
    #: "epoch": cosine annealing stepped per epoch; "step": per step
    schedule: str = "epoch"
    #: final drop-path probability (rising linearly from 0 over the epochs)
    drop_path: float = 0.0
    auxiliary_weight: float = 0.0
    #: pad-4 random crop and horizontal flip of training batches; cutout square side (0: none)
    augment: bool = False
    cutout: int = 0
    seed: int = 0
    #: the ``--data`` source (recorded, checked on resume)
    data: str = "tinyshapes"
    #: autocast: "" (float32), "bf16" or "fp16"
    amp: str = ""
    channels_last: bool = False
    #: ``torch.compile`` backend of the forward ("": eager)
    compile: str = ""
    save_every: int = 100
    save_minutes: float = CHECKPOINT_MINUTES

    @classmethod
    def for_recipe(cls, recipe: str, **options: Any) -> TrainConfig:
        """``recipe``'s settings (``nasir.train.recipes``), with ``options`` on top; ``steps`` without
        ``epochs`` makes a run of that many steps instead of the recipe's epochs."""
        if recipe not in RECIPES:
            raise NasirError(f"unknown training recipe {recipe!r}", hint=f"choose one of {', '.join(RECIPES)}")
        known = {f.name for f in fields(cls)}
        settings = {k: v for k, v in RECIPES[recipe].settings().items() if k in known}
        if "steps" in options and "epochs" not in options:
            settings["epochs"] = 0
        return cls(recipe=recipe, **{**settings, **options})


class TrainCheckpoint(CheckpointMeta):
    """Metadata of a ``nasir train`` checkpoint."""

    kind: Literal["fixed-train"] = "fixed-train"
    config: TrainConfig
    #: what was trained: the network (name and parameters) and its architecture, checked on resume
    network: str
    arch: dict[str, str]
    step: int = Field(ge=0)
    losses: list[float]
    accuracies: list[float]
    records: list[dict[str, Any]]
    seconds: float = Field(ge=0)
    optimizer: Any
    #: the fp16 gradient scaler's state (``GradScaler.state_dict``); None without fp16
    scaler: dict[str, float | int] | None = None


@dataclass
class TrainLog:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    #: training accuracy of every step's batch
    accuracies: list[float] = field(default_factory=list)
    #: one record per finished epoch (and one, ``partial``, for a run that ended inside an epoch)
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0
    #: the step the run continued from (0: it started afresh)
    resumed_from: int = 0
    #: steps per epoch of the run (known once it has seen the training set)
    steps_per_epoch: int = 1


def check_precision(amp: str, device: torch.device) -> None:
    """``amp`` must be a known autocast type that works on ``device`` (fp16 needs CUDA's GradScaler)."""
    if amp and amp not in AMP:
        raise NasirError(f"unknown autocast type {amp!r}", hint="bf16 or fp16")
    if amp == "fp16" and device.type != "cuda":
        raise NasirError(f"--amp fp16 needs a CUDA device (its loss scaling is CUDA's), not {device.type}",
                         hint="use --amp bf16 on this device, or --device cuda")


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a network's output: the tensor itself, or ``AuxOutput.logits``."""
    return output.logits if isinstance(output, AuxOutput) else output


class Trainer(EpochRun):
    """Trains one fixed network (see the module docstring)."""

    not_compared = (*EpochRun.not_compared, "channels_last")

    def __init__(self, model: torch.nn.Module, config: TrainConfig, device: str | torch.device = "cpu",
                 workers: int = 0, network: str = "", arch: dict[str, str] | None = None,
                 processes: Processes | None = None):
        """``processes``: this process's place in a run of many (``nasir.distributed``; its device is
        used); None: a single process on ``device``."""
        self.processes = processes or Processes(torch.device(device))
        self.device = self.processes.device
        check_precision(config.amp, self.device)
        if config.schedule not in ("epoch", "step"):
            raise NasirError(f"unknown learning-rate schedule {config.schedule!r}", hint="epoch or step")
        config.check_momentum()
        if not 0 <= config.drop_path < 1:
            raise NasirError(f"drop path probability {config.drop_path:g} must lie in [0, 1)")
        self.processes.check_batch(config.batch_size)
        self.model = model.to(self.device, memory_format=torch.channels_last if config.channels_last
                              else torch.preserve_format)
        self.config = config
        self.workers = workers  # DataLoader processes; the batches do not depend on it
        self.network, self.arch = network, dict(arch or {})
        self.optimizer = config.optimizer(model.parameters())
        self.scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
        self.log = TrainLog()
        self.total_steps = config.steps
        self.steps_per_epoch = max(config.steps, 1)
        set_auxiliary_head(model, config.auxiliary_weight > 0)
        share_drop_path(model, self.processes.rank, self.processes.world)
        #: what a step calls: the module (in DistributedDataParallel with many processes), or its
        #: compiled form (same parameters)
        shared = wrap(model, self.processes)
        self.forward = torch.compile(shared, backend=config.compile) if config.compile else shared
        #: the drop-path probability the network has now (None: not set yet)
        self.drop_prob: float | None = None

    # -- schedules ------------------------------------------------------------------------------
    def learning_rate(self) -> float:
        """The learning rate of the next step (see the module docstring)."""
        cfg = self.config
        if cfg.schedule == "step":
            return cfg.cosine(self.log.step, self.total_steps)
        return cfg.cosine(self.epoch(), self.epochs)

    def drop_path_probability(self) -> float:
        """The drop-path probability of the next step's epoch: ``drop_path * epoch / epochs``."""
        return self.config.drop_path * self.epoch() / self.epochs

    def _apply_schedules(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        prob = self.drop_path_probability()
        if prob != self.drop_prob:
            set_drop_path(self.model, prob)
            self.drop_prob = prob

    # -- one step -------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.config.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP[self.config.amp])

    def _inputs(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super()._inputs(batch)
        if self.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def loss(self, output: Any, y: torch.Tensor) -> torch.Tensor:
        """Cross entropy of the logits, plus ``auxiliary_weight`` times the auxiliary head's."""
        cfg = self.config
        loss = F.cross_entropy(logits_of(output), y, label_smoothing=cfg.label_smoothing)
        if isinstance(output, AuxOutput) and cfg.auxiliary_weight > 0:
            loss = loss + cfg.auxiliary_weight * F.cross_entropy(output.aux_logits, y,
                                                                 label_smoothing=cfg.label_smoothing)
        return loss

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
        """One optimizer step on ``batch`` through ``self.forward``: (loss, training accuracy)."""
        cfg = self.config
        self.model.train()
        x, y = self._inputs(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            output = self.forward(x)
            loss = self.loss(output, y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        cfg.clip(self.model.parameters())
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        correct = (logits_of(output).detach().argmax(1) == y).float().mean()
        loss_value, accuracy = self.processes.mean([float(loss.detach()), float(correct)])
        return loss_value, accuracy

    # -- epochs -------------------------------------------------------------------------------
    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return logits_of(self.model(x)).float()

    def _record(self, test: ImageSet, seconds: float) -> Record:
        """The record of the epoch the last step ended (see the module docstring)."""
        record = self._epoch_record(test, seconds, self.optimizer.param_groups[0]["lr"], "test")
        return {**record, "drop_path": self.drop_prob or 0.0}

    def prepare(self, train: ImageSet, checkpoint: str | Path | None = None, resume: bool = False) -> None:
        """Fix the run's length from the training set and continue ``checkpoint`` if ``resume``."""
        self._start(len(train), checkpoint, resume)
        self.log.steps_per_epoch = self.steps_per_epoch

    def batches(self, train: ImageSet) -> Any:
        """This process's rows of the training batches from the current step on (augmented as configured)."""
        cfg = self.config
        return stream(train, cfg.batch_size, cfg.seed, augmentation_for(cfg.augment, cfg.cutout), skip=self.log.step,
                      workers=self.workers, pin_memory=self.device.type == "cuda",
                      part=self.processes.rows(cfg.batch_size))

    def run(self, train: ImageSet | tuple[torch.Tensor, torch.Tensor], test: ImageSet | tuple[torch.Tensor, torch.Tensor],
            checkpoint: str | Path | None = None, resume: bool = False, progress: bool = True,
            log: str | Path | None = None) -> TrainLog:
        """Train until the run's length; evaluate on ``test`` after every epoch."""
        train, test = ImageSet.of(train), ImageSet.of(test)
        self.prepare(train, checkpoint, resume)
        batches = self.batches(train)

        def advance() -> float:
            self._apply_schedules()
            loss, accuracy = self.train_step(next(batches))
            self.log.step += 1
            self.log.losses.append(loss)
            self.log.accuracies.append(accuracy)
            return loss

        self._run_epochs(advance, lambda seconds: self._record(test, seconds),
                         desc=f"train ({self.config.recipe} recipe)", checkpoint=checkpoint, log=log,
                         log_prefix="train", progress=progress)
        return self.log

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        meta: dict[str, Any] = {"kind": "fixed-train", "config": asdict(self.config), "network": self.network,
                                "arch": self.arch, "step": self.log.step, "losses": self.log.losses,
                                "accuracies": self.log.accuracies, "records": self.log.records,
                                "seconds": self.log.seconds,
                                "optimizer": flatten_state("optimizer", self.optimizer.state_dict(), tensors),
                                "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        save_checkpoint(path, tensors, meta)

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint of this run; everything is checked before anything is changed."""
        tensors, meta = load_checkpoint_as(path, TrainCheckpoint, "nasir train")
        if (meta.network, meta.arch) != (self.network, self.arch):
            what = "network" if meta.network != self.network else "architecture"
            raise NasirError(f"{path}: checkpoint trained another {what} ({meta.network}, "
                             f"{len(meta.arch)} picks); this run trains {self.network}",
                             hint="resume with the same space, -D values and --arch, or start afresh")
        self._check_checkpoint(path, meta)
        self._check_scaler(path, meta.scaler)
        self._restore(path, tensors, meta, "network")
        restore_optimizer(self.optimizer, meta.optimizer, tensors, str(path))
        if self.scaler is not None:
            self.scaler.load_state_dict(meta.scaler)

    def _check_scaler(self, path: str | Path, state: dict[str, float | int] | None) -> None:
        """A stored gradient-scaler state must have the entries of this run's, a finite positive scale."""
        want = self.scaler.state_dict() if self.scaler is not None else None
        if want is None or state is None:
            if (want is None) != (state is None):
                raise NasirError(f"{path}: checkpoint {'lacks' if state is None else 'has'} a gradient-scaler state")
            return
        scale = state.get("scale")
        if not same_json_kind(state, want) or not (isinstance(scale, float) and math.isfinite(scale) and scale > 0):
            raise NasirError(f"{path}: the gradient-scaler state does not fit (entries {sorted(state)})")
