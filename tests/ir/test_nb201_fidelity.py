"""NAS-Bench-201 fidelity: ``bn(track_running_stats)`` and ``conv(bias)`` through the IR, lowering,
costs, passes and DANCE extraction, and ``std/nb201.nas`` using them as the benchmark's search model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasir.diagnostics import VerificationError
from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.cost import graph_cost
from nasir.ir.nodes import KernelCandidate, MergedConvNode, OpNode
from nasir.ir.verify import verify
from nasir.lowering import lower
from nasir.passmanager import PassManager
from nasir.testing import compare

CHAIN = """network n() {
    input x: [3, 8, 8]
    h = (conv(6, 3, bias = true) -> bn(affine = false, track_running_stats = false) -> relu
         -> conv(6, 3) -> bn -> relu -> global_avg_pool -> linear(4))(x)
    output h
}
"""


def test_lowered_layers_and_costs():
    g = parse_string(CHAIN)
    model = lower(g, "fixed", arch={})
    conv, norm = model.get_submodule("h.conv"), model.get_submodule("h.bn")
    assert conv.bias is not None and not norm.track_running_stats and norm.running_mean is None and not norm.affine
    assert model.get_submodule("h.bn_1").track_running_stats
    # conv 6*3*9 + 6 bias, conv 6*6*9, bn 2*6, linear 6*4 + 4
    assert graph_cost(g).params == 6 * 27 + 6 + 6 * 54 + 12 + 28 == sum(p.numel() for p in model.parameters())


def test_batch_statistics_in_evaluation_too():
    g = parse_string(CHAIN)
    model = lower(g, "fixed", arch={}).eval()
    x = torch.randn(5, 3, 8, 8)
    conv_out = model.get_submodule("h.conv")(x)
    want = torch.nn.functional.batch_norm(conv_out, None, None, training=True)
    got = model.get_submodule("h.bn")(conv_out)
    torch.testing.assert_close(got, want)


def test_verifier_rules():
    with pytest.raises(Exception, match="track_running_stats.*leave momentum out"):
        parse_string("network n() {\n input x: [3, 8, 8]\n y = bn(momentum = 0.2, track_running_stats = false)(x)\n"
                     " output y\n}\n")
    verify(parse_string("network n() {\n input x: [3, 8, 8]\n y = bn(track_running_stats = false)(x)\n output y\n}\n"))
    with pytest.raises(ValueError, match="can have a bias"):
        KernelCandidate(name="skip", kernel=1, source="identity", bias=True)
    g = PassManager.parse("reparam").run(parse_string(
        "network n() {\n input x: [4, 8, 8]\n y = one_of { a: conv(4, 3, bias = true)  b: conv(4, 1) }(x)\n"
        " output y\n}\n", filename="m.nas"))
    merged = g.body["y"]
    assert isinstance(merged, MergedConvNode) and merged.kernels[0].bias
    merged.kernels[0] = merged.kernels[0].model_copy(update={"pointwise": True})  # as a careless pass might
    with pytest.raises(VerificationError, match="kernel 'a': 'bias'"):
        verify(g)


def test_merged_biases_with_kernel_norm_run():
    g = parse_string("network n() {\n input x: [4, 8, 8]\n"
                     " y = one_of { a: conv(4, 3, bias = true)  b: conv(4, 5, bias = true)  s: identity }(x)\n"
                     " output y\n}\n")
    merged = PassManager.parse("reparam{kernel_norm=true}").run(g)
    model = lower(merged, "supernet", seed=0)
    biases = dict(model.named_parameters())
    assert {k for k in biases if ".biases." in k} == {"y.biases.a", "y.biases.b"}
    out = model(torch.randn(2, 4, 8, 8))
    out.sum().backward()
    assert biases["y.biases.a"].grad is not None and biases["y.biases.a"].grad.abs().sum() > 0


def test_a_leading_batch_statistics_norm_is_shared_exactly():
    """A BatchNorm without affine weights and running statistics is a function of its input: PMS shares
    it exactly when it leads, in evaluation too; a BatchNorm that tracks other statistics is not the same op."""
    g = parse_string("""network n() {
        input x: [3, 8, 8]
        h = conv(4, 3)(x)
        y = one_of {
            a: bn(affine = false, track_running_stats = false) -> conv(4, 3)
            b: bn(affine = false, track_running_stats = false) -> conv(4, 5)
            c: bn(affine = false) -> conv(4, 1)
        }(h)
        output y
    }""")
    for train in (True, False):
        before, after, out, pm = compare(g, "pms{approximate=false}", x_shape=(2, 3, 8, 8), train=train)
        torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)
    assert pm.exact and pm.records[-1].result.stats["modules-shared"] == 1


def test_dance_extraction_keeps_biases_and_batch_statistics_exact():
    from nasir.dance.extract import extract
    from nasir.runtime import ChannelGate

    graph = PassManager.parse("dance-gates{budget=0.5}").run(parse_string(CHAIN))
    gated = lower(graph, "fixed", arch={}, seed=0)
    masks = {}
    for m in gated.modules():
        if isinstance(m, ChannelGate):
            m.mask.copy_(torch.tensor([1.0, 0, 1, 1, 0, 1]))
            masks[m.group] = m.mask.clone()
    gated.eval()
    small_graph, weights = extract(graph, masks, gated.state_dict())
    small = lower(small_graph, "fixed", arch={})
    small.load_state_dict(weights)
    small.eval()
    assert small.get_submodule("h.conv").bias.shape == (4,) and small.get_submodule("h.bn").running_mean is None
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(small(x), gated(x), rtol=1e-5, atol=1e-5)


def _ops(region, path=""):
    for node in region.nodes:
        if isinstance(node, OpNode):
            yield path + node.name, node.attrs
        for cand in getattr(node, "candidates", []):
            yield from _ops(cand.body, f"{path}{node.name}.{cand.name}.")


def test_nb201_uses_the_search_model_layers():
    """AutoDL-Projects: ReLUConvBN(affine=False) in the search cells has conv bias=not affine and
    BatchNorm(affine=False, track_running_stats); the stem, reduction blocks and classifier are affine."""
    g = parse_file(std_path("nb201"), C=4, N=1)
    ops = dict(_ops(g.body))
    cell_convs = {p: a for p, a in ops.items() if p.startswith("cells") and a.op == "conv"}
    cell_norms = {p: a for p, a in ops.items() if p.startswith("cells") and a.op == "bn"}
    assert cell_convs and all(a.bias for a in cell_convs.values())
    assert cell_norms and all(not a.affine and not a.track_running_stats for a in cell_norms.values())
    others = {p: a for p, a in ops.items() if not p.startswith("cells")}
    assert all(not a.bias for a in others.values() if a.op == "conv")
    assert all(a.affine and a.track_running_stats for a in others.values() if a.op == "bn")
    tracked = parse_file(std_path("nb201"), C=4, N=1, track_running_stats=True)
    assert all(a.track_running_stats for p, a in _ops(tracked.body) if a.op == "bn")


def test_nb201_toponas_pipeline_merges_biased_convs():
    g = PassManager.parse("topo-simplify,reparam{kernel_norm=true}").run(parse_file(std_path("nb201"), C=4, N=1))
    merged = [n for _, n, _ in g.walk() if isinstance(n, MergedConvNode)]
    assert merged and all(k.bias for n in merged for k in n.kernels if k.source == "conv")
    model = lower(g, "supernet", seed=0).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any(m.track_running_stats for name, m in model.named_modules()
                   if isinstance(m, nn.BatchNorm2d) and name.startswith("cells"))
