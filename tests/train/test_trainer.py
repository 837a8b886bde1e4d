"""The trainer (``nasir.train.trainer``): recipes as defaults, the schedules (learning rate per epoch
or per step, drop path rising linearly), the auxiliary loss, the epoch records, exact resume after an
interruption, refused checkpoints, autocast and channels-last."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasir.checkpoint import load_checkpoint, save_checkpoint
from nasir.data.images import ImageSet
from nasir.diagnostics import NasirError
from nasir.runtime import AuxOutput, DropPath
from nasir.train.recipes import RECIPES, recipe_for
from nasir.train.trainer import TrainConfig, Trainer


class AuxNet(nn.Module):
    """A network in the evaluation form's contract: drop path, and an auxiliary head whose output
    comes beside the logits in training mode only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.drop = DropPath()
        self.head = nn.Linear(4, 10)
        self.aux = nn.Linear(4, 10)

    def forward(self, x):
        h = self.drop(torch.relu(self.conv(x))).mean((2, 3))
        return AuxOutput(self.head(h), self.aux(h)) if self.training else self.head(h)


def _data(n=16):
    g = torch.Generator().manual_seed(5)
    return ((torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)),
            (torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)))


def _trainer(recipe="darts", **options):
    torch.manual_seed(0)
    config = TrainConfig.for_recipe(recipe, **{"batch_size": 4, "cutout": 0, **options})
    return Trainer(AuxNet(), config, network="auxnet()", arch={})


def test_the_recipes_are_the_papers_and_apply_by_space():
    darts = TrainConfig.for_recipe("darts", epochs=600)
    assert (darts.batch_size, darts.epochs, darts.lr, darts.lr_min, darts.schedule) == (96, 600, 0.025, 0.0, "epoch")
    assert (darts.momentum, darts.nesterov, darts.weight_decay, darts.grad_clip) == (0.9, False, 3e-4, 5.0)
    assert (darts.cutout, darts.drop_path, darts.auxiliary_weight) == (16, 0.2, 0.4)
    nb201 = TrainConfig.for_recipe("nb201")
    assert (nb201.batch_size, nb201.epochs, nb201.lr, nb201.schedule, nb201.nesterov, nb201.weight_decay) == \
        (256, 200, 0.1, "step", True, 5e-4)
    assert (nb201.drop_path, nb201.auxiliary_weight, nb201.cutout) == (0.0, 0.0, 0)
    assert TrainConfig.for_recipe("darts", lr=0.1).lr == 0.1
    assert [recipe_for(n) for n in ("darts", "nb201", "resnet18", "mine")] == ["darts", "nb201", "nb201", "nb201"]
    assert set(RECIPES) == {"darts", "nb201"}
    with pytest.raises(NasirError, match="unknown training recipe 'adam'"):
        TrainConfig.for_recipe("adam")


def test_drop_path_rises_linearly_per_epoch_and_the_learning_rate_follows_the_cosine(tmp_path):
    trainer = _trainer(epochs=4, lr=0.1, lr_min=0.01)
    seen = []
    real_step = trainer.train_step

    def step(batch):
        seen.append((trainer.model.drop.drop_prob, trainer.optimizer.param_groups[0]["lr"]))
        return real_step(batch)

    trainer.train_step = step
    log = trainer.run(*_data(), log=tmp_path / "run.jsonl", progress=False)
    assert trainer.steps_per_epoch == 4 and log.step == 16
    for s, (drop, lr) in enumerate(seen):
        e = s // 4
        assert drop == pytest.approx(0.2 * e / 4)
        assert lr == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * e / 4)) / 2)
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(log.records)) and [r["epoch"] for r in lines] == [1, 2, 3, 4]
    for r in lines:
        assert set(r) == {"epoch", "step", "lr", "drop_path", "train_loss", "train_acc", "test_loss", "test_acc",
                          "test_images", "time"}
        assert r["test_images"] == 8 and r["drop_path"] == pytest.approx(0.2 * (r["epoch"] - 1) / 4)
    assert lines[1]["train_loss"] == pytest.approx(sum(log.losses[4:8]) / 4)
    assert (lines[-1]["test_loss"], lines[-1]["test_acc"]) == trainer.evaluate(ImageSet.of(_data()[1]))


def test_the_per_step_schedule_and_a_partial_epoch():
    trainer = _trainer("nb201", steps=6, lr=0.4, lr_min=0.0)
    lrs = []
    real_step = trainer.train_step
    trainer.train_step = lambda batch: (lrs.append(trainer.optimizer.param_groups[0]["lr"]), real_step(batch))[1]
    log = trainer.run(*_data(), progress=False)
    assert lrs == pytest.approx([0.2 * (1 + math.cos(math.pi * s / 6)) for s in range(6)])
    assert [(r["epoch"], r.get("partial", False), r["test_images"]) for r in log.records] == [(1, False, 8), (2, True, 8)]
    assert trainer.model.drop.drop_prob == 0.0  # the nb201 recipe has no drop path


def test_the_auxiliary_head_adds_its_weighted_loss():
    trainer = _trainer()
    logits, aux, y = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    expected = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    assert torch.allclose(trainer.loss(AuxOutput(logits, aux), y), expected)
    assert torch.equal(trainer.loss(logits, y), F.cross_entropy(logits, y))
    for weight, moves in ((0.4, True), (0.0, False)):
        trainer = _trainer(steps=1, auxiliary_weight=weight, weight_decay=0.0)
        before = trainer.model.aux.weight.detach().clone()
        trainer.run(*_data(), progress=False)
        assert (not torch.equal(before, trainer.model.aux.weight)) == moves


def test_a_run_interrupted_mid_epoch_resumes_bit_for_bit(tmp_path):
    """Drop path draws random numbers every step; they, the batches and the schedules are replayed."""
    straight = _trainer(epochs=3, save_every=1)
    straight.run(*_data(), checkpoint=tmp_path / "a.safetensors", progress=False)
    broken = _trainer(epochs=3, save_every=1)
    real_step = broken.train_step

    def step(batch):
        if broken.log.step == 6:
            raise KeyboardInterrupt
        return real_step(batch)

    broken.train_step = step
    with pytest.raises(KeyboardInterrupt):
        broken.run(*_data(), checkpoint=tmp_path / "b.safetensors", progress=False)
    assert load_checkpoint(tmp_path / "b.safetensors")[1]["step"] == 6
    resumed = _trainer(epochs=3, save_every=1)
    log = resumed.run(*_data(), checkpoint=tmp_path / "b.safetensors", resume=True, progress=False)
    assert log.resumed_from == 6 and log.step == 12
    (a, meta_a), (b, meta_b) = load_checkpoint(tmp_path / "a.safetensors"), load_checkpoint(tmp_path / "b.safetensors")
    assert sorted(a) == sorted(b)
    for key in a:  # weights and momentum buffers
        assert torch.equal(a[key], b[key]), key
    assert meta_a["losses"] == meta_b["losses"]
    assert [{k: v for k, v in r.items() if k != "time"} for r in meta_a["records"]] == \
        [{k: v for k, v in r.items() if k != "time"} for r in meta_b["records"]]


def test_a_checkpoint_of_another_network_or_run_is_refused_before_anything_changes(tmp_path):
    path = tmp_path / "run.safetensors"
    _trainer(steps=2, save_every=1).run(*_data(), checkpoint=path, progress=False)
    for trainer, message in (
            (Trainer(AuxNet(), TrainConfig.for_recipe("darts", steps=4, batch_size=4, cutout=0), network="other()"),
             "trained another network"),
            (Trainer(AuxNet(), TrainConfig.for_recipe("darts", steps=4, batch_size=4, cutout=0), network="auxnet()",
                     arch={"y": "a"}), "trained another architecture"),
            (_trainer(steps=4, lr=0.5), "made with lr=0.025"),
            (_trainer(steps=1), "at step 2")):
        before = trainer.model.conv.weight.detach().clone()
        with pytest.raises(NasirError, match=message):
            trainer.run(*_data(), checkpoint=path, resume=True, progress=False)
        assert torch.equal(before, trainer.model.conv.weight)
    tensors, meta = load_checkpoint(path)
    save_checkpoint(path, tensors, {**meta, "losses": ["x", 1.0]})
    with pytest.raises(NasirError, match="invalid metadata at losses"):
        _trainer(steps=4).run(*_data(), checkpoint=path, resume=True, progress=False)
    save_checkpoint(path, tensors, {**meta, "scaler": {"scale": 1.0}})
    with pytest.raises(NasirError, match="has a gradient-scaler state"):
        _trainer(steps=4).run(*_data(), checkpoint=path, resume=True, progress=False)


def test_bf16_autocast_trains_on_the_cpu_and_fp16_is_refused_there():
    trainer = _trainer(steps=2, amp="bf16")
    log = trainer.run(*_data(), progress=False)
    assert log.step == 2 and all(math.isfinite(v) for v in log.losses)
    assert trainer.model.conv.weight.dtype == torch.float32  # autocast, not a bf16 model
    with pytest.raises(NasirError, match="--amp fp16 needs a CUDA device"):
        _trainer(amp="fp16")
    with pytest.raises(NasirError, match="unknown autocast type 'fp8'"):
        _trainer(amp="fp8")


def test_channels_last_trains_the_same_network():
    plain, nhwc = _trainer(steps=3), _trainer(steps=3, channels_last=True)
    plain.run(*_data(), progress=False)
    nhwc.run(*_data(), progress=False)
    assert nhwc.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.model.parameters(), nhwc.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_compiled_training_keeps_its_graph_as_drop_path_rises_and_matches_eager():
    """The probability is a tensor: epochs 2 to 4 (0.05, 0.1, 0.15) share one graph; only drop path
    switching on after epoch 1 (probability 0) compiles a second one."""
    from torch._dynamo.utils import counters

    eager, compiled = _trainer(epochs=4), _trainer(epochs=4, compile="eager")
    torch.compiler.reset()
    counters.clear()
    eager.run(*_data(), progress=False)
    compiled.run(*_data(), progress=False)
    assert compiled.drop_prob == pytest.approx(0.15)
    assert counters["stats"]["unique_graphs"] == 2
    for a, b in zip(eager.model.parameters(), compiled.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
