"""Lowering in all three modes, gradients, fixed == supernet path, export, stable names."""

from __future__ import annotations

import pytest
import torch

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_file, std_path
from nasir.lowering import lower
from nasir.runtime import FixedSampler, GumbelSampler, UniformSampler


def _x(batch=2, size=16):
    return torch.randn(batch, 3, size, size)


def test_supernet_matches_reference_darts_param_count(darts_graph):
    model = lower(darts_graph, "supernet")
    assert sum(p.numel() for p in model.weight_parameters()) == 1_930_618
    assert len(model.arch_parameters()) == 28
    assert all(p.numel() == 8 for p in model.arch_parameters())


def test_supernet_gradients_reach_weights_and_arch(tiny_darts):
    model = lower(tiny_darts, "supernet", seed=0)
    out = model(_x())
    assert out.shape == (2, 10)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.arch_parameters())
    convs = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 4]
    assert convs and all(p.grad is not None for p in convs)


def test_arch_and_weight_parameters_are_disjoint(tiny_darts):
    model = lower(tiny_darts, "supernet")
    arch = {id(p) for p in model.arch_parameters()}
    weights = {id(p) for p in model.weight_parameters()}
    assert not arch & weights and len(arch) + len(weights) == len(list(model.parameters()))


def test_sampled_mode_runs_one_path(tiny_darts):
    model = lower(tiny_darts, "sampled", seed=0)
    assert isinstance(model.sampler, UniformSampler)
    calls = []
    for name, mod in model.named_modules():
        if name.endswith("sep_conv_5x5.dwconv"):
            mod.register_forward_hook(lambda *a, _n=name: calls.append(_n))
    arch = {a: tiny_darts.arch[a].candidates.index("skip_connect") for a in tiny_darts.arch}
    model.set_sampler(FixedSampler(arch))
    model(_x())
    assert calls == []  # no sep_conv_5x5 ran on an all-skip path
    arch = {a: tiny_darts.arch[a].candidates.index("sep_conv_5x5") for a in tiny_darts.arch}
    model.set_sampler(FixedSampler(arch))
    model(_x())
    assert len(calls) > 0


def test_gdas_gradients_reach_arch(tiny_darts):
    model = lower(tiny_darts, "sampled", sampler=GumbelSampler(tau=1.0), seed=0)
    model(_x()).sum().backward()
    assert all(p.grad is not None for p in model.arch_parameters())


def test_fixed_equals_supernet_path_with_same_weights(tiny_darts):
    g = tiny_darts
    torch.manual_seed(1)
    arch = {a: int(torch.randint(1, 8, ()).item()) for a in g.arch}
    supernet = lower(g, "sampled", sampler=FixedSampler(arch), seed=0).eval()
    fixed = lower(g, "fixed", arch=arch, seed=1).eval()
    state = supernet.state_dict()
    fixed_state = fixed.state_dict()
    assert set(fixed_state) <= set(state)  # fixed names are the supernet's names for that path
    fixed.load_state_dict({k: state[k] for k in fixed_state})
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(fixed(x), supernet(x), rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in fixed.parameters()) < sum(p.numel() for p in supernet.weight_parameters())


def test_fixed_mode_has_no_choice_overhead_and_exports(tiny_darts):
    g = tiny_darts
    arch = {a: "sep_conv_3x3" for a in g.arch}
    fixed = lower(g, "fixed", arch=arch).eval()
    assert "ChoiceModule" not in {type(m).__name__ for m in fixed.modules()}
    assert not hasattr(fixed, "arch")
    x = _x()
    exported = torch.export.export(fixed, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), fixed(x))


def test_fixed_mode_rejects_bad_architectures(tiny_darts):
    with pytest.raises(NasirError, match="does not choose"):
        lower(tiny_darts, "fixed", arch={})
    with pytest.raises(NasirError, match="no candidate"):
        lower(tiny_darts, "fixed", arch=dict.fromkeys(tiny_darts.arch, "conv_9x9"))


def test_generated_code_reads_like_pytorch(tiny_darts):
    code = lower(tiny_darts, "supernet").code
    assert "torch.softmax(arch_normal_n0_0, -1)" in code
    assert "w_cells0_n0_0_sep_conv_3x3 = p_normal_n0_0[4]" in code
    assert "self.cells0.n0_0.sep_conv_3x3.dwconv(" in code and "getattr(" not in code
    assert "torch.cat([" in code


def test_state_dict_names_are_stable(tiny_darts):
    a = list(lower(tiny_darts, "supernet", seed=0).state_dict())
    b = list(lower(parse_file(std_path("darts"), C=4, layers=3, steps=2, multiplier=2), "supernet", seed=1).state_dict())
    assert a == b
    assert "cells0.n0_0.sep_conv_3x3.dwconv.weight" in a


@pytest.mark.parametrize("name", ["nb201", "resnet18", "vgg16"])
def test_other_std_spaces_lower_and_run(name):
    overrides = {"N": 1} if name == "nb201" else {}
    g = parse_file(std_path(name), **overrides)
    model = lower(g, "supernet" if g.arch else "fixed", arch={} if not g.arch else None)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
