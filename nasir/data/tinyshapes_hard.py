"""TinyShapes-Hard: a bundled, generated 24-class image set on which architectures differ.

TinyShapes saturates (every network near 100%), so rankings read on it are noise. This set keeps
the no-download, deterministic generator but asks for more: each image holds several objects over
a textured background, and the label is a rule over two of them,

    label = 2 * shape(largest object) + (the medium object lies below the largest one)

with twelve shapes (disc, square, triangle, plus, ring, hbars, vstripes, diamond, x-cross, frame,
dome, checker), hence 24 classes. Solving it needs the shape of one object at a small scale and a
spatial relation across the image (a receptive field that spans it). Nuisances that carry no label
information: per-object colours and textures, a colour grating background, small clutter shapes,
occluding bars drawn over the objects, pixel noise, a global brightness and contrast change, and a
rotation of every object by up to ``Knobs.rotation`` radians. Horizontal flips and small crops
keep every label (no class is the mirror image of another, the rule is about above/below), so the
standard CIFAR crop-and-flip augmentation applies.

Generation is vectorised torch on the CPU, seeded (``generate(n, seed, size)``: the same arguments
give the same bytes), class-balanced (every class appears ``n // 24`` or ``n // 24 + 1`` times) and
renders natively at any resolution (32 by default; 64 with ``--data tinyshapes-hard:64``) since all
geometry is a fraction of the image side. The difficulty knobs live in ``Knobs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

SHAPES = ("disc", "square", "triangle", "plus", "ring", "hbars", "vstripes", "diamond", "xcross", "frame", "dome",
          "checker")
CLASSES = tuple(f"{shape}-{where}" for shape in SHAPES for where in ("above", "below"))
#: split -> (images, seed); 500 training and 100 test images per class
SPLITS = {"train": (12000, 2718), "test": (2400, 3141)}
DEFAULT_SIZE = 32


@dataclass(frozen=True)
class Knobs:
    """What makes the set hard; lengths are fractions of the image side."""

    big_radius: tuple[float, float] = (0.17, 0.24)  # the labelled object
    medium_radius: tuple[float, float] = (0.09, 0.13)  # the object whose position (above/below) is labelled
    clutter_radius: tuple[float, float] = (0.03, 0.06)
    clutter: int = 4  # small random shapes per image (half behind the objects, half in front)
    occluders: int = 2  # bars over the objects, each present with probability 3/4
    rotation: float = 0.3  # radians, both ways
    noise: float = 0.06  # pixel noise standard deviation (pixels in [0, 1])
    texture: float = 0.35  # amplitude of the object and background gratings
    min_gap: float = 0.1  # least vertical distance between the medium and the largest object's centres


def _shape_mask(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Pixels inside shape number ``shape``; ``u``, ``v``: rotated coordinates in units of the radius."""
    au, av = u.abs(), v.abs()
    box = torch.maximum(au, av)
    d = (u * u + v * v).sqrt()
    name = SHAPES[shape]
    if name == "disc":
        return d <= 1
    if name == "square":
        return box <= 0.85
    if name == "triangle":
        return (v <= 0.9) & (au <= (v + 1) / 2)
    if name == "plus":
        return ((au <= 0.32) & (av <= 1)) | ((av <= 0.32) & (au <= 1))
    if name == "ring":
        return (d <= 1) & (d >= 0.55)
    if name == "hbars":
        return (box <= 0.9) & (torch.remainder(v + 0.9, 0.72) < 0.36)
    if name == "vstripes":
        return (box <= 0.9) & (torch.remainder(u + 0.9, 0.72) < 0.36)
    if name == "diamond":
        return au + av <= 1.05
    if name == "xcross":
        return (box <= 0.85) & (((u - v).abs() <= 0.4) | ((u + v).abs() <= 0.4))
    if name == "frame":
        return (box <= 0.9) & (box >= 0.5)
    if name == "dome":
        return (d <= 1) & (v <= 0.15)
    return (box <= 0.9) & (torch.remainder(torch.floor((u + 0.9) / 0.6) + torch.floor((v + 0.9) / 0.6), 2) < 1)


def _uniform(n: int, bounds: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _grating(ys: torch.Tensor, xs: torch.Tensor, g: torch.Generator, cycles: tuple[float, float]) -> torch.Tensor:
    """A sinusoidal grating per image in [0, 1] over coordinates ``ys`` [n, H, 1] and ``xs``
    [n, 1, W], ``cycles`` per unit length, random orientation and phase; [n, H, W]."""
    n = ys.shape[0]
    theta = torch.rand(n, 1, 1, generator=g) * math.pi
    freq = _uniform(n, cycles, g).view(n, 1, 1) * 2 * math.pi
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    return 0.5 + 0.5 * torch.sin(freq * (xs * theta.cos() + ys * theta.sin()) + phase)


def _colours_against(background: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random RGB colours [n, 3] that differ from ``background`` [n, 3] by at least 0.6 (L1)."""
    colour = torch.rand(background.shape, generator=g)
    close = (colour - background).abs().sum(1, keepdim=True) < 0.6
    return torch.where(close, 1 - background, colour)


def _paint(img: torch.Tensor, margin: int, shapes: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, r: torch.Tensor,
           colour: torch.Tensor, knobs: Knobs, g: torch.Generator) -> None:
    """Draw one object per image (shape index, centre and radius in image pixels, colour [n, 3])
    with a random rotation and a texture of random strength, in place over the canvas ``img``
    [n, S + 2 margin, S + 2 margin, 3] (channels last). Only a window around each object is computed: the canvas
    margin keeps every window inside, so no two window pixels are the same canvas pixel."""
    n = img.shape[0]
    side = 2 * math.ceil(float(r.max()) * 1.45) + 2
    angle = (torch.rand(n, generator=g) * 2 - 1) * knobs.rotation
    top = torch.floor(cy + margin - side / 2).long()
    left = torch.floor(cx + margin - side / 2).long()
    rows = top.view(n, 1) + torch.arange(side)  # canvas rows of each window [n, side]
    cols = left.view(n, 1) + torch.arange(side)
    ys = (rows.float() + 0.5 - margin - cy.view(n, 1)) / r.view(n, 1)
    xs = (cols.float() + 0.5 - margin - cx.view(n, 1)) / r.view(n, 1)
    dy, dx = ys.view(n, side, 1), xs.view(n, 1, side)
    cos, sin = angle.cos().view(n, 1, 1), angle.sin().view(n, 1, 1)
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    mask = torch.zeros(n, side, side, dtype=torch.bool)
    for shape in range(len(SHAPES)):
        chosen = (shapes == shape).nonzero().flatten()
        if chosen.numel():
            mask[chosen] = _shape_mask(shape, u[chosen], v[chosen])
    strength = torch.rand(n, 1, 1, generator=g) * knobs.texture
    shade = 1 - strength * _grating(dy, dx, g, (0.4, 1.2))  # 0.8 to 2.4 cycles across the object
    fill = colour.view(n, 1, 1, 3) * shade.unsqueeze(-1)
    at = (torch.arange(n).view(n, 1, 1), rows.view(n, side, 1), cols.view(n, 1, side))
    window = img[at]  # [n, side, side, 3]
    img[at] = torch.where(mask.unsqueeze(-1), fill, window)


def _balanced_labels(n: int, g: torch.Generator) -> torch.Tensor:
    labels = torch.arange(n) % len(CLASSES)
    return labels[torch.randperm(n, generator=g)]


def generate(n: int, seed: int, size: int = DEFAULT_SIZE, knobs: Knobs = Knobs()) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images uint8 [n, 3, size, size] and their labels int64 [n], a function of the arguments."""
    g = torch.Generator().manual_seed(seed)
    labels = _balanced_labels(n, g)
    shape, below = labels // 2, (labels % 2).bool()
    # background: a grating between two nearby colours, on a canvas whose margin holds every
    # object's window (the margin is cut off at the end)
    at = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    base = torch.rand(n, 3, generator=g)
    other = (base + (torch.rand(n, 3, generator=g) - 0.5) * 2 * knobs.texture).clamp(0, 1)
    wave = _grating(at.view(1, size, 1).expand(n, size, 1), at.view(1, 1, size).expand(n, 1, size), g, (1.0, 5.0))
    img = base.view(n, 1, 1, 3) + (other - base).view(n, 1, 1, 3) * wave.unsqueeze(-1)  # [n, S, S, 3]
    margin = math.ceil(max(knobs.big_radius[1], knobs.medium_radius[1], knobs.clutter_radius[1]) * size * 1.45) + 2
    img = F.pad(img, (0, 0, margin, margin, margin, margin))

    def paint(shapes: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, radius: tuple[float, float]) -> None:
        _paint(img, margin, shapes, cy * size, cx * size, _uniform(n, radius, g) * size, _colours_against(base, g),
               knobs, g)

    def clutter(count: int) -> None:
        for _ in range(count):
            paint(torch.randint(0, len(SHAPES), (n,), generator=g), torch.rand(n, generator=g),
                  torch.rand(n, generator=g), knobs.clutter_radius)

    clutter(knobs.clutter - knobs.clutter // 2)
    # the largest object, then the medium one above or below it (drawn over it: it may occlude it)
    big_y = _uniform(n, (0.35, 0.65), g)
    paint(shape, big_y, _uniform(n, (0.3, 0.7), g), knobs.big_radius)
    t = torch.rand(n, generator=g)
    above_y = 0.08 + t * (big_y - knobs.min_gap - 0.08)
    below_y = big_y + knobs.min_gap + t * (0.92 - big_y - knobs.min_gap)
    paint(torch.randint(0, len(SHAPES), (n,), generator=g), torch.where(below, below_y, above_y),
          _uniform(n, (0.12, 0.88), g), knobs.medium_radius)
    clutter(knobs.clutter // 2)
    img = img[:, margin:margin + size, margin:margin + size].permute(0, 3, 1, 2)
    # occluding bars, horizontal or vertical, each present with probability 3/4
    ys = torch.arange(size, dtype=torch.float32).view(1, size, 1) + 0.5
    xs = torch.arange(size, dtype=torch.float32).view(1, 1, size) + 0.5
    for _ in range(knobs.occluders):
        present = (torch.rand(n, generator=g) < 0.75).view(n, 1, 1)
        vertical = (torch.rand(n, generator=g) < 0.5).view(n, 1, 1)
        cy, cx = (torch.rand(n, 2, generator=g) * size).view(n, 2, 1, 1).unbind(1)
        half_long = _uniform(n, (0.15, 0.3), g).view(n, 1, 1) * size
        half_thin = _uniform(n, (0.03, 0.07), g).view(n, 1, 1) * size
        dy, dx = (ys - cy).abs(), (xs - cx).abs()
        along, across = torch.where(vertical, dy, dx), torch.where(vertical, dx, dy)
        bar = present & (along <= half_long) & (across <= half_thin)
        img = torch.where(bar.unsqueeze(1), torch.rand(n, 3, 1, 1, generator=g), img)
    # photometric nuisances
    contrast = _uniform(n, (0.7, 1.2), g).view(n, 1, 1, 1)
    brightness = _uniform(n, (-0.1, 0.1), g).view(n, 1, 1, 1)
    img = (img - 0.5) * contrast + 0.5 + brightness
    img = img + knobs.noise * torch.randn(img.shape, generator=g)
    pixels = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.contiguous(), labels


@lru_cache(maxsize=4)
def _split(split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    n, seed = SPLITS[split]
    return generate(n, seed, size)


def load_hard(split: str = "train", size: int = DEFAULT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels uint8 [N, 3, size, size], labels int64 [N]) of a split: 12000 train / 2400 test;
    generated once per process and size, a copy each call."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    images, labels = _split(split, size)
    return images.clone(), labels.clone()
