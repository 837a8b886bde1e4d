"""Shape inference agrees with torch on every strided op at odd sizes, and factorized_reduce runs there (issue 15)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasir.diagnostics import VerificationError
from nasir.frontends.elaborate import parse_string
from nasir.lowering import lower
from nasir.runtime import FactorizedReduce
from nasir.testing import run_pipeline

SPACE = "network n() {{\n    input x: [4, {size}, {size}]\n    y = {op}(x)\n    output y\n}}\n"

STRIDED_OPS = [
    *(f"conv(6, {k}, 2)" for k in (1, 2, 3, 4, 5)),
    "conv(6, 3, 2, padding = 0)", "conv(6, 3, 2, dilation = 2)", "conv(8, 3, 2, groups = 2)", "conv(6, 3, 3)",
    *(f"dwconv({k}, 2)" for k in (1, 3, 5)),
    "dwconv(3, 2, padding = 0)", "dwconv(3, 2, dilation = 2)", "dwconv(5, 2, dilation = 2)",
    *(f"max_pool({k}, 2)" for k in (1, 2, 3, 5)),
    "max_pool(3, 2, padding = 0)", "max_pool(2, 2, padding = 0)",
    *(f"avg_pool({k}, 2, count_include_pad = {c})" for k in (2, 3) for c in ("true", "false")),
    "avg_pool(3, 2, padding = 0, count_include_pad = false)", "avg_pool(3, 3)",
    "zero(2)", "zero(3)",
    "factorized_reduce(6)",
]


@pytest.mark.parametrize("size", [5, 7, 8, 9])
@pytest.mark.parametrize("op", STRIDED_OPS)
def test_inferred_shape_is_the_shape_torch_computes(op, size):
    graph = parse_string(SPACE.format(op=op, size=size))
    model = lower(graph, "fixed", seed=0)
    out = model(torch.randn(2, 4, size, size))
    assert list(out.shape[1:]) == graph.body["y"].shape


def test_too_small_an_input_is_a_located_verifier_error():
    with pytest.raises(VerificationError) as err:
        lower(parse_string(SPACE.format(op="conv(6, 5, 2, padding = 0)", size=3), filename="small.nas"))
    assert err.value.render().startswith("small.nas:3:9: error: spatial size 3 too small")


class _DartsFactorizedReduce(nn.Module):
    """``FactorizedReduce`` of the DARTS reference code (``operations.py``), verbatim but for names."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


@pytest.mark.parametrize("size", [6, 8, 32])
def test_factorized_reduce_equals_the_darts_reference_on_even_sizes(size):
    ours, ref = FactorizedReduce(4, 6), _DartsFactorizedReduce(4, 6)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4, size, size, dtype=torch.float64)
    for training in (True, False):
        ours.double().train(training), ref.double().train(training)
        assert torch.equal(ours(x), ref(x))


def test_factorized_reduce_on_an_odd_size_pads_the_shifted_branch():
    """The reference fails at 7x7; ours reads one zero row and column past the shifted input."""
    fr = FactorizedReduce(4, 6).double().eval()
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        _DartsFactorizedReduce(4, 6).double()(x)
    out = fr(x)
    assert out.shape == (2, 6, 4, 4)
    shifted = F.pad(F.relu(x)[:, :, 1:, 1:], (0, 1, 0, 1))
    expected = fr.bn(torch.cat([fr.conv_1(F.relu(x)), fr.conv_2(shifted)], dim=1))
    assert torch.equal(out, expected)


def test_darts_reduction_edge_runs_on_an_odd_size():
    """Every candidate of a stride-2 DARTS edge gives ceil(H / 2), factorized_reduce too."""
    graph = parse_string('import "std/darts.nas"\nnetwork n() {\n    input x: [4, 7, 7]\n'
                         '    y = edge(4, 2)(x)\n    output y\n}\n')
    assert graph.body["y"].shape == [4, 4, 4]
    for mode in ("supernet", "sampled"):
        assert lower(graph, mode, seed=0)(torch.randn(2, 4, 7, 7)).shape == (2, 4, 4, 4)


@pytest.mark.parametrize("size", [5, 7, 8])
@pytest.mark.parametrize("candidates", ["a: conv(4, 3, 2)  b: conv(4, 5, 2)  c: conv(4, 3, 2, dilation = 2)  d: avg_pool(3, 2)",
                                        "a: dwconv(3, 2) -> conv(4, 1)  b: dwconv(5, 2) -> conv(4, 1)"])
def test_merged_strided_convolution_shape_is_the_shape_it_computes(candidates, size):
    graph, _ = run_pipeline(parse_string(SPACE.format(op=f"one_of {{ {candidates} }}", size=size)), "reparam")
    assert graph.body["y"].kind == "merged_conv"
    for mode in ("supernet", "sampled", "fixed"):
        out = lower(graph, mode, arch={"y": 1}, seed=0)(torch.randn(2, 4, size, size))
        assert list(out.shape[1:]) == graph.body["y"].shape
