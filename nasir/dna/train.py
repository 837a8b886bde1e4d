"""Plain supervised training and evaluation of a classifier: teachers, retrained students and the
stand-alone trained candidates that block ratings are compared against."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nasir.data.images import resize


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 300,
                     batch_size: int = 64, lr: float = 0.05, seed: int = 0, device: str | torch.device = "cpu",
                     resolution: int | None = None, progress: bool = False, desc: str = "train") -> list[float]:
    """SGD with momentum and cosine decay, light augmentation (random flips); returns the losses."""
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    n = images.shape[0]
    losses = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=desc, leave=False, dynamic_ncols=True)
    perm = torch.randperm(n, generator=g)
    pos = 0
    for t in range(steps):
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
    if bar is not None:
        bar.close()
    model.eval()
    return losses


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
