"""NAS-Bench-201's evaluation network (``std/nb201.nas -D eval=true``) against its topology network
(TinyNetwork with InferCells, as AutoDL-Projects' ``cell_infers`` builds it) written here: parameter
counts and outputs, fixed by an NB201 string."""

from __future__ import annotations

import re

import torch
from torch import nn

from nasir.frontends.elaborate import parse_file, std_path
from nasir.ir.arch import resolve_arch
from nasir.ir.cost import arch_cost
from nasir.ir.verify import infer_shapes
from nasir.lowering import lower
from nasir.weights import renamed_state_dict

#: Every operation, 'none' included; node 2 keeps only a pool and node 3 a skip beside a conv.
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, k, stride=1):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


OPS = {
    "none": lambda c: Zero(),
    "skip_connect": lambda c: nn.Identity(),
    "nor_conv_1x1": lambda c: ReLUConvBN(c, c, 1),
    "nor_conv_3x3": lambda c: ReLUConvBN(c, c, 3),
    "avg_pool_3x3": lambda c: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
}


def parse_arch(text):
    """An NB201 string as a list of nodes, each a list of (operation, input) pairs."""
    return [[(op, int(j)) for op, j in re.findall(r"(\w+)~(\d+)", node)] for node in text.split("+")]


class InferCell(nn.Module):
    def __init__(self, genotype, c):
        super().__init__()
        self.layers = nn.ModuleList()
        self.inputs = []
        for node in genotype:
            for op, _ in node:
                self.layers.append(OPS[op](c))
            self.inputs.append([j for _, j in node])

    def forward(self, x):
        nodes, k = [x], 0
        for ins in self.inputs:
            nodes.append(sum(self.layers[k + e](nodes[j]) for e, j in enumerate(ins)))
            k += len(ins)
        return nodes[-1]


class ResNetBasicblock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    def __init__(self, c, n, genotype, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        channels = [c] * n + [2 * c] + [2 * c] * n + [4 * c] + [4 * c] * n
        reductions = [False] * n + [True] + [False] * n + [True] + [False] * n
        self.cells = nn.ModuleList()
        c_prev = c
        for c_curr, reduction in zip(channels, reductions):
            self.cells.append(ResNetBasicblock(c_prev, c_curr) if reduction else InferCell(genotype, c_curr))
            c_prev = c_curr
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.classifier = nn.Linear(c_prev, classes)

    def forward(self, x):
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h)
        return self.classifier(self.lastact(h).mean((2, 3)))


def names(reference: TinyNetwork, genotype, n: int) -> dict[str, str]:
    """Reference module -> nasir module."""
    out = {"stem.0": "h.conv", "stem.1": "h.bn", "lastact.0": "logits.bn", "classifier": "logits.linear"}
    cell = 0
    for k, module in enumerate(reference.cells):
        if isinstance(module, ResNetBasicblock):
            ours = f"reduce{(k + 1) // (n + 1)}"
            out |= {f"cells.{k}.conv_a.op.1": f"{ours}.0.relu_conv_bn.conv",
                    f"cells.{k}.conv_a.op.2": f"{ours}.0.relu_conv_bn.bn",
                    f"cells.{k}.conv_b.op.1": f"{ours}.0.relu_conv_bn.conv_1",
                    f"cells.{k}.conv_b.op.2": f"{ours}.0.relu_conv_bn.bn_1",
                    f"cells.{k}.downsample.1": f"{ours}.1.conv"}
            continue
        edges = [(i + 1, op, j) for i, node in enumerate(genotype) for op, j in node]
        for layer, (i, op, j) in enumerate(edges):
            out |= {f"cells.{k}.layers.{layer}.op.1": f"cells{cell}.n{i}_{j}.{op}.conv",
                    f"cells.{k}.layers.{layer}.op.2": f"cells{cell}.n{i}_{j}.{op}.bn"}
        cell += 1
    return out


def test_same_parameters_and_outputs_as_the_topology_network():
    genotype = parse_arch(ARCH)
    torch.manual_seed(0)
    reference = TinyNetwork(4, 1, genotype, 10).double()
    gen = torch.Generator().manual_seed(1)
    for m in reference.modules():  # random affine weights and running statistics: a misplaced one shows
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=gen, dtype=torch.float64) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=gen, dtype=torch.float64)
            m.running_mean = torch.randn(m.num_features, generator=gen, dtype=torch.float64)
            m.running_var = torch.rand(m.num_features, generator=gen, dtype=torch.float64) + 0.5
    ours = lower(parse_file(std_path("nb201"), C=4, N=1, eval=True), "fixed", ARCH, seed=0).double()
    ours.load_state_dict(renamed_state_dict(reference.state_dict(), names(reference, genotype, 1)))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    norms = [m for m in ours.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.affine and m.track_running_stats for m in norms)
    assert not any(m.bias is not None for m in ours.modules() if isinstance(m, nn.Conv2d))
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x), rtol=1e-10, atol=1e-10)


def test_benchmark_size_parameter_count():
    """C=16, N=5 (the benchmark's setting): the IR's count of the fixed network is the topology network's."""
    graph = parse_file(std_path("nb201"), eval=True)
    infer_shapes(graph)
    with torch.device("meta"):
        reference = TinyNetwork(16, 5, parse_arch(ARCH), 10)
    assert arch_cost(graph, resolve_arch(graph, ARCH)).params == sum(p.numel() for p in reference.parameters())
