"""Plain supervised training and evaluation of a classifier: teachers, retrained students and the
stand-alone trained candidates that block ratings are compared against.

Training a teacher takes long on a CPU (minutes to an hour), so ``train_classifier`` can save its
progress to a checkpoint (every ``checkpoint_every`` steps or ``checkpoint_minutes`` minutes) and
continue from it: weights, optimizer state, the sampling generator and the position in the
current epoch, so that a run interrupted and continued ends exactly where an uninterrupted one ends.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nasir.checkpoint import CheckpointMeta, flatten_state, load_checkpoint_as, restore_optimizer, save_checkpoint
from nasir.data.images import resize
from nasir.dna.errors import DNAError
from nasir.save_schedule import CHECKPOINT_MINUTES, SaveSchedule


class ClassifierCheckpoint(CheckpointMeta):
    """Metadata of an unfinished ``train_classifier`` run: what identifies the run, and where it is."""

    kind: Literal["dna-classifier-training"] = "dna-classifier-training"
    run: dict[str, Any]
    step: int = Field(ge=0)
    pos: int = Field(ge=0)
    losses: list[float]
    optimizer: Any


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 300,
                     batch_size: int = 64, lr: float = 0.05, seed: int = 0, device: str | torch.device = "cpu",
                     resolution: int | None = None, progress: bool = False, desc: str = "train",
                     checkpoint: str | Path | None = None, checkpoint_every: int = 50,
                     checkpoint_minutes: float = CHECKPOINT_MINUTES, identity: dict[str, Any] | None = None
                     ) -> list[float]:
    """SGD with momentum and cosine decay, light augmentation (random flips); returns the losses.

    With ``checkpoint``, progress is saved there as training goes, and a checkpoint of the same run
    found there is continued; ``identity`` (JSON data, e.g. the network's description) is part of
    what must match. The caller removes the file once it has stored the trained network.
    """
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    n = images.shape[0]
    losses: list[float] = []
    perm = torch.randperm(n, generator=g)
    pos = start = 0
    run = json.loads(json.dumps({"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                                 "resolution": resolution, "samples": n, "identity": identity}))
    if checkpoint is not None and Path(checkpoint).is_file():
        start, pos, perm, losses = _resume_classifier(checkpoint, run, model, opt, g)
    schedule = SaveSchedule(checkpoint_every, checkpoint_minutes, last_step=start)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, desc=desc, leave=False, dynamic_ncols=True)
    for t in range(start, steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        x, y = images[idx], labels[idx]
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        x, y = resize(x.to(device), resolution), y.to(device)
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * t / steps))
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
        if checkpoint is not None and t + 1 < steps and schedule.due(t + 1):
            _save_classifier(checkpoint, run, t + 1, pos, perm, losses, model, opt, g)
            schedule.saved(t + 1)
    if bar is not None:
        bar.close()
    model.eval()
    return losses


def _save_classifier(path: str | Path, run: dict[str, Any], step: int, pos: int, perm: torch.Tensor,
                     losses: list[float], model: nn.Module, opt: torch.optim.Optimizer, g: torch.Generator) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({"perm": perm, "rng": g.get_state()})
    meta = {"kind": "dna-classifier-training", "run": run, "step": step, "pos": pos, "losses": losses,
            "optimizer": flatten_state("opt", opt.state_dict(), tensors)}
    save_checkpoint(path, tensors, meta)


def _resume_classifier(path: str | Path, run: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer,
                       g: torch.Generator) -> tuple[int, int, torch.Tensor, list[float]]:
    """Restore an unfinished run into ``model``, ``opt`` and ``g``; returns (step, position in the
    epoch, the epoch's permutation, the losses so far). Everything is checked first."""
    tensors, meta = load_checkpoint_as(path, ClassifierCheckpoint, "classifier training", DNAError)
    if meta.run != run:
        differ = next(k for k in sorted({*run, *meta.run}) if meta.run.get(k) != run.get(k))
        raise DNAError(f"{path}: an unfinished training with {differ}={meta.run.get(differ)!r}, this run has "
                       f"{run.get(differ)!r}", hint="use the same options, or delete the file to start afresh")
    perm, rng = tensors.get("perm"), tensors.get("rng")
    n = run["samples"]
    if (meta.step >= run["steps"] or len(meta.losses) != meta.step or meta.pos > n or perm is None or rng is None
            or not torch.equal(perm.sort().values, torch.arange(n)) or rng.dtype != g.get_state().dtype
            or rng.shape != g.get_state().shape):
        raise DNAError(f"{path}: impossible position of an unfinished training (step {meta.step} of {run['steps']})")
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as e:
        raise DNAError(f"{path}: weights do not fit this network ({str(e).splitlines()[0]})") from None
    restore_optimizer(opt, meta.optimizer, tensors, str(path), DNAError)
    g.set_state(rng)
    return meta.step, meta.pos, perm.to(torch.int64), list(meta.losses)


@torch.no_grad()
def _mean_over(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, per_batch, batch_size: int,
               device: str | torch.device, resolution: int | None) -> float:
    """sum over batches of ``per_batch(logits, labels)`` / number of images, in eval mode."""
    was = model.training
    model.eval().to(device)
    total = 0.0
    for start in range(0, images.shape[0], batch_size):
        x = resize(images[start:start + batch_size].to(device), resolution)
        total += float(per_batch(model(x), labels[start:start + batch_size].to(device)))
    model.train(was)
    return total / images.shape[0]


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500,
             device: str | torch.device = "cpu", resolution: int | None = None) -> float:
    return _mean_over(model, images, labels, lambda out, y: (out.argmax(1) == y).sum(), batch_size, device, resolution)


def test_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500,
              device: str | torch.device = "cpu", resolution: int | None = None) -> float:
    """Mean cross-entropy on a labelled set: a ground truth less quantized than accuracy."""
    return _mean_over(model, images, labels, lambda out, y: F.cross_entropy(out, y, reduction="sum"), batch_size,
                      device, resolution)
