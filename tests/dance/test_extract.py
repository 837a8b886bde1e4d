"""Extraction: exact equality with the gated supernet, real parameter reduction, bad masks."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nasir.dance.extract import extract
from nasir.dance.gated import GatedNetwork, count_parameters
from nasir.dance.insert import gate_groups
from nasir.frontends.fx_import import import_module
from nasir.lowering import lower
from nasir.passmanager import PassManager
from nasir.runtime import ChannelGate


def _random_masks(graph, budget, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, group in gate_groups(graph).items():
        keep = max(1, round(budget * group.channels))
        masks[name] = torch.zeros(group.channels).scatter(0, torch.randperm(group.channels, generator=g)[:keep], 1.0)
    return masks


def _check_exact(graph, masks, randomize_bn, shape):
    gated = lower(graph, "fixed", arch={}, seed=0)
    randomize_bn(gated)
    for m in gated.modules():
        if isinstance(m, ChannelGate):
            m.mask.copy_(masks[m.group])
    gated.eval()
    small_graph, weights = extract(graph, masks, gated.state_dict())
    small = lower(small_graph, "fixed", arch={})
    small.load_state_dict(weights)
    small.eval()
    x = torch.randn(3, *shape)
    torch.testing.assert_close(small(x), gated(x), rtol=1e-5, atol=1e-5)
    assert count_parameters(small) < count_parameters(gated)
    return gated, small


@pytest.mark.parametrize("budget", [0.3, 0.5, 0.7, 0.9])
def test_resnet18_extraction_is_exact(gated_resnet, randomize_bn, budget):
    gated, small = _check_exact(gated_resnet, _random_masks(gated_resnet, budget), randomize_bn, (3, 32, 32))
    assert not any(isinstance(m, ChannelGate) for m in small.modules())


def test_vgg_extraction_through_flatten(gated_vgg, randomize_bn):
    masks = _random_masks(gated_vgg, 0.5)
    gated, small = _check_exact(gated_vgg, masks, randomize_bn, (3, 32, 32))
    # 8 of 16 channels of an 8x8 map survive the flatten: the classifier reads 8 * 64 features
    assert small.get_submodule("logits.linear").in_features == 8 * 64


def test_gated_network_extract_matches_fixed_masks(gated_resnet, randomize_bn):
    net = GatedNetwork(gated_resnet, seed=0)
    randomize_bn(net.backbone)
    x = torch.randn(4, 3, 32, 32)
    masks = net.generate(x, 0.4)
    net.eval()
    net.set_masks(masks)
    _, small = net.extract(masks)
    small.eval()
    torch.testing.assert_close(small(x), net(x), rtol=1e-5, atol=1e-5)


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def test_64x64_linear_at_half_budget_becomes_32x32(randomize_bn):
    graph = PassManager.parse("dance-gates{budget=0.5}").run(import_module(_MLP(), [16]))
    masks = _random_masks(graph, 0.5)
    gated, small = _check_exact(graph, masks, randomize_bn, (16,))
    assert tuple(small.get_submodule("fc2").weight.shape) == (32, 32)
    assert count_parameters(small.get_submodule("fc2")) == 32 * 32 + 32  # > 50% fewer than 64 * 64 + 64


def test_extract_pass_reads_masks(gated_resnet, tmp_path):
    masks = _random_masks(gated_resnet, 0.5)
    path = tmp_path / "masks.json"
    path.write_text(json.dumps({"masks": {g: m.int().tolist() for g, m in masks.items()}}))
    pm = PassManager.parse(f"dance-extract{{masks={path}}}")
    small = pm.run(gated_resnet)
    assert pm.records[-1].stats.params < pm.records[0].stats.params
    assert not any(n.kind == "gate" for _, n, _ in small.walk())


def test_bad_masks_raise_value_error(gated_resnet, tmp_path):
    good = _random_masks(gated_resnet, 0.5)
    for bad in ({"nope": torch.ones(4)}, {"h.conv": torch.ones(3)}, {"h.conv": torch.zeros(4)},
                {"h.conv": torch.full((4,), 0.5)}):
        with pytest.raises(ValueError):
            extract(gated_resnet, {**good, **bad})
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    from nasir.diagnostics import NasirError

    with pytest.raises(NasirError, match="not valid JSON"):
        PassManager.parse(f"dance-extract{{masks={path}}}").run(gated_resnet)
    with pytest.raises(NasirError, match="needs masks"):
        PassManager.parse("dance-extract").run(gated_resnet)


@pytest.mark.parametrize("mode", ["supernet", "sampled"])
def test_gates_inside_choices_of_a_supernet(make_gated, randomize_bn, mode):
    """NAS-Bench-201 cells: gates inside candidates; extraction exact in both lowering modes."""
    from nasir.runtime import FixedSampler

    graph = make_gated("std/nb201.nas", C=4, N=1)
    groups = gate_groups(graph)
    assert any(".nor_conv_3x3." in p for g in groups.values() for p in g.gates)
    masks = _random_masks(graph, 0.5)
    gated = lower(graph, mode, seed=0)
    randomize_bn(gated)
    with torch.no_grad():
        for p in gated.arch_parameters():
            p.normal_()
    for m in gated.modules():
        if isinstance(m, ChannelGate):
            m.mask.copy_(masks[m.group])
    gated.eval()
    small_graph, weights = extract(graph, masks, gated.state_dict())
    small = lower(small_graph, mode)
    small.load_state_dict(weights)
    small.eval()
    if mode == "sampled":
        g = torch.Generator().manual_seed(0)
        arch = {n: int(torch.randint(graph.arch[n].size, (1,), generator=g)) for n in graph.arch}
        gated.set_sampler(FixedSampler(arch))
        small.set_sampler(FixedSampler(arch))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(small(x), gated(x), rtol=1e-5, atol=1e-5)
    assert count_parameters(small) < count_parameters(gated)
