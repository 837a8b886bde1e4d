"""Images in class folders (the torchvision ``ImageFolder`` layout), decoded with Pillow.

``DIR`` holds one sub-folder per class (classes in sorted order of the folder names). If ``DIR``
has ``train/`` and ``val/`` (or ``test/``) folders, each of those holds the class folders of its
split (the test split may lack classes, not add any); otherwise every tenth image of each class
(in sorted file order) is held out for testing.
Images of any size and mode are converted to RGB, resized so that the shorter side is the
resolution, and centre-cropped to a square (the usual evaluation transform); files with other
extensions than the image ones below are ignored. Everything is decoded once, into memory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nasir.data.images import IMAGENET_NORMALIZATION, ImageSet
from nasir.diagnostics import NasirError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
#: Every ``HOLD_OUT``-th image of a class goes to the test split of a folder without train/ and val/.
HOLD_OUT = 10


def load_imagefolder(folder: Path, resolution: int) -> tuple[ImageSet, ImageSet, tuple[str, ...]]:
    """Train set, test set and class names of the image folder ``folder``."""
    if not folder.is_dir():
        raise NasirError(f"{folder}: no such folder", hint="give a folder with one sub-folder of images per class")
    test_dir = next((folder / n for n in ("val", "test") if (folder / n).is_dir()), None)
    if (folder / "train").is_dir() and test_dir is not None:
        classes = _classes(folder / "train")
        unknown = sorted(set(_classes(test_dir)) - set(classes))
        if unknown:
            raise NasirError(f"{test_dir / unknown[0]}: a class that {folder / 'train'} does not have")
        train = [(p, y) for y, c in enumerate(classes) for p in _images(folder / "train" / c)]
        test = [(p, y) for y, c in enumerate(classes) if (test_dir / c).is_dir() for p in _images(test_dir / c)]
    else:
        classes = _classes(folder)
        train, test = [], []
        for y, c in enumerate(classes):
            for i, p in enumerate(_images(folder / c)):
                (test if i % HOLD_OUT == HOLD_OUT - 1 else train).append((p, y))
    image = _pillow()
    return _decode(train, resolution, image), _decode(test, resolution, image), classes


def _classes(folder: Path) -> tuple[str, ...]:
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise NasirError(f"{folder}: no class folders", hint="put the images of each class in a sub-folder named after it")
    return classes


def _images(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS)
    if not found:
        raise NasirError(f"{folder}: no images (looked for {', '.join(EXTENSIONS)})")
    return found


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise NasirError("reading an image folder needs Pillow", hint="pip install 'nasir[data]'") from None
    return Image


def _decode(items: list[tuple[Path, int]], resolution: int, image) -> ImageSet:
    pixels = torch.empty(len(items), 3, resolution, resolution, dtype=torch.uint8)
    for i, (path, _) in enumerate(items):
        try:
            with image.open(path) as img:
                rgb = _square(img.convert("RGB"), resolution, image)
                data = rgb.tobytes()
        except (OSError, ValueError, image.DecompressionBombError) as e:
            raise NasirError(f"{path}: not an image Pillow can read ({str(e)[:200]})") from None
        pixels[i] = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(resolution, resolution, 3).permute(2, 0, 1)
    labels = torch.tensor([y for _, y in items], dtype=torch.int64)
    return ImageSet(pixels, labels, IMAGENET_NORMALIZATION)


def _square(img, resolution: int, image):
    """Shorter side to ``resolution`` (bilinear), then the centred square."""
    w, h = img.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, image.Resampling.BILINEAR)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))
