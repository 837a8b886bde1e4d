"""Gate placement: channel groups from the dependency analysis, residual coupling, exactness."""

from __future__ import annotations

import torch
from torch import nn

from nasir.dance.channels import analyze
from nasir.dance.insert import gate_groups
from nasir.frontends.fx_import import import_module
from nasir.ir.nodes import GateNode
from nasir.lowering import lower
from nasir.passmanager import PassManager


def test_resnet18_residual_groups_share_one_gate(gated_resnet):
    groups = gate_groups(gated_resnet)
    # stem + 2 blocks of stage 0 form one residual group; each later stage one more; 8 inner convs
    assert len(groups) == 12
    stem = groups["h.conv"]
    assert stem.gates == ["h.bn_gate", "layer0.sum.0.bn_1_gate", "layer1.sum.0.bn_1_gate"]
    stage1 = groups["layer2.sum.0.conv_1"]
    assert stage1.producers == ["layer2.sum.0.conv_1", "layer2.sum.1.conv", "layer3.sum.0.conv_1"]
    assert stage1.channels == 8
    inner = [g for g in groups.values() if len(g.producers) == 1]
    assert len(inner) == 8 and all(g.producers[0].endswith(".sum.0.conv") for g in inner)
    # the classifier (network output) and the image input are never gated
    gated_paths = {p for g in groups.values() for p in g.producers}
    assert "logits.linear" not in gated_paths


def test_every_value_read_by_a_conv_is_gated(gated_resnet):
    """After placement, no conv reads an ungated BatchNorm output of a prunable group."""
    by_name = {n.name: n for n in gated_resnet.body.nodes}
    for node in gated_resnet.body.nodes:
        if node.kind == "op" and node.attrs.op == "bn":
            users = [n for n in gated_resnet.body.nodes if node.name in n.inputs]
            assert all(isinstance(u, GateNode) for u in users), node.name
    assert by_name


def test_budget_per_group_and_annotation(parse):
    graph = parse("""
network net() {
    input x: [3, 8, 8]
    a = (conv(8, 3) -> bn -> relu)(x)
    gate 0.25 {
        b = (conv(16, 3) -> bn -> relu)(a)
    }
    y = (global_avg_pool -> linear(10))(b)
    output y
}
""")
    out = PassManager.parse("dance-gates{budget=0.75}").run(graph)
    groups = gate_groups(out)
    assert groups["a.conv"].budget == 0.75
    assert groups["b.conv"].budget == 0.25


def test_gates_open_are_exact(resnet):
    before = lower(resnet, "fixed", arch={}, seed=0)
    after_graph = PassManager.parse("dance-gates").run(resnet)
    after = lower(after_graph, "fixed", arch={})
    missing, unexpected = after.load_state_dict(before.state_dict(), strict=False)
    assert all(k.endswith(".mask") for k in missing) and not unexpected
    before.eval()
    after.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(before(x), after(x))


class _ConcatPreact(nn.Module):
    """Concatenation (uncoupled parts) and a pre-activation BN after a residual sum."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 10, 3, padding=1)
        self.mix = nn.Conv2d(16, 8, 1)
        self.skip = nn.Conv2d(16, 8, 1)
        self.bn = nn.BatchNorm2d(8)
        self.out_conv = nn.Conv2d(8, 12, 3, padding=1)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        h = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1)
        s = self.mix(h) + self.skip(h)
        h = torch.relu(self.bn(s))
        return self.head(torch.relu(self.out_conv(h)).mean((2, 3)))


def test_concat_parts_and_preactivation_bn():
    graph = import_module(_ConcatPreact(), [3, 8, 8])
    a = analyze(graph)
    groups = a.groups()
    producer_sets = sorted(sorted(v) for v in groups.values())
    assert producer_sets == [["a"], ["b"], ["mix", "skip"], ["out_conv"]]
    g2 = PassManager.parse("dance-gates").run(graph)
    groups = gate_groups(g2)
    # mix and skip feed a sum (no BN of their own): gated after themselves and after the shared BN
    assert sorted(groups["mix"].gates) == ["bn_gate", "mix_gate", "skip_gate"]


def test_vgg_flatten_group(gated_vgg):
    groups = gate_groups(gated_vgg)
    assert sorted(groups) == ["features0.conv", "features2.conv", "features3.conv"]
