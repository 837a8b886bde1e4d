"""What ``nasir search`` (``SupernetSearch``) and ``nasir train`` (``Trainer``) share: a run of
epochs over a training set, in one process or many.

``EpochRun`` fixes the run's length from the training set (``epochs`` passes of
``len(train) // batch_size`` steps, or ``steps`` steps with ``epochs=0``) and continues a checkpoint
(``_start``); ``_run_epochs`` is the loop: every step is seeded by the run's seed and the step (so a
resumed run draws what an uninterrupted one draws), the epoch's record is appended when a step ends
an epoch or the run, the checkpoint is saved every ``save_every`` steps or ``save_minutes`` minutes,
at every epoch's end and at the end, and the epoch log (``nasir.search.epoch_log``) is rewritten
after every epoch and closed when the loop ends, also on an error. ``evaluate`` measures the model
on the first images of a data set, split over the processes.

Many processes (``nasir.distributed``): process 0 alone shows progress and writes the checkpoint and
the log; the others wait for each write (``Processes.main_only``). A driver gives its ``config``
(``seed``, ``batch_size``, ``epochs``, ``steps``, ``save_every``, ``save_minutes``), ``log``
(``step``, ``losses``, ``accuracies``, ``records``, ``seconds``, ``resumed_from``), ``model``,
``device`` and ``processes``, and its own ``save`` and ``load``, which check a checkpoint
(``_check_checkpoint``) and restore the model and the log (``_restore``) with the methods here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nasir.data.images import ImageSet
from nasir.data.loader import index_batches
from nasir.diagnostics import NasirError
from nasir.distributed import Processes
from nasir.save_schedule import SaveSchedule
from nasir.search.epoch_log import EpochLog, Record


class EpochRun:
    """The run-length bookkeeping, the loop and the evaluation of a driver (see the module docstring)."""

    config: Any
    log: Any
    model: torch.nn.Module
    device: torch.device
    processes: Processes
    #: the run's length and its epoch length in steps (known once the run sees the training set)
    total_steps: int
    steps_per_epoch: int
    #: configuration entries a resumed run may change
    not_compared: tuple[str, ...] = ("steps", "epochs", "save_every", "save_minutes", "compile")
    #: whether a checkpoint may lack the per-step accuracies (those of older versions do)
    accuracies_optional = False

    def save(self, path: str | Path) -> None:
        raise NotImplementedError

    def load(self, path: str | Path) -> None:
        raise NotImplementedError

    # -- resume ---------------------------------------------------------------------------------
    def _check_checkpoint(self, path: str | Path, meta: Any) -> None:
        """``meta`` (a checkpoint's metadata) must have this run's configuration, but for
        ``not_compared``, and a step within this run with a loss (and accuracy) per step."""
        ours, theirs = asdict(self.config), asdict(meta.config)
        differ = [k for k in ours if k not in self.not_compared and ours[k] != theirs[k]]
        if differ:
            raise NasirError(f"{path}: checkpoint was made with {differ[0]}={theirs[differ[0]]!r}, "
                             f"this run has {ours[differ[0]]!r}", hint="resume with the same options, or start afresh")
        accuracies = (0, meta.step) if self.accuracies_optional else (meta.step,)
        if meta.step > self.total_steps or len(meta.losses) != meta.step or len(meta.accuracies) not in accuracies:
            raise NasirError(f"{path}: checkpoint is at step {meta.step} with {len(meta.losses)} losses; "
                             f"this run has {self.total_steps} steps", hint="raise --steps or --epochs, or start afresh")

    def _restore(self, path: str | Path, tensors: dict[str, torch.Tensor], meta: Any, what: str) -> None:
        """Load the model's state (``model.*`` tensors; ``what`` names the model in the error) and the
        log of a checked checkpoint."""
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(state)
        except RuntimeError as e:
            raise NasirError(f"{path}: checkpoint does not match this {what} ({str(e).splitlines()[0]})") from None
        self.log.step = meta.step
        self.log.losses = list(meta.losses)
        self.log.accuracies = list(meta.accuracies) or [None] * meta.step
        self.log.records = [dict(r) for r in meta.records]
        self.log.seconds = meta.seconds

    # -- length ---------------------------------------------------------------------------------
    @property
    def epochs(self) -> int:
        """Epochs of the run (the last one partial when a step count ends inside it)."""
        return max(math.ceil(self.total_steps / self.steps_per_epoch), 1)

    def epoch(self) -> int:
        """The epoch the next step belongs to (from 0)."""
        return self.log.step // self.steps_per_epoch

    def _start(self, images: int, checkpoint: str | Path | None, resume: bool) -> None:
        """Fix the run's length from the ``images`` of the training set and continue ``checkpoint`` if
        ``resume`` (its record of a partial epoch is dropped: that epoch is recorded again when it ends)."""
        cfg = self.config
        index_batches(images, cfg.batch_size, cfg.seed)  # is there one batch at all? (before anything loads)
        self.steps_per_epoch = images // cfg.batch_size
        self.total_steps = cfg.epochs * self.steps_per_epoch if cfg.epochs else cfg.steps
        if resume and checkpoint is not None and Path(checkpoint).exists():
            self.load(checkpoint)
            self.log.resumed_from = self.log.step
            self.log.records = [r for r in self.log.records if not r.get("partial")]

    # -- the loop -------------------------------------------------------------------------------
    def _run_epochs(self, advance: Callable[[], float], record: Callable[[float], Record], *, desc: str,
                    checkpoint: str | Path | None, log: str | Path | None, log_prefix: str, progress: bool) -> None:
        """Call ``advance`` (one step: it moves ``log.step`` on and returns the step's loss) until the
        run's length; ``record(seconds)`` is the record of the epoch the last step ended."""
        cfg = self.config
        epoch_log = EpochLog(log, prefix=log_prefix) if log is not None and self.processes.main else None
        if epoch_log is not None:
            epoch_log.write(self.log.records)  # those of the checkpoint resumed from
        start = time.perf_counter() - self.log.seconds
        schedule = SaveSchedule(cfg.save_every, cfg.save_minutes, last_step=self.log.step)
        try:
            with tqdm(total=self.total_steps, initial=self.log.step, desc=desc, unit="step", dynamic_ncols=True,
                      disable=not progress or not self.processes.main) as bar:
                while self.log.step < self.total_steps:
                    torch.manual_seed(cfg.seed * 100003 + self.log.step)  # the step's random draws
                    loss = advance()
                    bar.set_postfix(loss=f"{loss:.3f}", epoch=(self.log.step - 1) // self.steps_per_epoch + 1)
                    bar.update(1)
                    ends_epoch = self.log.step % self.steps_per_epoch == 0 or self.log.step == self.total_steps
                    if ends_epoch:
                        self.log.records.append(record(time.perf_counter() - start))
                    if checkpoint is not None and (schedule.due(self.log.step) or ends_epoch):
                        self.log.seconds = time.perf_counter() - start
                        self.processes.main_only(lambda: self.save(checkpoint))
                        schedule.saved(self.log.step)
                    if ends_epoch and epoch_log is not None:
                        epoch_log.write(self.log.records, new=self.log.records[-1])
        finally:
            if epoch_log is not None:
                epoch_log.close()
        self.log.seconds = time.perf_counter() - start

    def _epoch_record(self, data: ImageSet, seconds: float, lr: float, prefix: str) -> Record:
        """The entries every driver records for the epoch the last step ended: its learning rate, mean
        training loss and accuracy, and the loss and accuracy on ``data`` (``prefix_loss``, ...; a
        partial epoch is evaluated on as many images as it trained on)."""
        step = self.log.step
        epoch = (step - 1) // self.steps_per_epoch
        first = epoch * self.steps_per_epoch
        partial = step % self.steps_per_epoch != 0
        images = min(len(data), (step - first) * self.config.batch_size) if partial else len(data)
        loss, accuracy = self.evaluate(data, images)
        losses = self.log.losses[first:step]
        accuracies = [a for a in self.log.accuracies[first:step] if a is not None]
        record: Record = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": sum(losses) / len(losses),
                          "train_acc": sum(accuracies) / len(accuracies) if accuracies else None,
                          f"{prefix}_loss": loss, f"{prefix}_acc": accuracy, f"{prefix}_images": images,
                          "time": round(seconds, 3)}
        if partial:
            record["partial"] = True
        return record

    # -- evaluation -----------------------------------------------------------------------------
    def _inputs(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch on the run's device."""
        return tuple(t.to(self.device, non_blocking=True) for t in batch)  # type: ignore[return-value]

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits in eval mode."""
        return self.model(x)

    @torch.no_grad()
    def evaluate(self, data: ImageSet, limit: int | None = None) -> tuple[float, float]:
        """Mean loss and accuracy of the model on the first ``limit`` (all) images of ``data`` (eval
        mode, no augmentation; with many processes each evaluates every N-th batch with process 0's
        BatchNorm statistics)."""
        self.processes.sync_buffers(self.model)
        was_training = self.model.training
        self.model.eval()
        total_loss, correct = 0.0, 0
        n = len(data) if limit is None else min(limit, len(data))
        batch = self.config.batch_size
        try:
            for start in range(self.processes.rank * batch, n, self.processes.world * batch):
                x, y = self._inputs(data.batch(torch.arange(start, min(start + batch, n))))
                logits = self._eval_logits(x)
                total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        finally:
            self.model.train(was_training)
        total_loss, correct = self.processes.total([total_loss, correct])
        return total_loss / max(n, 1), round(correct) / max(n, 1)
