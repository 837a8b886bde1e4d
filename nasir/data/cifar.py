"""CIFAR-10 and CIFAR-100 from the official releases (https://www.cs.toronto.edu/~kriz/cifar.html),
unpacked in a local folder; nothing is downloaded.

Both versions of each release are read:

* python version (``cifar-10-batches-py``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``;
  ``cifar-100-python``: ``train``, ``test``): pickled dicts with ``b'data'`` (uint8 ``[N, 3072]``,
  the red, green and blue planes of each 32 x 32 image, rows first) and ``b'labels'`` (CIFAR-100:
  ``b'fine_labels'``). A pickle can run any code while it is read, so these are read with a
  restricted unpickler: it rebuilds only dicts, lists, strings, bytes, numbers and the numpy
  arrays of the real files, and refuses every other global with a ``NasirError``;
* binary version (``cifar-10-batches-bin``: ``data_batch_1.bin`` .. ``data_batch_5.bin``,
  ``test_batch.bin``; ``cifar-100-binary``: ``train.bin``, ``test.bin``): records of one label byte
  (CIFAR-100: a coarse then a fine label byte) and 3072 pixel bytes, read with numpy.

``DIR`` may be the folder that holds the unpacked release folder or the release folder itself.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nasir.data.images import CIFAR10_NORMALIZATION, CIFAR100_NORMALIZATION, ImageSet, Normalization
from nasir.diagnostics import NasirError

PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class Release:
    """File layout of one CIFAR release, both versions."""

    title: str
    classes: int
    normalization: Normalization
    python_folder: str
    python_files: dict[str, tuple[str, ...]]
    label_key: bytes
    binary_folder: str
    binary_files: dict[str, tuple[str, ...]]
    #: label bytes before the pixels of a binary record; the last one is the label used
    label_bytes: int


RELEASES = {
    "cifar10": Release(
        "CIFAR-10", 10, CIFAR10_NORMALIZATION,
        "cifar-10-batches-py", {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        b"labels",
        "cifar-10-batches-bin",
        {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}, 1),
    "cifar100": Release(
        "CIFAR-100", 100, CIFAR100_NORMALIZATION,
        "cifar-100-python", {"train": ("train",), "test": ("test",)}, b"fine_labels",
        "cifar-100-binary", {"train": ("train.bin",), "test": ("test.bin",)}, 2),
}


def load_cifar(name: str, folder: Path) -> tuple[ImageSet, ImageSet]:
    """Train and test sets of release ``name`` ("cifar10" or "cifar100") found under ``folder``."""
    release = RELEASES[name]
    found = _locate(release, folder)
    if found is None:
        raise NasirError(
            f"no {release.title} release in {folder}: expected {folder / release.python_folder}/ with "
            f"{', '.join(_all_files(release.python_files))} (python version) or {folder / release.binary_folder}/ with "
            f"{', '.join(_all_files(release.binary_files))} (binary version)",
            hint="download and unpack the release from https://www.cs.toronto.edu/~kriz/cifar.html; nasir never downloads")
    where, binary = found
    files = release.binary_files if binary else release.python_files
    missing = [f for f in _all_files(files) if not (where / f).is_file()]
    if missing:
        raise NasirError(f"{where}: {release.title} file(s) {', '.join(missing)} missing "
                         f"(expected {', '.join(_all_files(files))})", hint="unpack the whole release again")
    read = _read_binary if binary else _read_python
    splits = []
    for split in ("train", "test"):
        parts = [read(where / f, release) for f in files[split]]
        pixels = torch.cat([p for p, _ in parts])
        labels = torch.cat([y for _, y in parts])
        splits.append(ImageSet(pixels.view(-1, 3, 32, 32), labels, release.normalization))
    return splits[0], splits[1]


def _all_files(files: dict[str, tuple[str, ...]]) -> list[str]:
    return [*files["train"], *files["test"]]


def _locate(release: Release, folder: Path) -> tuple[Path, bool] | None:
    """(folder holding the files, binary version?) of the first layout found."""
    if not folder.is_dir():
        raise NasirError(f"{folder}: no such folder", hint=f"give the folder that holds {release.python_folder}/ "
                         f"or {release.binary_folder}/")
    for where, binary in ((folder / release.python_folder, False), (folder / release.binary_folder, True)):
        if where.is_dir():
            return where, binary
    for binary, files in ((False, release.python_files), (True, release.binary_files)):
        if (folder / files["train"][0]).is_file():
            return folder, binary
    return None


def _numpy():
    try:
        import numpy
    except ImportError:
        raise NasirError("reading CIFAR needs numpy", hint="pip install 'nasir[data]'") from None
    return numpy


# -- python version -------------------------------------------------------------------------------
class RefusedPickle(pickle.UnpicklingError):
    """The pickle asks for something beyond plain data and numpy arrays."""


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds plain data (dicts, lists, tuples, strings, bytes, numbers) and numpy arrays, the
    content of the CIFAR python pickles; any other global is refused before it is looked up."""

    def __init__(self, file: io.BufferedIOBase):
        super().__init__(file, encoding="bytes")  # the files were written by Python 2
        np = _numpy()
        reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array rebuilder, wherever it lives
        self._allowed = {("numpy.core.multiarray", "_reconstruct"): reconstruct,
                         ("numpy._core.multiarray", "_reconstruct"): reconstruct,
                         ("numpy", "ndarray"): np.ndarray,
                         ("numpy", "dtype"): np.dtype}

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise RefusedPickle(f"it asks for the global {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("it asks for a persistent object")


def read_pickle(path: Path) -> Any:
    """The object in a pickle of plain data and numpy arrays; a ``NasirError`` for anything else."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except NasirError:
        raise
    except RefusedPickle as e:
        raise NasirError(f"{path}: refusing this pickle: {e}; only numpy arrays and plain data (dicts, lists, "
                         "strings, bytes, numbers) are read, since unpickling anything else can run code",
                         hint="a file of the official CIFAR python version holds nothing else") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError, UnicodeDecodeError) as e:
        raise NasirError(f"{path}: not a CIFAR python batch ({type(e).__name__}: {str(e)[:200]})",
                         hint="use the official python version, or the binary version") from None


def _read_python(path: Path, release: Release) -> tuple[torch.Tensor, torch.Tensor]:
    np = _numpy()
    batch = read_pickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or release.label_key not in batch:
        keys = [*batch][:6] if isinstance(batch, dict) else type(batch).__name__
        raise NasirError(f"{path}: not a {release.title} python batch (expected a dict with b'data' and "
                         f"{release.label_key!r}, found {keys})")
    data, labels = batch[b"data"], batch[release.label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        what = f"a {data.dtype} array of shape {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise NasirError(f"{path}: b'data' should be a uint8 array of shape [N, {PIXELS}], found {what}")
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise NasirError(f"{path}: {release.label_key!r} should be a list of integers")
    return torch.from_numpy(data.copy()), _labels(torch.tensor(labels, dtype=torch.int64), data.shape[0], release, path)


def _labels(labels: torch.Tensor, n: int, release: Release, path: Path) -> torch.Tensor:
    if labels.numel() != n:
        raise NasirError(f"{path}: {n} images but {labels.numel()} labels")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= release.classes):
        raise NasirError(f"{path}: a label lies outside 0..{release.classes - 1}")
    return labels


# -- binary version -------------------------------------------------------------------------------
def _read_binary(path: Path, release: Release) -> tuple[torch.Tensor, torch.Tensor]:
    np = _numpy()
    record = release.label_bytes + PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise NasirError(f"{path}: {raw.size} bytes is not a whole number of {release.title} records "
                         f"({release.label_bytes} label byte(s) + {PIXELS} pixel bytes each)")
    rows = raw.reshape(-1, record)
    labels = torch.from_numpy(rows[:, release.label_bytes - 1].astype(np.int64))
    return torch.from_numpy(rows[:, release.label_bytes:].copy()), _labels(labels, rows.shape[0], release, path)
