"""``--data`` on the commands that train or evaluate: real formats from a folder, clear errors, resume checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nasir.cli import main

if importlib.util.find_spec("numpy") is None:
    pytest.skip("reading CIFAR needs numpy", allow_module_level=True)

from ..data._formats import write_cifar  # noqa: E402

#: a two-candidate space on 32 x 32 images: a step takes milliseconds
SPACE = """network tiny(classes = 10) {
  input x: [3, 32, 32]
  y = one_of { a: conv(4, 3, 2)  b: conv(4, 1, 2) }(x)
  z = (relu -> global_avg_pool -> linear(classes))(y)
  output z
}
"""
#: a conv chain DANCE can gate
CHAIN = """network chain(classes = 10) {
  input x: [3, 32, 32]
  h = (conv(8, 3, 2) -> bn -> relu -> conv(8, 3, 2) -> bn -> relu -> global_avg_pool -> linear(classes))(x)
  output h
}
"""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cifar(tmp_path) -> Path:
    write_cifar(tmp_path / "cifar", "cifar10", binary=False)
    return tmp_path / "cifar"


def _space(tmp_path, text=SPACE) -> Path:
    path = tmp_path / "space.nas"
    path.write_text(text)
    return path


def test_search_on_cifar_resumes_and_refuses_other_data(capsys, tmp_path, cifar):
    ck = tmp_path / "ck.safetensors"
    args = ["search", _space(tmp_path), "--data", f"cifar10:{cifar}", "--cutout", "4", "--batch-size", "4",
            "--checkpoint", ck]
    code, out, err = run(capsys, *args, "--steps", "2")
    assert code == 0, err
    assert "2 steps" in out and f"on 3 cifar10:{cifar} images" in out
    code, out, err = run(capsys, *args, "--steps", "3", "--resume")
    assert code == 0 and "3 steps" in out, err
    code, _, err = run(capsys, *args[:2], "--data", "tinyshapes", *args[4:], "--steps", "4", "--resume")
    assert code == 2 and "checkpoint was made with data=" in err


@pytest.mark.parametrize("options, message", [
    (["--data", "cifar10:{missing}"], "no such folder"),
    (["--data", "cifar100:{cifar}"], "no CIFAR-100 release"),
    (["--data", "svhn:/x"], "unknown data source 'svhn'"),
    (["--cutout", "-1"], "--cutout -1"),
    (["--train-portion", "1"], "strictly between 0 and 1"),
    (["--workers", "-2"], "--workers -2"),
    (["--batch-size", "64", "--data", "cifar10:{cifar}"], "fewer than one batch of 64"),
])
def test_search_data_errors_exit_2(capsys, tmp_path, cifar, options, message):
    options = [o.format(missing=tmp_path / "missing", cifar=cifar) for o in options]
    code, _, err = run(capsys, "search", _space(tmp_path), "--steps", "1", *options)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_space_with_too_few_outputs_for_the_classes(capsys, tmp_path):
    root = tmp_path / "c100"
    write_cifar(root, "cifar100", binary=True)
    code, _, err = run(capsys, "search", _space(tmp_path), "--steps", "1", "--data", f"cifar100:{root}")
    assert code == 2 and "-D classes=100" in err
    code, _, err = run(capsys, "search", _space(tmp_path), "-D", "classes=100", "--steps", "1", "--batch-size", "1",
                       "--data", f"cifar100:{root}")
    assert code == 0, err


def test_dance_trains_and_extracts_on_the_checkpoints_data(capsys, tmp_path, cifar):
    ck = tmp_path / "dance.safetensors"
    train = ["dance", "train", _space(tmp_path, CHAIN), "--stage1-steps", "1", "--stage2-steps", "1", "--batch-size", "4",
             "--checkpoint", ck, "--no-progress"]
    code, out, err = run(capsys, *train, "--data", f"cifar10:{cifar}")
    assert code == 0, err
    code, out, err = run(capsys, "dance", "extract", ck, "--budget", "0.5", "--no-progress")  # reads cifar10 again
    assert code == 0 and "subnet at budget 0.5" in out, err
    code, _, err = run(capsys, "dance", "extract", ck, "--budget", "0.5", "--data", f"cifar10:{tmp_path / 'gone'}")
    assert code == 2 and "no such folder" in err
    code, _, err = run(capsys, *train, "--resume")  # tinyshapes now
    assert code == 2 and "checkpoint was made with data=" in err


def test_dna_commands_take_data(capsys, tmp_path):
    for argv in (["dna", "train", "std/mbconv.nas", "--workdir", tmp_path / "w"], ["dna", "plus", "--workdir", tmp_path / "p"]):
        code, _, err = run(capsys, *argv, "--data", f"imagefolder:{tmp_path / 'none'}")
        assert code == 2 and "no such folder" in err
