"""DARTS-family search over any lowered supernet: DARTS (first and second order), PC-DARTS, GDAS,
SPOS, beta-DARTS.

* ``darts``: supernet mode; weights step on a training batch, architecture step on a validation
  batch, Adam on alphas as in the DARTS reference. ``order=1`` is the first-order approximation;
  ``order=2`` the unrolled hypergradient of Eq. 7-8 (``nasir.search.unrolled``).
* ``pc-darts``: ``darts`` on a supernet made by the ``partial-channel`` pass (the command line adds
  it), with the PC-DARTS settings (architecture steps after a warm-up of 15 epochs).
* ``gdas``: sampled mode with a hard Gumbel sampler whose temperature anneals linearly; gradients
  reach alphas through the straight-through estimator.
* ``spos``: sampled mode with uniform paths, weights only (no architecture step).
* ``beta`` (> 0): beta-DARTS regularization, ``beta * mean(logsumexp(alpha))`` added to the
  architecture loss, which keeps alphas from drifting to one-hot too early.

``SearchConfig.for_method(method)`` has each method's published settings (``nasir.search.methods``).
The weights' learning rate follows the method's schedule: cosine annealing per epoch from ``lr`` to
``lr_min`` over the run (DARTS, PC-DARTS, GDAS), or linear per step to ``lr_min`` (SPOS).

Length: ``epochs`` passes over the weight half of the split (``len(train) // batch_size`` steps
each), or, with ``epochs=0``, ``steps`` steps (smoke runs). After every epoch (and at the end of a run
that stops inside one) the run records the epoch's mean training loss and accuracy, the loss and
accuracy on the architecture half (eval mode; a run that stops inside an epoch uses as many of its
images as it trained on in that epoch), the mean entropy of the architecture
distributions, the learning rate, the time and the derived architecture (``SearchLog.records``;
``log`` writes them as JSON lines, ``nasir.search.epoch_log``).

Data: ``run`` takes the weight and architecture halves of the training set as ``ImageSet``s (or
pairs of normalized tensors); batches come from ``nasir.data.loader`` streams, augmented as the
configuration says (``augment``: pad-4 crop and flip; ``cutout``), each batch with its own seeded
generator, so a resumed run sees the same augmented batches and ``workers`` changes nothing.

Progress is shown with tqdm; ``checkpoint`` saves weights, alphas, optimizer states, the step and
the epoch records every ``save_every`` steps or ``save_minutes`` minutes, whichever comes first,
after every epoch and at the end (safetensors + JSON), and ``resume`` continues from it exactly: the
data order, the per-step sampling noise, the learning rate and the Gumbel temperature are functions
of the step. A checkpoint is checked before anything runs: its metadata as data
(``SearchCheckpoint``), its configuration against this run's (only the run length and the save
intervals may differ) and its step against this run's length.

Many processes (``torchrun --nproc_per_node N nasir search ...``, ``nasir.distributed``): each
process trains on its rows of every global batch of ``batch_size`` images; the module is wrapped in
DistributedDataParallel, so weight and architecture gradients alike (alphas and PC-DARTS edge
weights are parameters of the module) are averaged over the processes in each of the two backward
passes of a DARTS step; the second-order step computes its gradients with ``torch.autograd.grad``
on the unwrapped module and averages each of them (``Processes.average``) before using it. Losses,
accuracies and evaluations are means over all processes; process 0 alone shows progress and writes
the log and the checkpoint. The epoch loop, the records' common entries and the evaluation are
``nasir.epochs``, shared with ``nasir train``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from nasir.checkpoint import CheckpointMeta, flatten_state, load_checkpoint_as, restore_optimizer, save_checkpoint
from nasir.data.images import ImageSet, augmentation_for
from nasir.data.loader import stream
from nasir.diagnostics import NasirError
from nasir.distributed import Processes, wrap
from nasir.epochs import EpochRun
from nasir.lowering import NasirModule
from nasir.runtime import AuxHead, DropPath, GumbelSampler
from nasir.save_schedule import CHECKPOINT_MINUTES
from nasir.search.epoch_log import Record
from nasir.search.methods import METHODS as DEFAULTS
from nasir.search.unrolled import unrolled_arch_gradients
from nasir.sgd import SGDSettings

METHODS = tuple(DEFAULTS)
#: ``SearchConfig``'s defaults are DARTS' published settings, taken from one place.
_DARTS = DEFAULTS["darts"]


@dataclass
class SearchConfig(SGDSettings):
    """A search: the method and its settings (the weights' SGD in ``SGDSettings``), the run's length,
    data and machinery."""

    method: str = "darts"
    #: DARTS: 1 (first-order approximation) or 2 (unrolled hypergradient, Eq. 7-8)
    order: int = 1
    steps: int = 20
    #: > 0: the run is this many epochs (passes over the weight half) and ``steps`` is not used
    epochs: int = 0
    batch_size: int = 32
    #: "cosine": per epoch from ``lr`` to ``lr_min``; "linear": per step from ``lr`` to ``lr_min``
    schedule: str = _DARTS.schedule
    arch_lr: float = _DARTS.arch_lr
    arch_weight_decay: float = _DARTS.arch_weight_decay
    #: epochs of weight training before the first architecture step (PC-DARTS: 15)
    warmup_epochs: int = _DARTS.warmup_epochs
    beta: float = 0.0
    tau_max: float = _DARTS.tau_max
    tau_min: float = _DARTS.tau_min
    seed: int = 0
    save_every: int = 10
    save_minutes: float = CHECKPOINT_MINUTES
    #: the ``--data`` source and the DARTS split of its training set (recorded, checked on resume)
    data: str = "tinyshapes"
    train_portion: float = 0.5
    #: pad-4 random crop and horizontal flip of training batches; cutout square side (0: none)
    augment: bool = False
    cutout: int = 0
    #: ``torch.compile`` backend for the training step's forward and backward ("": eager), e.g.
    #: "inductor"; on CUDA a supernet (no host syncs) also gets CUDA graphs ("reduce-overhead").
    compile: str = ""

    @classmethod
    def for_method(cls, method: str, **options: Any) -> SearchConfig:
        """``method``'s published settings (``nasir.search.methods``), with ``options`` on top."""
        if method not in DEFAULTS:
            raise NasirError(f"unknown search method {method!r}", hint=f"choose one of {', '.join(METHODS)}")
        known = {f.name for f in fields(cls)}
        return cls(method=method, **{**{k: v for k, v in DEFAULTS[method].settings().items() if k in known}, **options})



class SearchCheckpoint(CheckpointMeta):
    """Metadata of a search checkpoint (``kind`` is absent in checkpoints of older versions)."""

    kind: Literal["supernet-search"] = "supernet-search"
    config: SearchConfig
    step: int = Field(ge=0)
    losses: list[float]
    #: training accuracy of every step (None: not recorded, as by older versions)
    accuracies: list[float | None] = Field(default_factory=list)
    #: the epoch records so far (``nasir.search.epoch_log``)
    records: list[dict[str, Any]] = Field(default_factory=list)
    seconds: float = Field(default=0.0, ge=0)
    w_opt: Any
    a_opt: Any = None


@dataclass
class SearchLog:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    #: training accuracy of every step's batch (None where a checkpoint of an older version had none)
    accuracies: list[float | None] = field(default_factory=list)
    #: one record per finished epoch (and one, ``partial``, for a run that ended inside an epoch)
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0
    #: the step the run continued from (0: it started afresh)
    resumed_from: int = 0


class SupernetSearch(EpochRun):
    """Alternating weight/architecture optimisation of a lowered supernet."""

    accuracies_optional = True

    def __init__(self, model: NasirModule, config: SearchConfig, device: str | torch.device = "cpu", workers: int = 0,
                 processes: Processes | None = None):
        """``processes``: this process's place in a run of many (``nasir.distributed``; its device is
        used); None: a single process on ``device``."""
        if config.method not in METHODS:
            raise NasirError(f"unknown search method {config.method!r}", hint=f"choose one of {', '.join(METHODS)}")
        defaults = DEFAULTS[config.method]
        if getattr(model, "ir_mode", None) != defaults.mode:
            raise NasirError(f"method {config.method!r} needs a module lowered in {defaults.mode!r} mode")
        if config.order not in (1, 2) or (config.order == 2 and (defaults.mode != "supernet" or not defaults.arch_step)):
            raise NasirError(f"order {config.order}: DARTS is first (1) or second (2) order; "
                             f"second order is a DARTS method (darts, pc-darts), not {config.method}")
        if config.schedule not in ("cosine", "linear"):
            raise NasirError(f"unknown learning-rate schedule {config.schedule!r}", hint="cosine or linear")
        if any(isinstance(m, (AuxHead, DropPath)) for m in model.modules()):
            raise NasirError("this space is an evaluation network (it has an auxiliary head or drop path: "
                             "-D eval=true builds the evaluation network), and a search needs the search network",
                             hint="search without -D eval=true, then train the architecture it finds in the "
                                  "evaluation network: nasir train SPACE -D eval=true --arch ARCH")
        config.check_momentum(config.method)
        self.processes = processes or Processes(torch.device(device))
        self.device = self.processes.device
        self.processes.check_batch(config.batch_size)
        self.model = model.to(self.device)
        self.config = config
        self.workers = workers  # DataLoader processes; the batches do not depend on it
        self.w_opt = config.optimizer(model.weight_parameters())
        self.a_opt = (torch.optim.Adam(model.arch_parameters(), lr=config.arch_lr, betas=(0.5, 0.999),
                                       weight_decay=config.arch_weight_decay)
                      if defaults.arch_step and model.arch_parameters() else None)
        self.log = SearchLog()
        self.total_steps = config.steps
        self.steps_per_epoch = max(config.steps, 1)
        if config.method == "gdas":
            model.set_sampler(GumbelSampler(config.tau_max))
        #: what the steps call: the module (in DistributedDataParallel with many processes; a sampled
        #: path leaves the other candidates' parameters unused), or its compiled form (same parameters)
        shared = wrap(model, self.processes, find_unused_parameters=defaults.mode == "sampled")
        self.forward = shared if not config.compile else compile_step(model, config.compile, self.device, shared)

    # -- schedules ------------------------------------------------------------------------------
    def learning_rate(self) -> float:
        """The weights' learning rate of the next step (see the module docstring)."""
        cfg = self.config
        if cfg.schedule == "linear":
            return cfg.lr - (cfg.lr - cfg.lr_min) * self.log.step / max(self.total_steps, 1)
        return cfg.cosine(self.epoch(), self.epochs)

    def _apply_schedules(self) -> None:
        for group in self.w_opt.param_groups:
            group["lr"] = self.learning_rate()
        if isinstance(getattr(self.model, "sampler", None), GumbelSampler):
            cfg = self.config
            frac = self.log.step / max(self.total_steps - 1, 1)
            self.model.sampler.tau = cfg.tau_max - (cfg.tau_max - cfg.tau_min) * frac

    # -- one step -------------------------------------------------------------------------------
    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor], forward=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) on ``batch`` of the model as the steps call it, or of ``forward``."""
        x, y = batch
        logits = (forward or self.forward)(x)
        return F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing), logits

    def _arch_loss(self, batch: tuple[torch.Tensor, torch.Tensor], forward=None) -> torch.Tensor:
        cfg = self.config
        loss = self._loss(batch, forward)[0]
        if cfg.beta > 0:
            alphas = [p for _, p in _alphas(self.model)]
            loss = loss + cfg.beta * torch.stack([torch.logsumexp(a, -1) for a in alphas]).mean()
        return loss

    def step(self, train_batch, val_batch) -> float:
        cfg = self.config
        self.model.train()
        train = tuple(t.to(self.device, non_blocking=True) for t in train_batch)
        if self.a_opt is not None and self.epoch() >= cfg.warmup_epochs:
            val = tuple(t.to(self.device, non_blocking=True) for t in val_batch)
            self.a_opt.zero_grad(set_to_none=True)
            if cfg.order == 2:
                self._unrolled_arch_step(train, val)
            else:
                self._arch_loss(val).backward()
            self.a_opt.step()
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self._loss(train)
        loss.backward()
        cfg.clip(self.model.weight_parameters())
        self.w_opt.step()
        if self.a_opt is not None:
            for p in self.model.arch_parameters():  # weight grads must not leak into the next arch step
                p.grad = None
        self.log.step += 1
        accuracy = (logits.detach().argmax(1) == train[1]).float().mean()
        loss_value, accuracy_value = self.processes.mean([float(loss.detach()), float(accuracy)])
        self.log.losses.append(loss_value)
        self.log.accuracies.append(accuracy_value)
        return loss_value

    def _unrolled_arch_step(self, train, val) -> None:
        """Set the architecture gradients to the second-order DARTS hypergradient (its forward passes
        run the unwrapped module: ``torch.autograd.grad`` bypasses DDP, the gradients are averaged
        explicitly)."""
        weights = self.model.weight_parameters()
        momentum = self.config.momentum
        buffers = [self.w_opt.state.get(w, {}).get("momentum_buffer") for w in weights] if momentum else None
        grads = unrolled_arch_gradients(
            weights, self.model.arch_parameters(), lambda: self._loss(train, self.model)[0],
            lambda: self._arch_loss(val, self.model), xi=self.w_opt.param_groups[0]["lr"],
            weight_decay=self.config.weight_decay, momentum=momentum, buffers=buffers, nesterov=self.config.nesterov,
            average=self.processes.average)
        for p, g in zip(self.model.arch_parameters(), grads):
            p.grad = g

    # -- epochs ---------------------------------------------------------------------------------
    def _record(self, val: ImageSet, seconds: float) -> Record:
        """The record of the epoch the last step ended (see the module docstring)."""
        record = self._epoch_record(val, seconds, self.w_opt.param_groups[0]["lr"], "valid")
        alphas = [p for _, p in _alphas(self.model)]
        if alphas:
            record["arch_entropy"] = float(torch.stack([_entropy(a) for a in alphas]).mean())
            record["arch"] = self.model.derive().arch
        if isinstance(getattr(self.model, "sampler", None), GumbelSampler):
            record["tau"] = self.model.sampler.tau
        return record

    # -- the loop -------------------------------------------------------------------------------
    def run(self, train: ImageSet | tuple[torch.Tensor, torch.Tensor], val: ImageSet | tuple[torch.Tensor, torch.Tensor],
            checkpoint: str | Path | None = None, resume: bool = False, progress: bool = True,
            log: str | Path | None = None) -> SearchLog:
        """Search until the run's length; ``log`` writes the epoch records as JSON lines (and TensorBoard)."""
        cfg = self.config
        train, val = ImageSet.of(train), ImageSet.of(val)
        options = dict(augmentation=augmentation_for(cfg.augment, cfg.cutout), workers=self.workers,
                       pin_memory=self.device.type == "cuda", part=self.processes.rows(cfg.batch_size))
        self._start(len(train), checkpoint, resume)
        train_it = stream(train, cfg.batch_size, cfg.seed, skip=self.log.step, **options)
        val_it = stream(val, cfg.batch_size, cfg.seed + 1, skip=self.log.step, **options)

        def advance() -> float:
            self._apply_schedules()
            return self.step(next(train_it), next(val_it))

        self._run_epochs(advance, lambda seconds: self._record(val, seconds), desc=f"{cfg.method} search",
                         checkpoint=checkpoint, log=log, log_prefix="search", progress=progress)
        return self.log

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        meta: dict[str, Any] = {"kind": "supernet-search", "config": asdict(self.config), "step": self.log.step,
                                "losses": self.log.losses, "accuracies": self.log.accuracies,
                                "records": self.log.records, "seconds": self.log.seconds,
                                "w_opt": flatten_state("w_opt", self.w_opt.state_dict(), tensors)}
        if self.a_opt is not None:
            meta["a_opt"] = flatten_state("a_opt", self.a_opt.state_dict(), tensors)
        save_checkpoint(path, tensors, meta)

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint of this run; everything is checked before anything is changed."""
        tensors, meta = load_checkpoint_as(path, SearchCheckpoint, "supernet search")
        self._check_checkpoint(path, meta)
        if (meta.a_opt is None) != (self.a_opt is None):
            raise NasirError(f"{path}: checkpoint {'lacks' if meta.a_opt is None else 'has'} an architecture optimizer")
        self._restore(path, tensors, meta, "supernet")
        restore_optimizer(self.w_opt, meta.w_opt, tensors, str(path))
        if self.a_opt is not None:
            restore_optimizer(self.a_opt, meta.a_opt, tensors, str(path))


def _alphas(model: NasirModule) -> list[tuple[str, torch.nn.Parameter]]:
    """The choices' architecture parameters (not the edge weights of ``partial-channel``)."""
    return list(model.arch.named_parameters()) if getattr(model, "arch", None) is not None else []


def _entropy(alpha: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of ``softmax(alpha)``."""
    logp = torch.log_softmax(alpha.detach().float(), -1)
    return -(logp.exp() * logp).sum()


def compile_step(model: NasirModule, backend: str, device: torch.device, shared: torch.nn.Module | None = None):
    """``model`` under ``torch.compile`` (forward, and the backward AOTAutograd derives from it); with
    many processes ``shared``, the model in DistributedDataParallel, is what is compiled.

    A supernet lowering has no data-dependent host sync (tests/search/test_compile.py checks it), so
    on CUDA with Inductor it also runs as CUDA graphs; sampled lowerings read the sampled index on
    the host every forward and compile in the default mode. GDAS changes its temperature every step,
    which would recompile every step: it is refused. In DistributedDataParallel CUDA graphs are left
    out: the gradient all-reduce runs between the compiled pieces.
    """
    if isinstance(getattr(model, "sampler", None), GumbelSampler):
        raise NasirError("--compile does not support GDAS (its temperature changes every step)",
                         hint="use --method darts or spos with --compile")
    graphs = backend == "inductor" and device.type == "cuda" and model.ir_mode == "supernet" and shared in (None, model)
    return torch.compile(shared or model, backend=backend, mode="reduce-overhead" if graphs else None)
