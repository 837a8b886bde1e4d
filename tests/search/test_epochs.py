"""Epochs: the run length, the learning-rate schedules and warm-up, the per-epoch records and their
JSON-lines log (and TensorBoard), and a search killed with SIGKILL that resumes bit for bit."""

from __future__ import annotations

import json
import math
import signal

import pytest
import torch

from nasir.checkpoint import load_checkpoint
from nasir.frontends.elaborate import parse_string
from nasir.lowering import lower
from nasir.search import epoch_log
from nasir.search.darts import SearchConfig, SupernetSearch
from nasir.testing import assert_resumes_after_sigkill

from .test_darts_search import TINY


def _data(n=16):
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(2 * n, 3, 32, 32, generator=g), torch.randint(0, 10, (2 * n,), generator=g)
    return (x[:n], y[:n]), (x[n:], y[n:])


def _search(**options):
    model = lower(parse_string(TINY), "supernet", seed=0)
    return SupernetSearch(model, SearchConfig(batch_size=4, **options))


def test_an_epoch_is_a_pass_over_the_weight_half_and_each_is_logged(tmp_path):
    search = _search(epochs=3, lr=0.1, lr_min=0.01)
    log = search.run(*_data(), log=tmp_path / "run.jsonl", progress=False)
    assert search.steps_per_epoch == 4 and log.step == 12
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(log.records)) and [r["epoch"] for r in lines] == [1, 2, 3]
    for r in lines:
        assert set(r) == {"epoch", "step", "lr", "train_loss", "train_acc", "valid_loss", "valid_acc", "valid_images",
                          "arch_entropy", "time", "arch"}
        assert r["step"] == 4 * r["epoch"] and r["valid_images"] == 16 and 0 <= r["valid_acc"] <= 1
        assert 0 < r["arch_entropy"] <= math.log(2) and set(r["arch"]) == {"y"}
        # cosine per epoch from 0.1 to 0.01 over 3 epochs, as torch's CosineAnnealingLR steps it
        e = r["epoch"] - 1
        assert r["lr"] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * e / 3)) / 2)
    assert lines[0]["train_loss"] == pytest.approx(sum(log.losses[:4]) / 4)


def test_a_run_that_ends_inside_an_epoch_logs_a_partial_one(tmp_path):
    log = _search(steps=6).run(*_data(), log=tmp_path / "run.jsonl", progress=False)
    assert [(r["epoch"], r.get("partial", False), r["valid_images"]) for r in log.records] == [(1, False, 16),
                                                                                             (2, True, 8)]


def test_linear_schedule_and_architecture_warm_up():
    search = _search(epochs=2, schedule="linear", lr=0.4, lr_min=0.0, warmup_epochs=1)
    alpha = search.model.arch_parameters()[0]
    start = alpha.detach().clone()
    lrs = []
    real_step = search.step

    def step(train, val):
        lrs.append(search.w_opt.param_groups[0]["lr"])
        if search.log.step == 4:  # the end of the warm-up: the architecture has not moved
            assert torch.equal(alpha, start)
        return real_step(train, val)

    search.step = step
    search.run(*_data(), progress=False)
    assert lrs == pytest.approx([0.4 * (1 - s / 8) for s in range(8)])
    assert not torch.equal(alpha, start)


def test_tensorboard_gets_every_numeric_entry_when_it_is_installed(tmp_path, monkeypatch):
    scalars = []

    class Writer:
        def add_scalar(self, tag, value, step):
            scalars.append((tag, step))

        def flush(self):
            pass

        def close(self):
            scalars.append(("closed", None))

    folders = []
    monkeypatch.setattr(epoch_log, "_summary_writer", lambda folder: folders.append(folder) or Writer())
    _search(epochs=2).run(*_data(), log=tmp_path / "run.jsonl", progress=False)
    assert folders == [tmp_path / "run.tb"]
    assert ("search/valid_acc", 2) in scalars and ("search/lr", 1) in scalars and scalars[-1] == ("closed", None)
    assert not any(tag in ("search/arch", "search/epoch") for tag, _ in scalars)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
def test_a_search_killed_with_sigkill_resumes_bit_for_bit(tmp_path):
    pytest.importorskip("numpy")  # the CIFAR reader
    from ..data._formats import write_cifar

    write_cifar(tmp_path / "cifar", "cifar10", binary=False)  # 15 training images: 3 steps of 2 per epoch
    space = tmp_path / "tiny.nas"
    space.write_text(TINY)
    args = ["search", str(space), "--data", f"cifar10:{tmp_path / 'cifar'}", "--epochs", "3", "--batch-size", "2",
            "--checkpoint-every", "1"]
    # killed in the second epoch; weights, alphas, BatchNorm statistics, both optimizers' states compared
    assert_resumes_after_sigkill(args, tmp_path, slowed="nasir.search.darts:SupernetSearch.step", kill_at=4, steps=9,
                                 epochs=3)


def test_a_checkpoint_of_an_older_version_resumes_without_per_step_accuracies(tmp_path):
    """Checkpoints written before epochs existed have no accuracies, records or time: they resume,
    and the epoch they end in is logged with the accuracies there are."""
    from nasir.checkpoint import save_checkpoint
    from nasir.diagnostics import NasirError

    ck = tmp_path / "ck.safetensors"
    _search(steps=2, save_every=1).run(*_data(), checkpoint=ck, progress=False)
    tensors, meta = load_checkpoint(ck)
    old = {k: v for k, v in meta.items() if k not in ("accuracies", "records", "seconds")}
    save_checkpoint(ck, tensors, old)
    log = _search(steps=6).run(*_data(), checkpoint=ck, resume=True, progress=False)
    assert log.accuracies[:2] == [None, None] and log.records[0]["train_acc"] == sum(log.accuracies[2:4]) / 2
    with pytest.raises(NasirError, match="Nesterov momentum"):
        _search(nesterov=True, momentum=0.0)
