"""Writers of tiny datasets in the real on-disk formats of the CIFAR releases and image folders.

The CIFAR python batches were pickled by Python 2 (protocol 2): their byte strings are ``STRING``
opcodes and their arrays are rebuilt by ``numpy.core.multiarray._reconstruct``. ``Py2Pickler``
writes the same opcodes from Python 3, so the tests read what the official files hold.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest
import torch

np = pytest.importorskip("numpy")

RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: bytes as (SHORT_)BINSTRING, numpy's rebuilder under its old name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None) -> None:
        if obj is RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj, path: Path) -> None:
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def random_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def random_labels(n: int, classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


#: images per file of the tiny releases
PER_FILE = 3


def write_cifar(root: Path, name: str, binary: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A tiny release of ``name`` ("cifar10"/"cifar100") in its real layout under ``root``; returns
    the (images, labels) written per split, in file order."""
    classes = 10 if name == "cifar10" else 100
    if name == "cifar10":
        files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        folder = root / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py")
    else:
        files = {"train": ["train"], "test": ["test"]}
        folder = root / ("cifar-100-binary" if binary else "cifar-100-python")
    folder.mkdir(parents=True)
    written = {}
    seed = 0
    for split, names in files.items():
        xs, ys = [], []
        for fname in names:
            seed += 1
            x, y = random_images(PER_FILE, seed), random_labels(PER_FILE, classes, seed)
            coarse = (y // 5 + 3) % 20  # any coarse labels: the reader must take the fine ones
            if binary:
                heads = [y.view(-1, 1)] if name == "cifar10" else [coarse.view(-1, 1), y.view(-1, 1)]
                rows = torch.cat([*(h.to(torch.uint8) for h in heads), x.reshape(PER_FILE, -1)], dim=1)
                (folder / f"{fname}.bin").write_bytes(rows.numpy().tobytes())
            else:
                batch = {b"batch_label": f"{fname} of 1".encode(), b"data": x.reshape(PER_FILE, -1).numpy(),
                         b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(PER_FILE)]}
                if name == "cifar10":
                    batch[b"labels"] = y.tolist()
                else:
                    batch[b"fine_labels"] = y.tolist()
                    batch[b"coarse_labels"] = coarse.tolist()
                py2_pickle(batch, folder / fname)
            xs.append(x)
            ys.append(y)
        written[split] = (torch.cat(xs), torch.cat(ys))
    return written
