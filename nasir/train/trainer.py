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
backward AOTAutograd derives from it) under ``torch.compile``. A compiled graph holds the drop-path
probability as a constant, so a run whose probability changes at an epoch boundary clears
torch.compile's caches there and compiles once more (instead of piling up recompilations until
torch falls back to eager).

Resume: ``checkpoint`` saves the weights, the optimizer (and gradient scaler) state, the step and
the records every ``save_every`` steps or ``save_minutes`` minutes, whichever comes first, after
every epoch and at the end; ``resume`` continues from it bit for bit: the data order, each batch's
augmentation and each step's random draws (drop path) are functions of the seed and the step, and
the learning rate and drop-path probability functions of the step. A checkpoint is checked before
anything changes: its metadata as data (``TrainCheckpoint``), its network and architecture against
this run's, its configuration (only the run length, the save intervals, ``compile`` and
``channels_last`` may differ) and its step against this run's length.

Distributed training reuses the pieces: ``train_step`` is one optimizer step on one batch through
``self.forward`` (which may be a wrapper of ``self.model``), and checkpointing, logging and the
progress bar are methods of their own.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from tqdm.auto import tqdm

from nasir.checkpoint import CheckpointMeta, flatten_state, load_checkpoint_as, restore_optimizer, same_json_kind, save_checkpoint
from nasir.data.images import ImageSet, augmentation_for
from nasir.data.loader import index_batches, stream
from nasir.diagnostics import NasirError
from nasir.runtime import AuxOutput, set_drop_path
from nasir.save_schedule import CHECKPOINT_MINUTES, SaveSchedule
from nasir.search.epoch_log import EpochLog, Record
from nasir.train.recipes import RECIPES

AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainConfig:
    """A training run: the recipe's settings (``for_recipe``), the run's length, data and machinery."""

    recipe: str = "nb201"
    steps: int = 20
    #: > 0: the run is this many epochs and ``steps`` is not used
    epochs: int = 0
    batch_size: int = 96
    lr: float = 0.025
    lr_min: float = 0.0
    #: "epoch": cosine annealing stepped per epoch; "step": per step
    schedule: str = "epoch"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
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


#: Configuration entries a resumed run may change.
_NOT_COMPARED = ("steps", "epochs", "save_every", "save_minutes", "compile", "channels_last")


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


class Trainer:
    """Trains one fixed network (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, device: str | torch.device = "cpu",
                 workers: int = 0, network: str = "", arch: dict[str, str] | None = None):
        self.device = torch.device(device)
        check_precision(config.amp, self.device)
        if config.schedule not in ("epoch", "step"):
            raise NasirError(f"unknown learning-rate schedule {config.schedule!r}", hint="epoch or step")
        if config.nesterov and config.momentum <= 0:
            raise NasirError(f"Nesterov momentum needs a momentum > 0, not {config.momentum:g}")
        if not 0 <= config.drop_path < 1:
            raise NasirError(f"drop path probability {config.drop_path:g} must lie in [0, 1)")
        self.model = model.to(self.device, memory_format=torch.channels_last if config.channels_last
                              else torch.preserve_format)
        self.config = config
        self.workers = workers  # DataLoader processes; the batches do not depend on it
        self.network, self.arch = network, dict(arch or {})
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, nesterov=config.nesterov)
        self.scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
        self.log = TrainLog()
        self.total_steps = config.steps
        self.steps_per_epoch = max(config.steps, 1)
        #: what a step calls: the module, or its compiled form (same parameters)
        self.forward = self._compiled() if config.compile else model
        #: the drop-path probability the network has now (None: not set yet)
        self.drop_prob: float | None = None

    def _compiled(self) -> Any:
        return torch.compile(self.model, backend=self.config.compile)

    # -- schedules ------------------------------------------------------------------------------
    @property
    def epochs(self) -> int:
        """Epochs of the run (the last one partial when a step count ends inside it)."""
        return max(math.ceil(self.total_steps / self.steps_per_epoch), 1)

    def epoch(self) -> int:
        """The epoch the next step belongs to (from 0)."""
        return self.log.step // self.steps_per_epoch

    def learning_rate(self) -> float:
        """The learning rate of the next step (see the module docstring)."""
        cfg = self.config
        if cfg.schedule == "step":
            frac = (1 - math.cos(math.pi * self.log.step / max(self.total_steps, 1))) / 2
        else:
            frac = (1 - math.cos(math.pi * self.epoch() / self.epochs)) / 2
        return cfg.lr - (cfg.lr - cfg.lr_min) * frac

    def drop_path_probability(self) -> float:
        """The drop-path probability of the next step's epoch: ``drop_path * epoch / epochs``."""
        return self.config.drop_path * self.epoch() / self.epochs

    def _apply_schedules(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        prob = self.drop_path_probability()
        if prob != self.drop_prob:
            if set_drop_path(self.model, prob) and self.config.compile and self.drop_prob is not None:
                torch.compiler.reset()  # the compiled graph holds the old probability (module docstring)
                self.forward = self._compiled()
            self.drop_prob = prob

    # -- one step -------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.config.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP[self.config.amp])

    def _inputs(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
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
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        correct = (logits_of(output).detach().argmax(1) == y).float().mean()
        return float(loss.detach()), float(correct)

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: ImageSet, limit: int | None = None) -> tuple[float, float]:
        """Mean loss and accuracy on the first ``limit`` (all) images of ``data`` (eval mode, no
        augmentation, the run's autocast)."""
        was_training = self.model.training
        self.model.eval()
        total_loss, correct = 0.0, 0
        n = len(data) if limit is None else min(limit, len(data))
        try:
            for start in range(0, n, self.config.batch_size):
                x, y = self._inputs(data.batch(torch.arange(start, min(start + self.config.batch_size, n))))
                with self._autocast():
                    logits = logits_of(self.model(x)).float()
                total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        finally:
            self.model.train(was_training)
        return total_loss / max(n, 1), correct / max(n, 1)

    def _record(self, test: ImageSet, seconds: float) -> Record:
        """The record of the epoch the last step ended (see the module docstring)."""
        step = self.log.step
        epoch = (step - 1) // self.steps_per_epoch
        first = epoch * self.steps_per_epoch
        partial = step % self.steps_per_epoch != 0
        images = min(len(test), (step - first) * self.config.batch_size) if partial else len(test)
        test_loss, test_acc = self.evaluate(test, images)
        record: Record = {"epoch": epoch + 1, "step": step, "lr": self.optimizer.param_groups[0]["lr"],
                          "drop_path": self.drop_prob or 0.0,
                          "train_loss": sum(self.log.losses[first:step]) / (step - first),
                          "train_acc": sum(self.log.accuracies[first:step]) / (step - first),
                          "test_loss": test_loss, "test_acc": test_acc, "test_images": images,
                          "time": round(seconds, 3)}
        if partial:
            record["partial"] = True
        return record

    # -- the loop -------------------------------------------------------------------------------
    def prepare(self, train: ImageSet, checkpoint: str | Path | None = None, resume: bool = False) -> None:
        """Fix the run's length from the training set and continue ``checkpoint`` if ``resume``."""
        cfg = self.config
        index_batches(len(train), cfg.batch_size, cfg.seed)  # is there one batch at all? (before anything loads)
        self.steps_per_epoch = self.log.steps_per_epoch = len(train) // cfg.batch_size
        self.total_steps = cfg.epochs * self.steps_per_epoch if cfg.epochs else cfg.steps
        if resume and checkpoint is not None and Path(checkpoint).exists():
            self.load(checkpoint)
            self.log.resumed_from = self.log.step
            self.log.records = [r for r in self.log.records if not r.get("partial")]

    def batches(self, train: ImageSet) -> Any:
        """The training batches from the current step on (augmented as configured)."""
        cfg = self.config
        return stream(train, cfg.batch_size, cfg.seed, augmentation_for(cfg.augment, cfg.cutout), skip=self.log.step,
                      workers=self.workers, pin_memory=self.device.type == "cuda")

    def run(self, train: ImageSet | tuple[torch.Tensor, torch.Tensor], test: ImageSet | tuple[torch.Tensor, torch.Tensor],
            checkpoint: str | Path | None = None, resume: bool = False, progress: bool = True,
            log: str | Path | None = None) -> TrainLog:
        """Train until the run's length; evaluate on ``test`` after every epoch."""
        cfg = self.config
        train, test = ImageSet.of(train), ImageSet.of(test)
        self.prepare(train, checkpoint, resume)
        batches = self.batches(train)
        epoch_log = self._open_log(log)
        start = time.perf_counter() - self.log.seconds
        schedule = SaveSchedule(cfg.save_every, cfg.save_minutes, last_step=self.log.step)
        try:
            with self._progress_bar(progress) as bar:
                while self.log.step < self.total_steps:
                    torch.manual_seed(cfg.seed * 100003 + self.log.step)  # the step's random draws (drop path)
                    self._apply_schedules()
                    loss, accuracy = self.train_step(next(batches))
                    self.log.step += 1
                    self.log.losses.append(loss)
                    self.log.accuracies.append(accuracy)
                    bar.set_postfix(loss=f"{loss:.3f}", epoch=(self.log.step - 1) // self.steps_per_epoch + 1)
                    bar.update(1)
                    ends_epoch = self.log.step % self.steps_per_epoch == 0 or self.log.step == self.total_steps
                    self.log.seconds = time.perf_counter() - start
                    if ends_epoch:
                        self.log.records.append(self._record(test, self.log.seconds))
                    if checkpoint is not None and (schedule.due(self.log.step) or ends_epoch):
                        self.save(checkpoint)
                        schedule.saved(self.log.step)
                    if ends_epoch and epoch_log is not None:
                        epoch_log.write(self.log.records, new=self.log.records[-1])
        finally:
            if epoch_log is not None:
                epoch_log.close()
        self.log.seconds = time.perf_counter() - start
        return self.log

    def _progress_bar(self, progress: bool) -> tqdm:
        return tqdm(total=self.total_steps, initial=self.log.step, desc=f"train ({self.config.recipe} recipe)",
                    unit="step", disable=not progress, dynamic_ncols=True)

    def _open_log(self, path: str | Path | None) -> EpochLog | None:
        """The epoch log, holding the records so far (those of a checkpoint resumed from)."""
        if path is None:
            return None
        epoch_log = EpochLog(path, prefix="train")
        epoch_log.write(self.log.records)
        return epoch_log

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
        ours, theirs = asdict(self.config), asdict(meta.config)
        differ = [k for k in ours if k not in _NOT_COMPARED and ours[k] != theirs[k]]
        if differ:
            raise NasirError(f"{path}: checkpoint was made with {differ[0]}={theirs[differ[0]]!r}, "
                             f"this run has {ours[differ[0]]!r}", hint="resume with the same options, or start afresh")
        if meta.step > self.total_steps or not len(meta.losses) == len(meta.accuracies) == meta.step:
            raise NasirError(f"{path}: checkpoint is at step {meta.step} with {len(meta.losses)} losses; "
                             f"this run has {self.total_steps} steps", hint="raise --steps or --epochs, or start afresh")
        self._check_scaler(path, meta.scaler)
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(state)
        except RuntimeError as e:
            raise NasirError(f"{path}: checkpoint does not match this network ({str(e).splitlines()[0]})") from None
        restore_optimizer(self.optimizer, meta.optimizer, tensors, str(path))
        if self.scaler is not None:
            self.scaler.load_state_dict(meta.scaler)
        self.log.step = meta.step
        self.log.losses = list(meta.losses)
        self.log.accuracies = list(meta.accuracies)
        self.log.records = [dict(r) for r in meta.records]
        self.log.seconds = meta.seconds

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
