"""DARTS-family search over any lowered supernet: first-order DARTS, GDAS, SPOS, beta-DARTS.

* ``darts``: supernet mode; weights step on a training batch, architecture step on a validation
  batch (first-order approximation, Adam on alphas as in the DARTS reference).
* ``gdas``: sampled mode with a hard Gumbel sampler whose temperature anneals linearly; gradients
  reach alphas through the straight-through estimator.
* ``spos``: sampled mode with uniform paths, weights only (no architecture step).
* ``beta`` (> 0): beta-DARTS regularization, ``beta * mean(logsumexp(alpha))`` added to the
  architecture loss, which keeps alphas from drifting to one-hot too early.

Data: ``run`` takes the weight and architecture halves of the training set as ``ImageSet``s (or
pairs of normalized tensors); batches come from ``nasir.data.loader`` streams, augmented as the
configuration says (``augment``: pad-4 crop and flip; ``cutout``), each batch with its own seeded
generator, so a resumed run sees the same augmented batches and ``workers`` changes nothing.

Progress is shown with tqdm; ``checkpoint`` saves weights, alphas, optimizer states and the step
every ``save_every`` steps or ``save_minutes`` minutes, whichever comes first, and at the end
(safetensors + JSON), and ``resume`` continues from it exactly: the data order, the per-step
sampling noise and the Gumbel temperature are functions of the step. A checkpoint is checked before
anything runs: its metadata as data (``SearchCheckpoint``), its configuration against this run's
(only ``steps`` and the save intervals may differ) and its step against this run's length.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from tqdm.auto import tqdm

from nasir.checkpoint import CheckpointMeta, flatten_state, load_checkpoint_as, restore_optimizer, save_checkpoint
from nasir.data.images import ImageSet, augmentation_for
from nasir.data.loader import stream
from nasir.diagnostics import NasirError
from nasir.lowering import NasirModule
from nasir.runtime import GumbelSampler
from nasir.save_schedule import CHECKPOINT_MINUTES, SaveSchedule

METHODS = ("darts", "gdas", "spos")


@dataclass
class SearchConfig:
    method: str = "darts"
    steps: int = 20
    batch_size: int = 32
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    beta: float = 0.0
    tau_max: float = 10.0
    tau_min: float = 0.1
    seed: int = 0
    save_every: int = 10
    save_minutes: float = CHECKPOINT_MINUTES
    #: the ``--data`` source and the DARTS split of its training set (recorded, checked on resume)
    data: str = "tinyshapes"
    train_portion: float = 0.5
    #: pad-4 random crop and horizontal flip of training batches; cutout square side (0: none)
    augment: bool = False
    cutout: int = 0

#: Configuration entries a resumed run may change.
_NOT_COMPARED = ("steps", "save_every", "save_minutes")


class SearchCheckpoint(CheckpointMeta):
    """Metadata of a search checkpoint (``kind`` is absent in checkpoints of older versions)."""

    kind: Literal["supernet-search"] = "supernet-search"
    config: SearchConfig
    step: int = Field(ge=0)
    losses: list[float]
    w_opt: Any
    a_opt: Any = None


@dataclass
class SearchLog:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    #: the step the run continued from (0: it started afresh)
    resumed_from: int = 0


class SupernetSearch:
    """Alternating weight/architecture optimisation of a lowered supernet."""

    def __init__(self, model: NasirModule, config: SearchConfig, device: str | torch.device = "cpu", workers: int = 0):
        if config.method not in METHODS:
            raise NasirError(f"unknown search method {config.method!r}", hint=f"choose one of {', '.join(METHODS)}")
        want = "supernet" if config.method == "darts" else "sampled"
        if getattr(model, "ir_mode", None) != want:
            raise NasirError(f"method {config.method!r} needs a module lowered in {want!r} mode")
        self.model = model.to(device)
        self.config = config
        self.device = torch.device(device)
        self.workers = workers  # DataLoader processes; the batches do not depend on it
        self.w_opt = torch.optim.SGD(model.weight_parameters(), lr=config.lr, momentum=config.momentum,
                                     weight_decay=config.weight_decay)
        self.a_opt = (torch.optim.Adam(model.arch_parameters(), lr=config.arch_lr, betas=(0.5, 0.999),
                                       weight_decay=config.arch_weight_decay)
                      if config.method != "spos" and model.arch_parameters() else None)
        self.log = SearchLog()
        if config.method == "gdas":
            model.set_sampler(GumbelSampler(config.tau_max))

    # -- one step -------------------------------------------------------------------------------
    def step(self, train_batch, val_batch) -> float:
        cfg = self.config
        self.model.train()
        if isinstance(self.model.sampler if hasattr(self.model, "sampler") else None, GumbelSampler):
            frac = self.log.step / max(cfg.steps - 1, 1)
            self.model.sampler.tau = cfg.tau_max - (cfg.tau_max - cfg.tau_min) * frac
        if self.a_opt is not None:
            xv, yv = (t.to(self.device, non_blocking=True) for t in val_batch)
            self.a_opt.zero_grad(set_to_none=True)
            loss_a = F.cross_entropy(self.model(xv), yv)
            if cfg.beta > 0:
                loss_a = loss_a + cfg.beta * torch.stack(
                    [torch.logsumexp(a, -1) for a in self.model.arch_parameters()]).mean()
            loss_a.backward()
            self.a_opt.step()
        x, y = (t.to(self.device, non_blocking=True) for t in train_batch)
        self.w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), cfg.grad_clip)
        self.w_opt.step()
        if self.a_opt is not None:
            for p in self.model.arch_parameters():  # weight grads must not leak into the next arch step
                p.grad = None
        self.log.step += 1
        self.log.losses.append(float(loss.detach()))
        return self.log.losses[-1]

    # -- the loop -------------------------------------------------------------------------------
    def run(self, train: ImageSet | tuple[torch.Tensor, torch.Tensor], val: ImageSet | tuple[torch.Tensor, torch.Tensor],
            checkpoint: str | Path | None = None, resume: bool = False, progress: bool = True) -> SearchLog:
        cfg = self.config
        if resume and checkpoint is not None and Path(checkpoint).exists():
            self.load(checkpoint)
            self.log.resumed_from = self.log.step
        augmentation = augmentation_for(cfg.augment, cfg.cutout)
        options = dict(augmentation=augmentation, skip=self.log.step, workers=self.workers,
                       pin_memory=self.device.type == "cuda")
        train_it = stream(ImageSet.of(train), cfg.batch_size, cfg.seed, **options)
        val_it = stream(ImageSet.of(val), cfg.batch_size, cfg.seed + 1, **options)
        torch.manual_seed(cfg.seed)
        start = time.perf_counter()
        schedule = SaveSchedule(cfg.save_every, cfg.save_minutes, last_step=self.log.step)
        with tqdm(total=cfg.steps, initial=self.log.step, desc=f"{cfg.method} search", unit="step",
                  disable=not progress, dynamic_ncols=True) as bar:
            while self.log.step < cfg.steps:
                torch.manual_seed(cfg.seed * 100003 + self.log.step)  # per-step sampling noise
                loss = self.step(next(train_it), next(val_it))
                bar.set_postfix(loss=f"{loss:.3f}")
                bar.update(1)
                if checkpoint is not None and (schedule.due(self.log.step) or self.log.step == cfg.steps):
                    self.save(checkpoint)
                    schedule.saved(self.log.step)
        self.log.seconds += time.perf_counter() - start
        return self.log

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        meta: dict[str, Any] = {"kind": "supernet-search", "config": asdict(self.config), "step": self.log.step,
                                "losses": self.log.losses,
                                "w_opt": flatten_state("w_opt", self.w_opt.state_dict(), tensors)}
        if self.a_opt is not None:
            meta["a_opt"] = flatten_state("a_opt", self.a_opt.state_dict(), tensors)
        save_checkpoint(path, tensors, meta)

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint of this run; everything is checked before anything is changed."""
        tensors, meta = load_checkpoint_as(path, SearchCheckpoint, "supernet search")
        ours, theirs = asdict(self.config), asdict(meta.config)
        differ = [k for k in ours if k not in _NOT_COMPARED and ours[k] != theirs[k]]
        if differ:
            raise NasirError(f"{path}: checkpoint was made with {differ[0]}={theirs[differ[0]]!r}, "
                             f"this run has {ours[differ[0]]!r}", hint="resume with the same options, or start afresh")
        if meta.step > self.config.steps or len(meta.losses) != meta.step:
            raise NasirError(f"{path}: checkpoint is at step {meta.step} with {len(meta.losses)} losses; "
                             f"this run has {self.config.steps} steps", hint="raise --steps, or start afresh")
        if (meta.a_opt is None) != (self.a_opt is None):
            raise NasirError(f"{path}: checkpoint {'lacks' if meta.a_opt is None else 'has'} an architecture optimizer")
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(state)
        except RuntimeError as e:
            raise NasirError(f"{path}: checkpoint does not match this supernet ({str(e).splitlines()[0]})") from None
        restore_optimizer(self.w_opt, meta.w_opt, tensors, str(path))
        if self.a_opt is not None:
            restore_optimizer(self.a_opt, meta.a_opt, tensors, str(path))
        self.log.step = meta.step
        self.log.losses = list(meta.losses)

