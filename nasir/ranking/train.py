"""Stand-alone training to a plateau: the ground truth of a ranking study.

The training split is cut in two: the last ``Budget.holdout`` of it is a held-out validation set
that decides when to stop, the rest trains. SGD with momentum; when the validation accuracy has
not improved for ``patience`` epochs the learning rate drops by ``decay`` and training goes on from
the best weights; after ``drops`` drops (or ``max_epochs``) it stops, and the best validation
weights are evaluated once on the test split. A run is a function of the network's seed and the
data: the batch order and augmentation come from ``nasir.data.loader`` seeded with the same seed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from nasir.data.images import Augmentation, ImageSet
from nasir.data.loader import stream
from nasir.diagnostics import NasirError


@dataclass(frozen=True)
class Budget:
    """How long one stand-alone run may train, and how it decides it has converged."""

    max_epochs: int = 30
    patience: int = 3
    drops: int = 2
    decay: float = 0.2
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    holdout: float = 0.1
    #: training images used (0: all but the held-out ones), to size a study to the machine
    images: int = 0

    def check(self) -> None:
        if self.max_epochs < 1 or self.patience < 1 or self.drops < 0 or self.batch_size < 1 or self.images < 0:
            raise NasirError(f"budget {self}: epochs, patience and batch size must be positive, drops and images >= 0")
        if not 0 < self.holdout < 1 or not 0 < self.decay < 1 or self.lr <= 0:
            raise NasirError(f"budget {self}: holdout and decay must lie in (0, 1), the learning rate above 0")


@dataclass(frozen=True)
class RunResult:
    """One stand-alone run: test accuracy of the best validation weights, that validation
    accuracy, the epochs trained and the epoch of the best weights, seconds."""

    test_accuracy: float
    val_accuracy: float
    epochs: int
    best_epoch: int
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


def holdout_split(data: ImageSet, fraction: float, images: int = 0) -> tuple[ImageSet, ImageSet]:
    """(training part, held-out part): the last ``fraction`` of ``data`` is held out; ``images``
    > 0 keeps only the first ``images`` of the training part."""
    cut = len(data) - max(1, int(round(fraction * len(data))))
    train = data.select(slice(0, min(cut, images) if images else cut))
    return train, data.select(slice(cut, None))


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: ImageSet, batch_size: int = 500, device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``data``; logits may be a tuple (first taken)."""
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x, y = data.batch(torch.arange(start, min(start + batch_size, len(data))))
        out = model(x.to(device))
        out = out[0] if isinstance(out, tuple) else out
        correct += int((out.argmax(1).cpu() == y).sum())
    return correct / len(data)


def train_to_plateau(build: Callable[[int], torch.nn.Module], train: ImageSet, test: ImageSet, seed: int,
                     budget: Budget = Budget(), augmentation: Augmentation | None = None,
                     device: str | torch.device = "cpu", log: Callable[[str], None] | None = None) -> RunResult:
    """Train ``build(seed)`` on ``train`` minus its held-out part until the held-out accuracy
    plateaus (see the module docstring); the test accuracy of its best held-out weights."""
    budget.check()
    start = time.perf_counter()
    fit, held = holdout_split(train, budget.holdout, budget.images)
    torch.manual_seed(seed)
    model = build(seed).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=budget.lr, momentum=budget.momentum,
                          weight_decay=budget.weight_decay, nesterov=True)
    batches = stream(fit, budget.batch_size, seed, augmentation)
    per_epoch = len(fit) // budget.batch_size
    best, best_state, best_epoch, stale, drops, epoch = -1.0, None, 0, 0, 0, 0
    while epoch < budget.max_epochs:
        model.train()
        for _ in range(per_epoch):
            x, y = next(batches)
            out = model(x.to(device))
            loss = F.cross_entropy(out[0] if isinstance(out, tuple) else out, y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch += 1
        val = accuracy(model, held, device=device)
        if log is not None:
            log(f"seed {seed} epoch {epoch}: held-out accuracy {val:.4f} (lr {opt.param_groups[0]['lr']:.4g})")
        if val > best:
            best, best_state, best_epoch, stale = val, copy.deepcopy(model.state_dict()), epoch, 0
            continue
        stale += 1
        if stale >= budget.patience:
            if drops == budget.drops:
                break
            drops, stale = drops + 1, 0
            model.load_state_dict(best_state)
            for group in opt.param_groups:
                group["lr"] *= budget.decay
    model.load_state_dict(best_state)
    return RunResult(accuracy(model, test, device=device), best, epoch, best_epoch, time.perf_counter() - start)
