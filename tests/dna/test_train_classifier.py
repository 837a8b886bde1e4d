"""Teacher training saves its progress and continues from it: killed and continued, it ends bit for
bit where an uninterrupted run ends; a checkpoint of another run is refused."""

from __future__ import annotations

import pytest
import torch

from nasir.dna.errors import DNAError
from nasir.dna.mbconv import BlockSpec, ChainNet, NetSpec
from nasir.dna.train import train_classifier

SPEC = NetSpec([BlockSpec([(3, 2)], 8, 8, 2)], stem=4, classes=3)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 3, 8, 8, generator=g), torch.randint(0, 3, (20,), generator=g)


def _train(checkpoint=None, **kw):
    torch.manual_seed(0)
    net = ChainNet(SPEC)
    losses = train_classifier(net, *_data(), steps=5, batch_size=8, checkpoint=checkpoint, checkpoint_every=2,
                              checkpoint_minutes=0, identity=SPEC.to_json(), **kw)
    return net, losses


def _killed_in_step_4(ckpt, monkeypatch) -> None:
    """A run killed during its fourth step (after its checkpoint of step 2)."""
    real_step = torch.optim.SGD.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    with pytest.raises(KeyboardInterrupt):
        _train(ckpt)
    monkeypatch.undo()


def test_killed_and_continued_equals_uninterrupted(tmp_path, monkeypatch):
    straight, straight_losses = _train()
    ckpt = tmp_path / "teacher.partial.safetensors"
    _killed_in_step_4(ckpt, monkeypatch)
    assert ckpt.is_file()
    torch.manual_seed(7)  # nothing but the checkpoint carries over
    resumed, losses = _train(ckpt)  # continues at step 3, which starts a new epoch
    assert losses == straight_losses
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_another_run_is_refused(tmp_path, monkeypatch):
    ckpt = tmp_path / "teacher.partial.safetensors"
    _killed_in_step_4(ckpt, monkeypatch)
    with pytest.raises(DNAError, match="lr=0.05, this run has 0.1"):
        _train(ckpt, lr=0.1)
