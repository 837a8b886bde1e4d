"""Module paths: every verified graph lowers in every mode after every sharing pass, whatever its
names (issue 15: hoisted modules next to their choice, all-zero choices, names of nn.Module attributes)."""

from __future__ import annotations

import pytest
import torch

from nasir.cli import main
from nasir.frontends.elaborate import parse_string
from nasir.lowering import lower
from nasir.module_names import module_name, module_paths
from nasir.runtime import FixedSampler
from nasir.testing import assert_equivalent, run_pipeline

MODES = ("supernet", "sampled", "fixed")

#: The smallest space on which `topo-simplify,reparam` made two IR nodes lower to module path 'e'.
TWO_SEPARABLE = """
network n() {
    input x: [4, 8, 8]
    e = one_of { a: conv(4, 3) -> relu -> conv(4, 3)  b: conv(4, 5) -> relu -> conv(4, 5) }(x)
    output e
}
"""

#: The same choice in a network the search command trains (CIFAR-sized input, logits).
TWO_SEPARABLE_NET = """
network n() {
    input x: [3, 32, 32]
    h = (conv(4, 3) -> bn)(x)
    e = one_of { a: conv(4, 3) -> relu -> conv(4, 3)  b: conv(4, 5) -> relu -> conv(4, 5) }(h)
    logits = (global_avg_pool -> linear(10))(e)
    output logits
}
"""

#: Layer, choice and candidate names that are attributes of nn.Module, GraphModule or NasirModule.
CLASHING = """
network clash() {
    input x: [3, 8, 8]
    forward = (conv(4, 3) -> bn)(x)
    training = one_of { cuda: conv(4, 3)  eval: conv(4, 5) -> bn  parameters: zero }(forward)
    arch = one_of { state_dict: conv(4, 3) -> bn  sampler: identity }(training)
    ir_paths = relu(arch)
    logits = (global_avg_pool -> linear(10))(ir_paths)
    output logits
}
"""


def _run(graph, mode, arch, shape):
    model = lower(graph, mode, arch=arch, seed=0)
    if mode == "sampled":
        model.set_sampler(FixedSampler(arch))
    return model, model(torch.randn(*shape))


@pytest.mark.parametrize("pipeline", ["topo-simplify,reparam", "pms", "pms{approximate=false}", "fms", "topo-simplify",
                                      "pms{approximate=false},reparam"])
def test_sharing_passes_lower_in_every_mode(pipeline):
    graph, _ = run_pipeline(parse_string(TWO_SEPARABLE), pipeline)
    keys = {}
    for mode in MODES:
        model, out = _run(graph, mode, {"e": 1}, (2, 4, 8, 8))
        assert out.shape == (2, 4, 8, 8)
        keys[mode] = {k for k in model.state_dict() if not k.startswith("arch.")}
    # a fixed module's weight is the supernet's of its path, or (a merged conv folded into a plain one) a supernet kernel
    assert model.ir_folds or pipeline != "topo-simplify,reparam"
    sources = {model.ir_folds[k].source if k in model.ir_folds else k for k in keys["fixed"]}
    assert keys["sampled"] == keys["supernet"] and sources <= keys["supernet"]


def test_hoisted_module_next_to_a_candidate_of_its_name():
    """PMS names the BatchNorm it hoists out of choice ``y`` ``y.bn``; candidate ``bn`` holds ``y.bn.conv``."""
    space = """
network n() {
    input x: [4, 8, 8]
    y = one_of { bn: bn(affine = false) -> conv(4, 1)  c: bn(affine = false) -> conv(4, 3) }(x)
    output y
}
"""
    graph = parse_string(space)
    after, _ = run_pipeline(graph, "pms{approximate=false}")
    assert {"y.bn", "y"} <= {n.name for n in after.body.nodes}
    paths = module_paths(after)
    assert paths["y.bn"] == "y.bn_" and paths["y.bn.conv"] == "y.bn.conv"
    for mode in MODES:
        model, _ = _run(after, mode, {"y": 0}, (2, 4, 8, 8))
        assert model.ir_name("y.bn_.running_mean") == "y.bn.running_mean"
    assert_equivalent(graph, after, x_shape=(2, 4, 8, 8), steps=2)


def test_a_choice_of_zeros_lowers():
    graph = parse_string("network n() {\n input x: [4, 6, 6]\n y = one_of { a: zero  b: zero(1) }(x)\n output y\n}\n")
    for mode in MODES:
        _, out = _run(graph, mode, {"y": 1}, (2, 4, 6, 6))
        assert out.shape == (2, 4, 6, 6) and not out.any()


def test_names_of_module_attributes_get_a_trailing_underscore():
    graph = parse_string(CLASHING)
    arch = {"training": 1, "arch": 0}
    for mode in MODES:
        model, _ = _run(graph, mode, arch, (2, 3, 8, 8))
        names = dict(model.named_modules())
        assert "forward_.conv" in names and "logits.linear" in names
        assert callable(model.forward) and model.training is True
    supernet = lower(graph, "supernet", seed=0)
    assert isinstance(supernet.arch, torch.nn.ParameterDict)  # the architecture parameters, not the layer
    assert set(supernet.arch_names.values()) == {"training", "arch"}
    assert "arch_.state_dict_.conv.weight" in supernet.state_dict()
    assert supernet.ir_name("arch_.state_dict_.conv.weight") == "arch.state_dict.conv.weight"
    assert "self.forward_.conv(x)" in supernet.code
    fixed = lower(graph, "fixed", arch=arch, seed=0)
    sampled = lower(graph, "sampled", seed=1)
    sampled.load_state_dict(supernet.state_dict())  # one set of keys in every mode
    fixed.load_state_dict({k: v for k, v in supernet.state_dict().items() if k in fixed.state_dict()})
    sampled.set_sampler(FixedSampler(arch))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(fixed.eval()(x), sampled.eval()(x))


def test_module_name_rule_can_be_undone():
    assert [module_name(n) for n in ("conv", "forward", "arch", "cuda", "x_", "zero", "bn")] == \
        ["conv", "forward_", "arch_", "cuda_", "x__", "zero", "bn"]
    for name in ("conv", "forward", "forward_", "x__"):
        mangled = module_name(name)
        assert (mangled[:-1] if mangled.endswith("_") else mangled) == name


def test_clashing_names_search_one_step(capsys, tmp_path):
    space = tmp_path / "clash.nas"
    space.write_text(CLASHING.replace("[3, 8, 8]", "[3, 32, 32]"))
    for method in ("darts", "gdas"):
        code = main(["search", str(space), "--method", method, "--steps", "1", "--batch-size", "4",
                     "--arch-out", str(tmp_path / "arch.json")])
        assert code == 0, capsys.readouterr().err
        code = main(["compile", str(space), "--emit", "code", "--mode", "fixed", "--arch", str(tmp_path / "arch.json")])
        assert code == 0 and "self.forward_.conv" in capsys.readouterr().out


@pytest.mark.parametrize("passes", ["topo-simplify", "pms{approximate=false}", "topo-simplify,reparam"])
def test_gdas_search_after_sharing_passes(capsys, tmp_path, passes):
    space = tmp_path / "two.nas"
    space.write_text(TWO_SEPARABLE_NET)
    code = main(["search", str(space), "--method", "gdas", "--passes", passes, "--steps", "2", "--batch-size", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2 steps" in out


def test_a_cell_that_is_a_whole_candidate_names_its_nodes_without_a_leading_dot():
    space = """
cell res(C) {
    input x
    h = sum(conv(C, 3), identity)(x)
    output h
}
network n() {
    input x: [4, 8, 8]
    y = one_of { cell: res(4)  plain: conv(4, 3) }(x)
    output y
}
"""
    graph = parse_string(space)
    assert "y.cell.h.0" in module_paths(graph)  # was "y.cell..h.0": an empty module name
    for mode in MODES:
        _, out = _run(graph, mode, {"y": 0}, (2, 4, 8, 8))
        assert out.shape == (2, 4, 8, 8)
