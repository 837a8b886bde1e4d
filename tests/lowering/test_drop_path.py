"""Drop path (DARTS' regularizer of evaluation networks): per-sample masks, scaling, eval identity."""

import pytest
import torch
from torch import nn

from nasir.runtime import DropPath, set_drop_path


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    torch.manual_seed(0)
    path = DropPath(0.5).train()
    y = path(torch.ones(256, 3, 4, 4))
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()
    assert 0.3 < (per_sample[:, 0] == 0).float().mean().item() < 0.7


def test_drop_path_is_the_identity_in_eval_mode_and_at_zero():
    x = torch.randn(8, 3, 4, 4)
    assert torch.equal(DropPath(0.7).eval()(x), x)
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_set_drop_path_reaches_every_path_and_checks_the_range():
    net = nn.Sequential(DropPath(), nn.Sequential(nn.ReLU(), DropPath()))
    assert set_drop_path(net, 0.2) == 2
    assert [m.drop_prob for m in net.modules() if isinstance(m, DropPath)] == [0.2, 0.2]
    with pytest.raises(ValueError, match="drop path"):
        set_drop_path(net, 1.0)
