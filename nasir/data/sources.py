"""``--data`` sources loaded into an ``ImageData``: train and test sets at the space's resolution."""

from __future__ import annotations

from dataclasses import dataclass

from nasir.data import DataSpec
from nasir.data.images import ImageSet, Normalization, resize
from nasir.diagnostics import NasirError


@dataclass
class ImageData:
    """A dataset in memory: what ``--data`` named, its splits, and its number of classes.

    ``crop_flip`` says whether training uses the standard CIFAR crop and flip by default: yes for
    photos (CIFAR, image folders) and TinyShapes-Hard (whose labels survive them), no for
    TinyShapes, whose generator already varies position and size (and whose results stay what
    they were before datasets were selectable)."""

    spec: str
    train: ImageSet
    test: ImageSet
    classes: int
    crop_flip: bool
    class_names: tuple[str, ...] | None = None


def load(spec: DataSpec, resolution: int | None) -> ImageData:
    if resolution is not None and resolution < 1:
        raise NasirError(f"image resolution {resolution} must be positive")
    if spec.source == "tinyshapes":
        from nasir.data.tinyshapes import CLASSES, load_tiny

        train, test = (ImageSet(resize(x, resolution), y) for x, y in (load_tiny("train"), load_tiny("test")))
        return ImageData(str(spec), train, test, len(CLASSES), crop_flip=False, class_names=CLASSES)
    if spec.source == "tinyshapes-hard":
        return _load_hard(spec, resolution)
    assert spec.folder is not None
    if spec.source in ("cifar10", "cifar100"):
        from nasir.data.cifar import RELEASES, load_cifar

        train, test = load_cifar(spec.source, spec.folder)
        train, test = (ImageSet(resize(s.images, resolution), s.labels, s.normalization) for s in (train, test))
        return ImageData(str(spec), train, test, RELEASES[spec.source].classes, crop_flip=True)
    from nasir.data.imagefolder import load_imagefolder

    train, test, names = load_imagefolder(spec.folder, resolution or 32)
    return ImageData(str(spec), train, test, len(names), crop_flip=True, class_names=names)


def _load_hard(spec: DataSpec, resolution: int | None) -> ImageData:
    """Rendered at ``spec.size``, else natively at the space's resolution (else 32); normalized
    with the per-channel statistics of its first 2000 training images."""
    from nasir.data.tinyshapes_hard import CLASSES, DEFAULT_SIZE, load_hard

    size = spec.size or resolution or DEFAULT_SIZE
    (train, y_train), (test, y_test) = load_hard("train", size), load_hard("test", size)
    pixels = train[:2000].float() / 255
    stats = Normalization(tuple(pixels.mean((0, 2, 3)).tolist()), tuple(pixels.std((0, 2, 3)).tolist()))
    return ImageData(str(spec), ImageSet(resize(train, resolution), y_train, stats),
                     ImageSet(resize(test, resolution), y_test, stats), len(CLASSES), crop_flip=True, class_names=CLASSES)


def space_resolution(graph) -> int | None:
    """The side of the square RGB image the space ``graph`` reads (None if it reads no image map)."""
    shape = graph.body.inputs[0].shape if graph.body.inputs else None
    if not shape or len(shape) != 3:
        return None
    c, h, w = shape
    if c != 3 or h != w:
        raise NasirError(f"the space reads a [{c}, {h}, {w}] input; the datasets give square RGB images [3, N, N]")
    return h


def check_classes(graph, data: ImageData) -> None:
    """The space must give at least one logit per class of the data."""
    shape = graph.body.outputs[0].shape if graph.body.outputs else None
    if shape and len(shape) == 1 and shape[0] < data.classes:
        raise NasirError(f"the space gives {shape[0]} outputs, {data.spec} has {data.classes} classes",
                         hint=f"set the space's class count, e.g. -D classes={data.classes}")
