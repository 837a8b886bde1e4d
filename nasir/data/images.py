"""Image sets in memory and the standard CIFAR transforms, deterministic given a generator.

An ``ImageSet`` holds one split: either uint8 pixels ``[N, 3, H, W]`` with the per-channel
statistics that normalize them (CIFAR, image folders), or float images that are already
normalized (TinyShapes, tensors passed from Python). ``batch(indices, augmentation, generator)``
gives the float batch a network trains on, in the order of the DARTS reference transforms
(``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, ``Cutout``):
crop of the zero-padded image, flip, normalization, then cutout zeroes a square of the normalized
image. Every random draw comes from the generator passed in, so a batch is a function of the
images, the indices and that generator: the batch streams (``nasir.data.loader``) seed one
generator per batch, which keeps augmentation the same with any number of workers and on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from nasir.diagnostics import NasirError


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and standard deviation of pixel values scaled to [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> normalized float32."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return (x.float() / 255.0 - mean) / std


#: The statistics of the CIFAR training sets used by the DARTS reference code (``utils.py``).
CIFAR10_NORMALIZATION = Normalization((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768))
CIFAR100_NORMALIZATION = Normalization((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
#: The ImageNet statistics that torchvision models expect: the usual choice for photos in folders.
IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Augmentation:
    """Random crop of the image padded by ``crop_padding`` pixels (0: no crop), random horizontal
    flip, and cutout: a ``cutout`` x ``cutout`` square zeroed after normalization (0: none)."""

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0


#: The standard CIFAR augmentation (DARTS, NAS-Bench-201): pad 4, random crop, horizontal flip.
CROP_FLIP = Augmentation()


def augmentation_for(crop_flip: bool, cutout: int = 0) -> Augmentation | None:
    """The augmentation of a run: crop and flip or not, cutout of side ``cutout`` (0: none)."""
    if not crop_flip and not cutout:
        return None
    return Augmentation(cutout=cutout) if crop_flip else Augmentation(crop_padding=0, flip=False, cutout=cutout)


@dataclass(frozen=True)
class Rows:
    """Rows ``part`` of a batch of ``batch`` images: one process's share of a global batch
    (``nasir.distributed``). The augmentation draws are made for the whole batch and the share keeps
    its own, so the images a process trains on are exactly those rows of the single-process batch."""

    batch: int
    part: slice = field(default_factory=lambda: slice(None))


def crop_flip(x: torch.Tensor, generator: torch.Generator | None, padding: int = 4, flip: bool = True,
              rows: Rows | None = None) -> torch.Tensor:
    """Random crops of the zero-padded images and random horizontal flips, one draw of each per image
    (vertical offsets, horizontal offsets, then flips); any dtype. ``rows``: ``x`` is these rows of a
    larger batch and gets their draws (see ``Rows``)."""
    if x.dim() != 4:
        return x
    b, c, h, w = x.shape
    rows = rows or Rows(b)
    dy = torch.randint(0, 2 * padding + 1, (rows.batch,), generator=generator)[rows.part]
    dx = torch.randint(0, 2 * padding + 1, (rows.batch,), generator=generator)[rows.part]
    flips = (torch.rand(rows.batch, generator=generator) < 0.5)[rows.part] if flip else torch.zeros(b, dtype=torch.bool)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = dy.view(b, 1) + torch.arange(h)
    cols = torch.arange(w).expand(b, w)
    cols = dx.view(b, 1) + torch.where(flips.view(b, 1), w - 1 - cols, cols)
    batch = torch.arange(b).view(b, 1, 1, 1)
    chan = torch.arange(c).view(1, c, 1, 1)
    return padded[batch, chan, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None, rows: Rows | None = None) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square per image whose centre is uniform over the image (the
    square is clipped at the border), as the DARTS reference ``Cutout`` does; ``rows`` as in ``crop_flip``."""
    b, _, h, w = x.shape
    rows = rows or Rows(b)
    cy = torch.randint(0, h, (rows.batch, 1, 1), generator=generator)[rows.part]
    cx = torch.randint(0, w, (rows.batch, 1, 1), generator=generator)[rows.part]
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    half = size // 2
    inside = (ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def resize(images: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Bilinear resize of a batch to ``resolution`` x ``resolution`` (uint8 stays uint8, rounded)."""
    if resolution is None or images.shape[-2:] == (resolution, resolution):
        return images
    if images.dtype == torch.uint8:
        out = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear", align_corners=False)
        return out.round().clamp(0, 255).to(torch.uint8)
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)


@dataclass
class ImageSet:
    """One split of a dataset: ``images`` uint8 ``[N, 3, H, W]`` with their ``normalization``, or
    floats already normalized (``normalization`` None; images ``[N, C, H, W]``, or flat features
    ``[N, F]``, which augmentation leaves alone); ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    normalization: Normalization | None = None

    def __post_init__(self) -> None:
        if self.images.dim() < 2 or self.labels.dim() != 1 or self.images.shape[0] != self.labels.shape[0]:
            raise NasirError(f"a data set needs inputs [N, ...] (images [N, C, H, W]) and labels [N], got "
                             f"{list(self.images.shape)} and {list(self.labels.shape)}")
        if (self.images.dtype == torch.uint8) != (self.normalization is not None):
            raise NasirError("uint8 images need their normalization statistics, float images must be normalized already")

    @classmethod
    def of(cls, data: ImageSet | tuple[torch.Tensor, torch.Tensor]) -> ImageSet:
        """``data`` itself, or a pair (normalized float images, labels) as a set."""
        return data if isinstance(data, ImageSet) else cls(*data)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, indices: slice | torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], self.normalization)

    def batch(self, indices: torch.Tensor, augmentation: Augmentation | None = None,
              generator: torch.Generator | None = None, part: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized float images and labels of ``indices``, augmented with ``generator``'s draws;
        ``part``: only these rows of that batch, with the draws they get in the whole batch."""
        rows = Rows(len(indices), part)
        indices = indices[part]
        x = self.images[indices]
        if augmentation is not None and (augmentation.crop_padding or augmentation.flip):
            x = crop_flip(x, generator, augmentation.crop_padding, augmentation.flip, rows)
        if self.normalization is not None:
            x = self.normalization.apply(x)
        if augmentation is not None and augmentation.cutout and x.dim() == 4:
            x = cutout(x, augmentation.cutout, generator, rows)
        return x, self.labels[indices]

    def normalized(self, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``limit`` (all) images as normalized floats, with their labels; no augmentation."""
        part = self.select(slice(0, limit))
        x = part.images if part.normalization is None else part.normalization.apply(part.images)
        return x, part.labels


def split_portion(data: ImageSet, portion: float) -> tuple[ImageSet, ImageSet]:
    """The DARTS split of a training set: the first ``portion`` trains the weights, the rest the
    architecture (``train_search.py``: ``indices[:split]`` and ``indices[split:]``)."""
    cut = int(portion * len(data))
    return data.select(slice(0, cut)), data.select(slice(cut, None))
