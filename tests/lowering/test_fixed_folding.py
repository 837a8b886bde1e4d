"""Fixed lowering after ``reparam``: a merged convolution folds into the plain op its chosen candidate
is (``nasir.ir.fix``), computing what the supernet computes at that one-hot architecture (float64),
with kernel normalization folded into the weights; without it, what the plain space's fixed network
computes. ``fix-arch`` writes the same plain network into the IR."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nasir.frontends.elaborate import parse_string
from nasir.ir.printer import print_graph
from nasir.lowering import lower
from nasir.passmanager import PassManager
from nasir.runtime import FixedSampler, MergedConv, Zero
from nasir.testing import assert_equivalent, filecheck, run_pipeline

#: Every kind of merged candidate: dense (with a bias), dilated, grouped (its own merge), identity, average
#: pool, zero (dropped by the merge); depthwise (with a bias); depthwise->pointwise pairs with stride 2.
SPACE = """
network n() {
    input x: [4, 8, 8]
    dense = one_of {
        c3: conv(4, 3, bias = true)
        c5d2: conv(4, 5, dilation = 2)
        g2: conv(4, 3, groups = 2)
        g2b: conv(4, 5, groups = 2)
        skip: identity
        pool: avg_pool(3, count_include_pad = true)
        none: zero
    }(x)
    dw = one_of { d3: dwconv(3, bias = true)  d5: dwconv(5, dilation = 2)  skip: identity  none: zero }(dense)
    sep = one_of {
        s3: dwconv(3, 2) -> conv(4, 1)
        s5: dwconv(5, 2) -> conv(4, 1)
        pool: avg_pool(3, 2, count_include_pad = true)
        none: zero(2)
    }(dw)
    output sep
}
"""
SIZES = {"dense": 7, "dw": 4, "sep": 4}
#: Architectures that between them pick every candidate of every choice.
ARCHS = [{name: i % n for name, n in SIZES.items()} for i in range(max(SIZES.values()))]


@pytest.fixture(scope="module")
def space():
    return parse_string(SPACE)


@pytest.mark.parametrize("pipeline", ["reparam{kernel_norm=true}", "topo-simplify,reparam{kernel_norm=true}"])
def test_fixed_equals_the_one_hot_supernet(space, pipeline):
    after, _ = run_pipeline(space, pipeline)
    assert not [n for n in after.body.nodes if n.kind == "choice" and n.name != "dense"], "every choice but one merged"
    sampled = lower(after, "sampled", seed=0).double()  # the supernet at one architecture: always that path
    with torch.no_grad():
        for p in sampled.parameters():  # kernels far from standardized: normalization changes them
            p.mul_(3.0).add_(0.5)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    for arch in ARCHS:
        sampled.set_sampler(FixedSampler(arch))
        fixed = lower(after, "fixed", arch=arch, seed=2).double()
        fixed.load_state_dict(fixed.sliced_state_dict(sampled.state_dict()))
        assert not any(isinstance(m, MergedConv) for m in fixed.modules()) and "nasir" not in fixed.code
        with torch.no_grad():
            torch.testing.assert_close(fixed(x), sampled(x), rtol=1e-10, atol=1e-10, msg=f"{pipeline} at {arch}")


def test_each_candidate_folds_into_what_it_is(space):
    after, _ = run_pipeline(space, "reparam{kernel_norm=true}")
    expected = {
        ("dense", 0): ("dense.merged.conv.c3.conv", nn.Conv2d, dict(kernel_size=(3, 3), dilation=(1, 1), groups=1)),
        ("dense", 1): ("dense.merged.conv.c5d2.conv", nn.Conv2d, dict(kernel_size=(5, 5), dilation=(2, 2), padding=(4, 4))),
        ("dense", 3): ("dense.merged_1.conv.g2b.conv", nn.Conv2d, dict(kernel_size=(5, 5), groups=2)),
        ("dense", 5): ("dense.merged.conv.pool.avg_pool", nn.AvgPool2d, dict(kernel_size=3, count_include_pad=True)),
        ("dw", 1): ("dw.d5.dwconv", nn.Conv2d, dict(kernel_size=(5, 5), dilation=(2, 2), groups=4)),
        ("dw", 3): ("dw.zero", Zero, dict(stride=1)),
        # normalized, a depthwise -> pointwise pair is its reparameterized kernel: one dense conv
        ("sep", 1): ("sep.s5.conv", nn.Conv2d, dict(kernel_size=(5, 5), stride=(2, 2), groups=1)),
        ("sep", 2): ("sep.pool.avg_pool", nn.AvgPool2d, dict(kernel_size=3, stride=2)),
        ("sep", 3): ("sep.zero", Zero, dict(stride=2)),
    }
    for (choice, index), (path, kind, attrs) in expected.items():
        fixed = lower(after, "fixed", arch={**dict.fromkeys(SIZES, 0), choice: index})
        module = fixed.get_submodule(path)
        assert isinstance(module, kind) and {k: getattr(module, k) for k in attrs} == attrs, path
    identity = lower(after, "fixed", arch={"dense": 4, "dw": 2, "sep": 0})  # both skips: nothing at all
    assert {name for name, m in identity.named_modules() if name.startswith(("dense", "dw")) and list(m.parameters())} == set()
    assert set(lower(after, "fixed", arch={"dense": 0, "dw": 0, "sep": 0}).ir_folds) == {
        "dense.merged.conv.c3.conv.weight", "dense.merged.conv.c3.conv.bias", "dw.d3.dwconv.weight", "dw.d3.dwconv.bias",
        "sep.s3.conv.weight"}
    assert lower(after, "fixed", arch={"dense": 0, "dw": 0, "sep": 0}).ir_folds["sep.s3.conv.weight"].pointwise \
        == "sep.pointwise.s3"


def test_without_kernel_norm_the_fixed_network_is_the_plain_spaces(space):
    after, _ = run_pipeline(space, "topo-simplify,reparam")
    for arch in ARCHS:
        assert_equivalent(space, after, x_shape=(2, 4, 8, 8), mode="fixed", arch=arch, steps=1)


def test_fix_arch_after_reparam_writes_the_plain_network(space, tmp_path):
    arch = {"dense": "c5d2", "dw": "skip", "sep": "s3"}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"arch": arch}))
    after = PassManager.parse("reparam{kernel_norm=true}").run(space)
    plain = PassManager.parse(f"fix-arch{{arch={path}}}").run(after)
    assert not plain.arch and {n.kind for _, n, _ in plain.walk()} == {"input", "op", "output"}
    filecheck(print_graph(plain), """
        CHECK: %dense.merged.conv.c5d2.conv = conv(out_channels=4, kernel=5, dilation=2)(%x)
        CHECK-NEXT: %sep.s3.conv = conv(out_channels=4, kernel=3, stride=2)(%dense.merged.conv.c5d2.conv)
        CHECK-NEXT: %output = output(%sep.s3.conv)
    """)
    fixed = lower(after, "fixed", arch=arch, seed=0).double().eval()
    relowered = lower(plain, "fixed", arch={}).double().eval()
    relowered.load_state_dict(fixed.state_dict())  # one set of names
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(relowered(x), fixed(x), rtol=1e-10, atol=1e-10)
