"""Width choices lowered: one shared weight sliced per width (sampled, fixed), masked (supernet).

Exactness in float64: the sampled and fixed networks of a width equal a plain network of that width
carrying the first channels of the shared weights (sliced here by hand), the supernet with a one-hot
architecture equals the sampled network, and gradients reach the width parameters.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from nasir import parse_string
from nasir.diagnostics import NasirError
from nasir.lowering import NasirModule, lower
from nasir.runtime import FixedSampler, GumbelSampler

#: Width choices on a conv (followed by bn, relu, dwconv, a second bn; tied by a sum to a second conv;
#: concatenated at offset 0 before a bn and a conv) and on a linear (read by a linear).
SPACE = """
network n() {
    input x: [3, 6, 6]
    w = one_of [4, 8, 12]
    y = (conv(w, 3) -> bn -> relu -> dwconv(3) -> bn -> relu6)(x)
    z = sum(y, (conv(w, 1) -> bn)(x))
    c = bn(concat(z, conv(3, 1)(x)))
    h = (conv(5, 1) -> bn -> relu -> global_avg_pool -> linear(one_of [6, 10]) -> relu -> linear(3))(c)
    output h
}"""

#: The same network with plain widths W and F: the same node names, so the same module paths.
PLAIN = """
network p(W, F) {
    input x: [3, 6, 6]
    y = (conv(W, 3) -> bn -> relu -> dwconv(3) -> bn -> relu6)(x)
    z = sum(y, (conv(W, 1) -> bn)(x))
    c = bn(concat(z, conv(3, 1)(x)))
    h = (conv(5, 1) -> bn -> relu -> global_avg_pool -> linear(F) -> relu -> linear(3))(c)
    output h
}"""

WIDTHS = ([4, 8, 12], [6, 10])
ARCHS = [{"y.conv": i, "h.linear": j} for i, j in itertools.product(range(3), range(2))]


@pytest.fixture(scope="module")
def space():
    return parse_string(SPACE)


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _trained_supernet(space) -> NasirModule:
    """A float64 supernet whose BatchNorm statistics moved away from their initial values."""
    sup = lower(space, "supernet", seed=0).double()
    with torch.no_grad():
        for _ in range(2):
            sup(_x(10))
    return sup.eval()


def _one_hot(module: NasirModule, arch: dict[str, int]) -> None:
    with torch.no_grad():
        for key, p in module.arch.items():
            p.fill_(-200.0)  # softmax puts 1 - 1e-87 on the pick: one-hot below rounding
            p[arch[module.arch_names[key]]] = 0.0


def _by_hand(state: dict[str, torch.Tensor], w: int, f: int) -> dict[str, torch.Tensor]:
    """The plain network's weights: the first w channels of the conv width (12 at most, then the 3
    channels of ``c`` after the concat) and the first f features of the linear width."""
    concat = list(range(w)) + [12, 13, 14]
    out = {}
    for key, t in state.items():
        if key.startswith("arch."):
            continue
        if t.dim() == 0:
            out[key] = t
        elif key.startswith(("y.", "z.")):  # producers and followers of the conv width
            out[key] = t[:w]
        elif key.startswith("c_2."):  # bn after the concat
            out[key] = t[concat]
        elif key == "h.conv.weight":  # reads the concat
            out[key] = t[:, concat]
        elif key.startswith("h.linear."):  # the linear with a width choice
            out[key] = t[:f]
        elif key == "h.linear_1.weight":  # reads it
            out[key] = t[:, :f]
        else:
            out[key] = t
    return out


def test_fixed_mode_builds_plain_layers_of_the_chosen_widths(space):
    fixed = lower(space, "fixed", arch={"y.conv": "w8", "h.linear": "w6"})
    assert type(fixed.get_submodule("y.conv")) is nn.Conv2d and fixed.get_submodule("y.conv").out_channels == 8
    assert fixed.get_submodule("y.dwconv").groups == 8 and fixed.get_submodule("y.bn_1").num_features == 8
    assert fixed.get_submodule("z.conv").out_channels == 8
    assert fixed.get_submodule("h.conv").in_channels == 11  # 8 of the width, 3 of the concatenated conv
    assert (fixed.get_submodule("h.linear").out_features, fixed.get_submodule("h.linear_1").in_features) == (6, 6)
    assert "width_mask" not in fixed.code and not fixed.arch_parameters()
    # the weights it takes from a supernet have its shapes
    state = fixed.sliced_state_dict(lower(space, "supernet").state_dict())
    fixed.load_state_dict(state)


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_sampled_and_fixed_equal_the_plain_network_with_sliced_weights(space, arch):
    sup = _trained_supernet(space)
    w, f = WIDTHS[0][arch["y.conv"]], WIDTHS[1][arch["h.linear"]]
    plain = lower(parse_string(PLAIN, W=w, F=f), "fixed", arch={}).double()
    plain.load_state_dict(_by_hand(sup.state_dict(), w, f))
    sampled = lower(space, "sampled", sampler=FixedSampler(arch), seed=1).double()
    sampled.load_state_dict(sup.state_dict())
    fixed = lower(space, "fixed", arch=arch, seed=2).double()
    fixed.load_state_dict(fixed.sliced_state_dict(sup.state_dict()))
    for train in (False, True):
        with torch.no_grad():
            expected = plain.train(train)(_x(1))
            torch.testing.assert_close(sampled.train(train)(_x(1)), expected, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(fixed.train(train)(_x(1)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_supernet_with_one_hot_alpha_equals_the_sampled_network(space, arch):
    sup = _trained_supernet(space)
    sampled = lower(space, "sampled", sampler=FixedSampler(arch), seed=1).double()
    sampled.load_state_dict(sup.state_dict())
    _one_hot(sup, arch)
    for train in (False, True):
        with torch.no_grad():
            torch.testing.assert_close(sup.train(train)(_x(2)), sampled.train(train)(_x(2)), rtol=1e-12, atol=1e-12)


def test_supernet_masks_channels_by_the_probability_of_each_width():
    """FBNetV2: output = conv2(sum_j p_j mask_j * y), y computed once at the largest width."""
    graph = parse_string("network n() { input x: [3, 4, 4]\n y = (conv(one_of [1, 3, 4], 1) -> conv(2, 1))(x)\n output y }")
    sup = lower(graph, "supernet", seed=0).double()
    with torch.no_grad():
        sup.arch["y_conv"].copy_(torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64))
    p = torch.softmax(sup.arch["y_conv"].detach(), -1)
    keep = torch.stack([(torch.arange(4) < w).double() for w in (1, 3, 4)])  # mask_j
    m = (p[:, None] * keep).sum(0)
    y = sup.get_submodule("y.conv")(_x())
    expected = sup.get_submodule("y.conv_1")(y * m.view(1, -1, 1, 1))
    torch.testing.assert_close(sup(_x()).detach(), expected.detach(), rtol=1e-12, atol=1e-12)


def test_gradients_reach_the_width_parameters(space):
    sup = lower(space, "supernet", seed=0)
    sup(_x().float()).square().sum().backward()
    assert {n for n, p in sup.named_arch_parameters() if p.grad is not None and p.grad.abs().sum() > 0} == \
        {"y.conv", "h.linear"}
    gdas = lower(space, "sampled", sampler=GumbelSampler(tau=1.0), seed=0)
    gdas(_x().float()).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gdas.arch_parameters())
    assert gdas.get_submodule("y.conv").weight.grad is not None


def test_sampled_batchnorm_statistics_move_for_the_picked_channels_only(space):
    sampled = lower(space, "sampled", sampler=FixedSampler({"y.conv": 0, "h.linear": 1}), seed=0).double().train()
    with torch.no_grad():
        sampled(_x())
    mean = sampled.get_submodule("y.bn").running_mean
    assert (mean[:4] != 0).all() and (mean[4:] == 0).all()  # a prefix: updated through a view
    mean = sampled.get_submodule("c_2").running_mean  # after the concat: channels 0-3 and 12-14
    kept = torch.zeros(15, dtype=torch.bool)
    kept[[0, 1, 2, 3, 12, 13, 14]] = True
    assert (mean[kept] != 0).all() and (mean[~kept] == 0).all()
    assert int(sampled.get_submodule("c_2").num_batches_tracked) == 1


def test_width_choice_inside_a_candidate_in_every_mode():
    """A width choice inside a layer choice, with a kernel choice reading the chosen width: the
    sampled choice modules pass the width vector to their candidates."""
    graph = parse_string("""
    network n() {
        input x: [3, 6, 6]
        w = one_of [2, 4]
        e = one_of {
            a: conv(w, 1) -> relu -> dwconv(one_of [1, 3]) -> conv(4, 1)
            b: conv(4, 3)
            c: conv(w, 3) -> bn -> conv(4, 1)
        }(x)
        output (bn -> global_avg_pool -> linear(2))(e)
    }""")
    assert graph.search_space_size() == 7  # a: 2 widths x 2 kernels, b, c: 2 widths
    sup = lower(graph, "supernet", seed=0).double()
    for picks in itertools.product(range(3), range(2), range(2)):
        arch = dict(zip(["e", "e.a.conv", "e.a.dwconv"], picks))
        sampled = lower(graph, "sampled", sampler=FixedSampler(arch), seed=1).double()
        sampled.load_state_dict(sup.state_dict())
        fixed = lower(graph, "fixed", arch=arch, seed=1).double()
        fixed.load_state_dict(fixed.sliced_state_dict(sup.state_dict()))
        _one_hot(sup, arch)
        with torch.no_grad():
            expected = sup.train()(_x(3))
            torch.testing.assert_close(sampled.train()(_x(3)), expected, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(fixed.train()(_x(3)), expected, rtol=1e-12, atol=1e-12)


def test_sliced_state_dict_needs_the_state_of_the_same_graph(space):
    fixed = lower(space, "fixed", arch={"y.conv": 0, "h.linear": 0})
    with pytest.raises(NasirError, match="no entry 'y.conv.weight'"):
        fixed.sliced_state_dict({})
