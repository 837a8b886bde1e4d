"""CIFAR-10/100 releases, python and binary versions, read back exactly; bad files refused."""

from __future__ import annotations

import pickle

import pytest
import torch

from nasir.data import load_data
from nasir.data.cifar import read_pickle
from nasir.data.images import CIFAR10_NORMALIZATION, CIFAR100_NORMALIZATION
from nasir.diagnostics import NasirError

from ._formats import PER_FILE, py2_pickle, write_cifar


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
def test_release_reads_back_exactly(tmp_path, name, binary):
    written = write_cifar(tmp_path, name, binary)
    data = load_data(f"{name}:{tmp_path}")
    assert data.classes == (10 if name == "cifar10" else 100) and data.crop_flip
    for split, (x, y) in written.items():
        got = getattr(data, split)
        assert got.images.dtype == torch.uint8 and torch.equal(got.images, x) and torch.equal(got.labels, y)
        assert got.normalization == (CIFAR10_NORMALIZATION if name == "cifar10" else CIFAR100_NORMALIZATION)
    assert len(data.train) == (5 if name == "cifar10" else 1) * PER_FILE


def test_release_folder_itself_and_resolution(tmp_path):
    written = write_cifar(tmp_path, "cifar10", binary=True)
    data = load_data(f"cifar10:{tmp_path / 'cifar-10-batches-bin'}", resolution=16)
    assert data.train.images.shape == (5 * PER_FILE, 3, 16, 16) and data.train.images.dtype == torch.uint8
    torch.testing.assert_close(data.test.images.float().mean(), written["test"][0].float().mean(), atol=2.0, rtol=0)


def test_normalized_images_use_the_cifar_statistics(tmp_path):
    written = write_cifar(tmp_path, "cifar10", binary=False)
    x, y = load_data(f"cifar10:{tmp_path}").test.normalized()
    mean = torch.tensor(CIFAR10_NORMALIZATION.mean).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_NORMALIZATION.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (written["test"][0].float() / 255 - mean) / std)
    assert torch.equal(y, written["test"][1])


def test_missing_release_names_the_expected_files(tmp_path):
    with pytest.raises(NasirError) as e:
        load_data(f"cifar10:{tmp_path}")
    text = e.value.render()
    assert "cifar-10-batches-py" in text and "data_batch_5" in text and "test_batch.bin" in text
    assert "never downloads" in text
    with pytest.raises(NasirError, match="no such folder"):
        load_data(f"cifar100:{tmp_path / 'absent'}")


def test_missing_file_is_named(tmp_path):
    write_cifar(tmp_path, "cifar100", binary=False)
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(NasirError, match=r"file\(s\) test missing"):
        load_data(f"cifar100:{tmp_path}")


def test_truncated_binary_file_is_refused(tmp_path):
    write_cifar(tmp_path, "cifar10", binary=True)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(NasirError, match="not a whole number of CIFAR-10 records"):
        load_data(f"cifar10:{tmp_path}")


class _RunsCode:
    """Pickles to a call of ``os.system``: what a malicious 'batch' would do on a plain unpickler."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py"
    write_cifar(tmp_path, "cifar10", binary=False)
    evil = {b"data": _RunsCode(f"touch {marker}"), b"labels": [0]}
    py2_pickle(evil, path / "data_batch_1")
    with pytest.raises(NasirError, match=r"refusing this pickle: it asks for the global (posix|os|nt)\.system"):
        load_data(f"cifar10:{tmp_path}")
    assert not marker.exists()
    # the same file is dangerous: a plain unpickler runs the command
    with open(path / "data_batch_1", "rb") as f:
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",  # a builtin called by REDUCE
    pickle.dumps(getattr, protocol=4),  # STACK_GLOBAL
    b"(cos\nsystem\nS'true'\no.",  # INST/OBJ path
    b"\x80\x02P0\n.",  # a persistent id
], ids=["reduce", "stack-global", "obj", "persistent-id"])
def test_restricted_unpickler_refuses_every_global_path(tmp_path, payload):
    path = tmp_path / "batch"
    path.write_bytes(payload)
    with pytest.raises(NasirError, match="refusing this pickle"):
        read_pickle(path)


def test_plain_data_of_the_wrong_shape_is_refused(tmp_path):
    np = pytest.importorskip("numpy")
    write_cifar(tmp_path, "cifar10", binary=False)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    for bad, message in [([1, 2, 3], "not a CIFAR-10 python batch"),
                         ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 array"),
                         ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside 0..9"),
                         ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels")]:
        py2_pickle(bad, path)
        with pytest.raises(NasirError, match=message):
            load_data(f"cifar10:{tmp_path}")
    path.write_bytes(b"\x80\x02}q\x00")  # cut short
    with pytest.raises(NasirError, match="not a CIFAR python batch"):
        load_data(f"cifar10:{tmp_path}")
