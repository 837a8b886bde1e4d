"""Datasets for the drivers: one module per source, chosen with ``--data``.

* ``tinyshapes`` (``nasir.data.tinyshapes``): the bundled synthetic 10-class set, the default;
* ``tinyshapes-hard`` and ``tinyshapes-hard:SIZE`` (``nasir.data.tinyshapes_hard``): the bundled
  24-class set with clutter, occlusion and a label rule over two objects, rendered at SIZE pixels
  (default: the space's resolution, else 32);
* ``cifar10:DIR`` and ``cifar100:DIR`` (``nasir.data.cifar``): the official releases unpacked in a
  local folder, python (pickled) or binary version;
* ``imagefolder:DIR`` (``nasir.data.imagefolder``): one sub-folder per class, any image size.

Nothing is downloaded: a missing folder or file is a ``NasirError`` that names the files expected.
``load_data(spec, resolution)`` returns an ``ImageData`` (train and test ``ImageSet``s, see
``nasir.data.images``); ``nasir.data.loader`` turns a set into deterministic, resumable batch
streams. This module itself imports no torch, so that building the command line stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nasir.diagnostics import NasirError

if TYPE_CHECKING:
    from nasir.data.sources import ImageData

#: Source name -> whether it reads a folder (``NAME:DIR``).
SOURCES = {"tinyshapes": False, "tinyshapes-hard": False, "cifar10": True, "cifar100": True, "imagefolder": True}
#: Bundled sources rendered at any size: ``NAME:SIZE`` picks it from ``SIZES``.
SIZED = {"tinyshapes-hard"}
SIZES = range(16, 129)
DEFAULT = "tinyshapes"
_FORMS = "tinyshapes, tinyshapes-hard[:SIZE], cifar10:DIR, cifar100:DIR or imagefolder:DIR"


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: the source and, for the folder sources, its folder; for a sized
    bundled source, the side its images are rendered at (None: the space's resolution)."""

    source: str
    folder: Path | None = None
    size: int | None = None

    def __str__(self) -> str:
        if self.size is not None:
            return f"{self.source}:{self.size}"
        return self.source if self.folder is None else f"{self.source}:{self.folder}"


def parse_data_spec(text: str) -> DataSpec:
    """``tinyshapes``, ``tinyshapes-hard[:SIZE]``, ``cifar10:DIR``, ``cifar100:DIR`` or ``imagefolder:DIR``."""
    source, sep, folder = text.partition(":")
    source = source.strip().lower()
    if source not in SOURCES:
        raise NasirError(f"--data {text!r}: unknown data source {source!r}", hint=f"use {_FORMS}")
    if source in SIZED and sep:
        return DataSpec(source, size=_size(text, folder))
    if not SOURCES[source]:
        if sep:
            raise NasirError(f"--data {text!r}: {source} is bundled and takes no folder", hint=f"write --data {source}")
        return DataSpec(source)
    if not folder:
        raise NasirError(f"--data {text!r}: {source} reads a local folder", hint=f"write --data {source}:DIR")
    return DataSpec(source, Path(folder).expanduser())


def _size(text: str, value: str) -> int:
    if not value.strip().isdigit() or int(value) not in SIZES:
        raise NasirError(f"--data {text!r}: the image size must be a whole number of pixels from {SIZES.start} "
                         f"to {SIZES.stop - 1}", hint="e.g. --data tinyshapes-hard:64")
    return int(value)


def load_data(spec: str | DataSpec = DEFAULT, resolution: int | None = None) -> ImageData:
    """Train and test images of ``spec`` at ``resolution`` (square; ``None``: the source's own, 32
    for an image folder)."""
    from nasir.data.sources import load

    return load(parse_data_spec(spec) if isinstance(spec, str) else spec, resolution)


# -- command-line options ---------------------------------------------------------------------
def add_data_option(p: argparse.ArgumentParser, default: str | None = DEFAULT) -> None:
    p.add_argument("--data", default=default, metavar="SOURCE",
                   help=f"training data: {_FORMS} (official CIFAR releases, python or binary version, unpacked "
                        f"in DIR; nothing is downloaded)" + (f"; default {default}" if default else ""))


def add_loader_options(p: argparse.ArgumentParser, train_portion: bool = True, cutout: int | None = 0) -> None:
    """Options of the commands that stream augmented batches (``nasir search``; ``nasir dance train``
    without the DARTS split; ``nasir train`` without it, its cutout default (None) the recipe's)."""
    p.add_argument("--cutout", type=int, default=cutout, metavar="N",
                   help="cutout augmentation: zero a random N x N square of every training image (0: off"
                        + ("" if cutout is not None else "; default: the recipe's") + ")")
    if train_portion:
        p.add_argument("--train-portion", type=float, default=0.5, metavar="P",
                       help="DARTS split: the first P of the training set trains the weights, the rest the architecture")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="DataLoader worker processes preparing batches (0: in the main process); results do not depend on it")


def check_loader_options(cutout: int, train_portion: float | None, workers: int) -> None:
    if cutout < 0:
        raise NasirError(f"--cutout {cutout}: the side of the zeroed square cannot be negative")
    if train_portion is not None and not 0 < train_portion < 1:
        raise NasirError(f"--train-portion {train_portion}: must lie strictly between 0 and 1",
                         hint="0.5 is the DARTS split")
    if workers < 0:
        raise NasirError(f"--workers {workers}: cannot be negative")
