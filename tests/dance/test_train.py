"""Three-stage training: losses, resume after a kill, corrupt checkpoints, baselines."""

from __future__ import annotations

import pytest
import torch

from nasir.dance.baselines import METHODS, masks_for
from nasir.dance.errors import DanceError
from nasir.dance.gated import GatedNetwork, count_parameters
from nasir.dance.losses import LossWeights, dance_loss, gate_terms
from nasir.dance.train import DanceConfig, DanceTrainer, accuracy, network_from_checkpoint, recalibrate_bn


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _config(**kw):
    base = dict(stage1_steps=2, stage2_steps=2, stage3_steps=1, batch_size=8, samples=2, save_every=1)
    base.update(kw)
    return DanceConfig(**base)


def test_loss_terms_are_finite_and_differentiable(gated_resnet):
    net = GatedNetwork(gated_resnet, seed=0)
    net.set_mode("sample")
    x, y = _data(8)
    net(x)
    first = net.last_masks()
    out = net(x)
    loss, parts = dance_loss(out, y, net, LossWeights(), step=5, previous={g: [m] for g, m in first.items()})
    loss.backward()
    assert torch.isfinite(loss)
    assert set(parts) >= {"ce", "sparsity", "diversity", "correlation", "stability"}
    assert 0 <= parts["diversity"] <= 1 and 0 <= parts["stability"] <= 1
    assert net.gate("h.conv").mlp[0].weight.grad is not None
    terms = gate_terms(net)
    assert float(terms["diversity"]) == 0.0  # no earlier sample to compare with


def _final_state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_resume_after_kill_matches_uninterrupted_run(gated_resnet, tmp_path):
    data = _data()
    torch.manual_seed(0)
    ref = GatedNetwork(gated_resnet, seed=0)
    DanceTrainer(ref, _config(), progress=False).train(data)
    expected = _final_state(ref)

    torch.manual_seed(0)
    net = GatedNetwork(gated_resnet, seed=0)
    trainer = DanceTrainer(net, _config(), progress=False)
    calls = {"n": 0}
    real_step2 = trainer._step2

    def killed(x, y):
        if calls["n"] == 1:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_step2(x, y)

    trainer._step2 = killed
    ckpt = tmp_path / "dance.safetensors"
    with pytest.raises(KeyboardInterrupt):
        trainer.train(data, checkpoint=ckpt)
    torch.manual_seed(123)  # a new process: nothing carried over but the checkpoint
    resumed = GatedNetwork(gated_resnet, seed=5)
    log = DanceTrainer(resumed, _config(), progress=False).train(data, checkpoint=ckpt, resume=True)
    assert log.stage == "done" and len(log.history) == 4
    for k, v in expected.items():
        torch.testing.assert_close(resumed.state_dict()[k], v, msg=k)

    rebuilt, config, meta = network_from_checkpoint(ckpt)
    assert meta["stage"] == "done" and config.stage2_steps == 2
    torch.testing.assert_close(rebuilt.state_dict()["gates.h_conv.theta"], expected["gates.h_conv.theta"])
    assert rebuilt.gate("h.conv").tau == pytest.approx(0.1)  # the annealed temperature travels too


def test_corrupt_and_foreign_checkpoints(gated_resnet, tmp_path, make_gated):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="corrupt|unreadable"):
        network_from_checkpoint(bad)
    with pytest.raises(ValueError, match="no checkpoint"):
        network_from_checkpoint(tmp_path / "missing.safetensors")
    from nasir.checkpoint import save_checkpoint

    other = tmp_path / "other.safetensors"
    save_checkpoint(other, {"x": torch.zeros(1)}, {"kind": "something-else"})
    with pytest.raises(ValueError, match="not a DANCE training checkpoint"):
        network_from_checkpoint(other)
    ckpt = tmp_path / "ok.safetensors"
    DanceTrainer(GatedNetwork(gated_resnet, seed=0), _config(stage2_steps=0), progress=False).train(_data(), ckpt)
    vgg = GatedNetwork(make_gated("std/vgg16.nas", cfg=[8, "M", 16, "M"]), seed=0)
    with pytest.raises(ValueError, match="other gate groups"):
        DanceTrainer(vgg, _config(), progress=False).load(ckpt)


def test_bad_config_and_data(gated_resnet):
    net = GatedNetwork(gated_resnet, seed=0)
    with pytest.raises(ValueError):
        DanceTrainer(net, _config(budget_range=(0.9, 0.3)), progress=False)
    with pytest.raises(ValueError):
        DanceTrainer(net, _config(batch_size=64), progress=False).train(_data(16))


def test_stage3_and_baselines_same_budget(gated_resnet):
    data = _data()
    net = GatedNetwork(gated_resnet, seed=0)
    trainer = DanceTrainer(net, _config(budget_range=(0.3, 0.9)), progress=False)
    trainer.train(data)
    full = count_parameters(net.backbone)
    for budget in (0.3, 0.6, 0.9):
        sizes = set()
        for method in METHODS:
            masks = masks_for(method, net, budget, data=data[0], generator=torch.Generator().manual_seed(0))
            assert {g: int(m.sum()) for g, m in masks.items()} == {g: net.gate(g).keep for g in net.groups}
            _, small = net.extract(masks)
            sizes.add(count_parameters(small))
        assert len(sizes) == 1 and sizes.pop() < full
    masks = net.generate(data[0], 0.5)
    graph, small = trainer.finetune(masks, data, steps=2)
    recalibrate_bn(small, data[0], batches=2, batch_size=16)
    assert 0.0 <= accuracy(small, data) <= 1.0
    assert not any(n.kind == "gate" for _, n, _ in graph.walk())


@pytest.mark.parametrize("key, value, message", [
    ("budgets", [1, 2], "budgets"),
    ("step", 10**12, "impossible checkpoint position"),
    ("step", -5, "greater than or equal to 0"),
    ("history", 7, "valid array"),
    ("stage", "stage9", "stage"),
    ("net", {"embed_dim": 10**9, "hidden": 64, "tau": 1.0, "lambdas": [1, 1, 1, 1], "alpha": 0.1, "noise": 1.0},
     "less than or equal to 4096"),
    ("graph", "[" * 100_000, "nests deeper"),
])
def test_damaged_training_checkpoints_are_refused(gated_resnet, tmp_path, key, value, message):
    from nasir.checkpoint import load_checkpoint, save_checkpoint

    ckpt = tmp_path / "dance.safetensors"
    DanceTrainer(GatedNetwork(gated_resnet, seed=0), _config(), progress=False).train(_data(), ckpt)
    tensors, meta = load_checkpoint(ckpt)
    save_checkpoint(ckpt, tensors, {**meta, key: value})
    before = ckpt.read_bytes()
    with pytest.raises(DanceError, match=message):
        network_from_checkpoint(ckpt)
    if key != "graph":  # resuming does not rebuild the graph: the trainer has its own
        with pytest.raises(DanceError, match=message):
            DanceTrainer(GatedNetwork(gated_resnet, seed=0), _config(), progress=False).train(_data(), ckpt, resume=True)
    assert ckpt.read_bytes() == before


def test_resume_needs_the_same_configuration(gated_resnet, tmp_path):
    ckpt = tmp_path / "dance.safetensors"
    DanceTrainer(GatedNetwork(gated_resnet, seed=0), _config(), progress=False).train(_data(), ckpt)
    with pytest.raises(DanceError, match="checkpoint was made with stage2_steps=2"):
        DanceTrainer(GatedNetwork(gated_resnet, seed=0), _config(stage2_steps=5), progress=False).load(ckpt)


def test_cutout_acts_and_workers_change_nothing(gated_resnet):
    """Stage 1-2 batches come from the resumable streams: each batch augmented with its own
    generator, so DataLoader workers prepare exactly the batches the main process would."""
    data = _data()

    def trained(workers=0, **options):
        torch.manual_seed(0)
        net = GatedNetwork(gated_resnet, seed=0)
        DanceTrainer(net, _config(stage1_steps=1, stage2_steps=1, **options), progress=False,
                     workers=workers).train(data)
        return _final_state(net)

    cut = trained(cutout=8)
    for k, v in trained(workers=1, cutout=8).items():
        assert torch.equal(cut[k], v), k
    plain = trained()
    assert any(not torch.equal(cut[k], v) for k, v in plain.items())
    with pytest.raises(DanceError, match="cutout must be >= 0"):
        _config(cutout=-1).validate()
