"""SelectGate: exact C_l sampling, gradients to every gate parameter, budgets, scores."""

from __future__ import annotations

import pytest
import torch

from nasir.dance.gate import BatchRepr, SelectGate, corrcoef_penalty, sample_exact
from nasir.dance.gated import GatedNetwork
from nasir.dance.insert import resolve_keep


@pytest.mark.parametrize("budget", [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("stochastic", [True, False])
def test_exactly_c_l_channels(budget, stochastic):
    gate = SelectGate(20, embed_dim=8, hidden=16, budget=budget)
    x = torch.randn(6, 20, 5, 5)
    for _ in range(3):
        mask = gate(x, torch.randn(8), stochastic=stochastic)
        assert set(mask.detach().unique().tolist()) <= {0.0, 1.0}
        assert int(mask.detach().sum()) == round(budget * 20)


def test_budget_count_and_errors():
    assert resolve_keep(0.5, 64) == 32 and resolve_keep(5, 64) == 5 and resolve_keep(0.001, 64) == 1
    assert resolve_keep(1.0, 7) == 7
    for bad in (0, -0.5, 1.5, 65, float("nan"), "half", True):
        with pytest.raises(ValueError):
            resolve_keep(bad, 64)


def test_sampling_follows_probabilities():
    p = torch.tensor([0.7, 0.2, 0.05, 0.05])
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for _ in range(400):
        counts += sample_exact(p, 1, True, g).detach()
    assert counts[0] > 220 and counts[1] > 40 and counts[0] + counts[1] > counts[2] + counts[3] + 250
    assert torch.equal(sample_exact(p, 2, False).detach(), torch.tensor([1.0, 1.0, 0.0, 0.0]))


def test_gradients_reach_every_gate_parameter(gated_resnet):
    net = GatedNetwork(gated_resnet, embed_dim=8, hidden=16, seed=0)
    net.set_mode("sample")
    out = net(torch.randn(4, 3, 32, 32))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    for name, p in list(net.gates.named_parameters()) + list(net.batch_repr.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    masks = net.last_masks()
    assert set(masks) == set(net.groups)
    for g, m in masks.items():
        assert int(m.sum()) == net.gate(g).keep


def test_coupled_layers_share_the_mask(gated_resnet):
    net = GatedNetwork(gated_resnet, seed=0)
    net.set_mode("sample")
    seen = {}
    sites = [m for m in net.backbone.modules() if type(m).__name__ == "GateSite"]
    hooks = [s.register_forward_hook(lambda mod, inp, out: seen.setdefault(mod.group, []).append(
        (out[0].abs().sum((1, 2)) > 0).float())) for s in sites]
    net(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    residual = seen["h.conv"]
    assert len(residual) == 3
    for alive in residual[1:]:
        assert torch.all(alive <= residual[0] + 0) or torch.equal(alive, residual[0])
    assert int(residual[0].sum()) <= net.gate("h.conv").keep


def test_new_budget_is_one_call(gated_resnet):
    net = GatedNetwork(gated_resnet, seed=0)
    x = torch.randn(8, 3, 32, 32)
    for budget in (0.3, 0.5, 0.9, 3):
        masks = net.generate(x, budget)
        for g, m in masks.items():
            assert int(m.sum()) == resolve_keep(budget, net.groups[g].channels)
    with pytest.raises(ValueError):
        net.generate(x, 2.5)
    with pytest.raises(ValueError):
        net.set_budget({"no-such-group": 0.5})


def test_generation_is_data_aware_and_deterministic(gated_resnet):
    net = GatedNetwork(gated_resnet, seed=0)
    x = torch.randn(16, 3, 32, 32)
    a = net.generate(x, 0.5)
    b = net.generate(x, 0.5, batch_size=16)
    assert all(torch.equal(a[g], b[g]) for g in a)
    # the gates read the data: a very different input distribution changes p
    net.eval()
    net.set_mode("deterministic")
    net(x)
    p1 = net.gate("h.conv").last["probs"].clone()
    net(5 * torch.rand(16, 3, 32, 32) + 3)
    p2 = net.gate("h.conv").last["probs"]
    assert not torch.allclose(p1, p2)


def test_corrcoef_penalty():
    base = torch.randn(64, 1)
    acts = torch.cat([base, 2 * base + 1, torch.randn(64, 1), torch.zeros(64, 1)], 1)
    r = corrcoef_penalty(acts)
    assert r[0] > 0.3 and r[1] > 0.3 and r[2] < 0.3 and r[3] == 0


def test_batch_repr_is_order_invariant():
    rep = BatchRepr([3, 16, 16], 12)
    x = torch.randn(5, 3, 16, 16)
    torch.testing.assert_close(rep(x), rep(x.flip(0)))
    assert BatchRepr([20], 6)(torch.randn(4, 20)).shape == (6,)


def test_gated_supernet_samples_generates_and_extracts(make_gated):
    """DANCE over a NAS supernet (NAS-Bench-201 cells): gates inside candidates work end to end."""
    net = GatedNetwork(make_gated("std/nb201.nas", C=4, N=1), seed=0)
    assert net.backbone.arch_parameters()  # still a supernet with its architecture weights
    net.set_mode("sample")
    net(torch.randn(4, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in net.gate_parameters())
    x = torch.randn(8, 3, 32, 32)
    masks = net.generate(x, 0.5)
    net.eval()
    net.set_masks(masks)
    _, small = net.extract(masks)
    small.eval()
    torch.testing.assert_close(small(x), net(x), rtol=1e-5, atol=1e-5)
