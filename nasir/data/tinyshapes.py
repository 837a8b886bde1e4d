"""TinyShapes: a small bundled 10-class image dataset for demos, tests and benchmarks.

Machines running nasir's examples and CI cannot download CIFAR, so nasir ships a generator: each
image is a 3x32x32 picture of one of ten shape classes (disc, square, triangle, cross, ring, bars,
stripes, diagonal, dots, checker) in a random colour, size and position, over a random background
with noise. Generation is deterministic (fixed seeds), takes well under a second, and the classes
are learnable but not trivial, so accuracy differences between architectures show.
"""

from __future__ import annotations

from functools import lru_cache

import torch

CLASSES = ("disc", "square", "triangle", "cross", "ring", "hbars", "vstripes", "diagonal", "dots", "checker")
SPLITS = {"train": (2000, 1234), "test": (500, 4321)}


def _masks(n: int, labels: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
    ys = torch.arange(size).view(1, size, 1).float()
    xs = torch.arange(size).view(1, 1, size).float()
    cy = (size / 2 + (torch.rand(n, generator=g) - 0.5) * size * 0.35).view(n, 1, 1)
    cx = (size / 2 + (torch.rand(n, generator=g) - 0.5) * size * 0.35).view(n, 1, 1)
    r = (size * (0.18 + 0.14 * torch.rand(n, generator=g))).view(n, 1, 1)
    dy, dx = ys - cy, xs - cx
    dist = (dy**2 + dx**2).sqrt()
    inside = (dy.abs() <= r) & (dx.abs() <= r)
    period = (3 + (torch.rand(n, generator=g) * 3).floor()).view(n, 1, 1)
    shapes = [
        dist <= r,
        inside,
        (dy <= r) & (dy >= -r) & (dx.abs() <= (dy + r) / 2),
        ((dy.abs() <= r / 3) & (dx.abs() <= r)) | ((dx.abs() <= r / 3) & (dy.abs() <= r)),
        (dist <= r) & (dist >= r * 0.6),
        inside & (torch.remainder(ys.expand(n, size, size), 2 * period) < period),
        inside & (torch.remainder(xs.expand(n, size, size), 2 * period) < period),
        inside & ((dy - dx).abs() <= r / 3),
        inside & (torch.remainder(ys, period + 2) < 1.5) & (torch.remainder(xs, period + 2) < 1.5),
        inside & (torch.remainder((ys // period) + (xs // period), 2) < 1),
    ]
    stacked = torch.stack(shapes, dim=1)  # n x 10 x H x W
    return stacked[torch.arange(n), labels]


@lru_cache(maxsize=4)
def _generate(split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    n, seed = SPLITS[split]
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    mask = _masks(n, labels, g, size).float().unsqueeze(1)
    fg = torch.rand(n, 3, 1, 1, generator=g)
    bg = torch.rand(n, 3, 1, 1, generator=g)
    same = (fg - bg).abs().sum(1, keepdim=True) < 0.6
    fg = torch.where(same, 1 - bg, fg)
    img = mask * fg + (1 - mask) * bg
    img = img + 0.08 * torch.randn(n, 3, size, size, generator=g)
    img = (img.clamp(0, 1) - 0.5) / 0.25
    return img.contiguous(), labels


def load_tiny(split: str = "train", size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 [N, 3, size, size] normalized, labels int64 [N]); 2000 train / 500 test."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    images, labels = _generate(split, size)
    return images.clone(), labels.clone()

