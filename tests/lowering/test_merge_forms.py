"""Merged convs in every form (dense / grouped / separate) compute the same function, exactly; the chooser."""

from __future__ import annotations

import pytest
import torch

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_string
from nasir.ir.merge_forms import DeviceModel, choose_form, form_cost
from nasir.ir.nodes import KernelCandidate, MergedConvNode
from nasir.ir.printer import print_graph
from nasir.lowering import lower
from nasir.merged_runtime import MergedChoice
from nasir.passmanager import PassManager
from nasir.runtime import FixedSampler, MergedConv
from nasir.testing import assert_exact, filecheck, one_hot_alpha, run_pipeline

#: a factorized choice with fixed members (identity, uniform pool) and a zero, a dense-conv choice and a
#: depthwise one with an identity; the last two have biased candidates (added after the merged conv)
SPACE = """
network n() {{
    input x: [3, 9, 9]
    h = conv(4, 3)(x)
    f = one_of {{ none: zero  skip: identity  s3: dwconv(3) -> conv(4, 1)  s5: dwconv(5) -> conv(4, 1)
                 d3: dwconv(3, dilation = 2) -> conv(4, 1)  avg: avg_pool(3, 1, count_include_pad = true) }}(h)
    e = one_of {{ c1: conv(6, 1, {stride})  c3: conv(6, 3, {stride}, bias = true)
                 d3: conv(6, 3, {stride}, dilation = 2, bias = true) }}(f)
    g = one_of {{ skip: identity  w3: dwconv(3, bias = true)  w5: dwconv(5) }}(e)
    output g
}}"""
FORMS = ("dense", "grouped", "separate")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_form_is_exact(form, stride):
    """Unmerged supernet vs merged in ``form``: same function in float64, eval and train mode."""
    after = assert_exact(parse_string(SPACE.format(stride=stride)), f"reparam,select-merge-form{{form={form}}}",
                         x_shape=(2, 3, 9, 9))
    forms = [n.form for _, n, _ in after.walk() if isinstance(n, MergedConvNode)]
    # the dense-conv and depthwise choices have no grouped form: they get the cheaper of the other two
    assert forms[0] == form and len(forms) == 3
    assert all(f in (("dense", "separate") if form == "grouped" else (form,)) for f in forms[1:])


def _lowered(norm: bool, form: str):
    g = PassManager.parse(f"reparam{{kernel_norm={str(norm).lower()}}},select-merge-form{{form={form}}}").run(
        parse_string(SPACE.format(stride=2)))
    return lower(g, "supernet", seed=0).double()


@pytest.mark.parametrize("norm", [False, True])
def test_forms_equal_the_fused_op_with_gradients(norm):
    """Each form (normalized or not) gives the output and every gradient of the ``nasir.kernels`` op."""
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    results = {}
    for form in FORMS:
        model = _lowered(norm, form)
        with torch.no_grad():
            for a in model.arch_parameters():
                a.copy_(torch.randn(a.shape, dtype=a.dtype))
        merged = [m for m in model.modules() if isinstance(m, MergedChoice)]
        assert len(merged) == 3 and all(m._forms == {"cpu": form, "cuda": form} or not m._factorized for m in merged)
        inputs = {}
        hooks = [m.register_forward_pre_hook(lambda m, args, seen=inputs: seen.setdefault(m, args)) for m in merged]
        out = model(x)
        for hook in hooks:
            hook.remove()
        out.square().sum().backward()
        results[form] = (out.detach(), [p.grad.clone() for p in model.parameters()])
        # the op, on each module's own parameters and inputs (the factorized one gets its bank's kernels)
        inputs[merged[0]] = (model.h(x), torch.softmax(model.arch.f, -1))
        for m in merged:
            torch.testing.assert_close(m(*inputs[m]), MergedConv.forward(m, *inputs[m]), rtol=1e-10, atol=1e-10)
    for form in ("grouped", "separate"):
        torch.testing.assert_close(results[form][0], results["dense"][0], rtol=1e-10, atol=1e-10)
        for a, b in zip(results[form][1], results["dense"][1]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("pick", [0, 1, 3, 5])  # zero (dropped), identity, a pair, the pool
def test_sampled_mode_runs_the_picked_candidate(norm, pick):
    """Sampled mode equals the supernet with all the weight on the sampled candidate (biased ones too)."""
    g = PassManager.parse(f"reparam{{kernel_norm={str(norm).lower()}}}").run(parse_string(SPACE.format(stride=1)))
    path = {"f": pick, "e": 1, "g": pick % 3}  # e: the biased 3x3; g: identity, the biased 3x3, the 5x5
    sampled = lower(g, "sampled", sampler=FixedSampler(path), seed=0).double()
    supernet = lower(g, "supernet", seed=0).double()
    supernet.load_state_dict(sampled.state_dict())
    with torch.no_grad():
        for key, a in supernet.arch.items():
            a.copy_(one_hot_alpha(path[key])(key, a.numel()))
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(sampled(x), supernet(x), rtol=1e-10, atol=1e-10)


def _node(cands, c, size, pointwise=True, groups=1):
    ks = [KernelCandidate(name=f"k{i}", kernel=k, dilation=d, pointwise=pointwise) for i, (k, d) in enumerate(cands)]
    return MergedConvNode(name="m", arch="a", covers=[[i] for i in range(len(ks))], domain=list(range(len(ks))),
                          kernels=ks, out_channels=c, groups=groups, normalize=True, shape=[c, size, size])


SEP, DIL = [(3, 1), (5, 1)], [(3, 2), (5, 2)]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_depthwise_only_candidates_merge_into_one_dense_kernel(device):
    """Depthwise candidates without pointwise convs (MBConv's 3x3, 5x5, 7x7): one 7x7 depthwise kernel
    (49 taps) beats three convolutions (83 taps) and their weighted sum."""
    node = _node([(3, 1), (5, 1), (7, 1)], 16, 32, pointwise=False, groups=16)
    assert choose_form(node, 16, (32, 32), device) == "dense"


def test_darts_choices_on_cpu():
    """CPU (one thread, calibrated): a dense 16 -> 16 5x5 kernel is cheaper than two depthwise convs,
    but a dense 9x9 one (dilated pairs) or wide channels are not; depthwise convolutions with several
    filters per channel (the grouped form) are the slowest kind on a CPU."""
    assert choose_form(_node(SEP, 16, 32), 16, (32, 32), "cpu") == "dense"
    assert choose_form(_node(DIL, 16, 32), 16, (32, 32), "cpu") == "separate"
    assert choose_form(_node(SEP, 64, 8), 64, (8, 8), "cpu") == "separate"
    costs = {f: form_cost(_node(SEP, 16, 32), 16, (32, 32), f, "cpu") for f in FORMS}
    assert costs["dense"].macs > 3 * costs["separate"].macs  # the dense kernel's extra MACs...
    assert costs["dense"].seconds < costs["separate"].seconds  # ...run at a dense convolution's rate


def test_grouped_form_wins_where_its_convolutions_are_cheap():
    """On a device where a depthwise convolution with several filters per channel runs as fast as a
    plain one and every op costs a launch, one grouped convolution beats n depthwise ones and a
    dense C x C x K x K kernel."""
    launch_bound = DeviceModel(dense=1e12, depthwise=4e12, multiplier=4e12, pointwise=1e13, bandwidth=3e12,
                               launch=20e-6)
    node = _node(SEP, 64, 16)
    costs = {f: form_cost(node, 64, (16, 16), f, launch_bound) for f in FORMS}
    assert min(costs.values(), key=lambda c: c.seconds).form == "grouped"


def test_select_merge_form_records_and_reports_the_choice(tmp_path):
    g, pm = run_pipeline(parse_string(SPACE.format(stride=1)), "reparam,select-merge-form{form=grouped}")
    assert pm.records[-1].exactness == "exact"
    assert pm.records[-1].result.stats == {"form-dense": 1, "form-grouped": 1, "form-separate": 1}
    assert "have no grouped form" in pm.records[-1].result.notes[0]
    filecheck(print_graph(g), "CHECK: normalize=false form=grouped(%h)")
    g2, pm2 = run_pipeline(g, "select-merge-form{device=cuda}")
    assert sum(pm2.records[-1].result.stats.values()) == 3
    with pytest.raises(NasirError, match="unknown form"):
        PassManager.parse("select-merge-form{form=fastest}")
    with pytest.raises(NasirError, match="unknown device"):
        PassManager.parse("select-merge-form{device=tpu}")


def test_grouped_form_needs_depthwise_pointwise_pairs():
    from nasir.ir.verify import VerificationError, verify

    g, _ = run_pipeline(parse_string(SPACE.format(stride=1)), "reparam")
    dense = [n for _, n, _ in g.walk() if isinstance(n, MergedConvNode)][1]
    dense.form = "grouped"
    with pytest.raises(VerificationError, match="grouped form needs depthwise"):
        verify(g)


def test_merged_convs_of_one_signature_share_one_bank():
    """Every depthwise -> pointwise merged conv of a DARTS supernet gets its kernels from the bank of
    its signature: a handful of banks build hundreds of kernels per forward."""
    from nasir.frontends.elaborate import parse_file, std_path
    from nasir.merged_runtime import MergeBank

    g = PassManager.parse("topo-simplify,reparam{kernel_norm=true}").run(
        parse_file(std_path("darts"), C=4, layers=3, steps=2, multiplier=2, pool_bn=False))
    model = lower(g, "supernet", seed=0)
    banks = [m for m in model.modules() if isinstance(m, MergeBank)]
    merged = [m for m in model.modules() if isinstance(m, MergedChoice)]
    assert sum(b._members for b in banks) == len(merged) > 4 * len(banks)
    assert len([n for n in model.graph.nodes if n.op == "call_module" and n.target.startswith("merge_banks.")]) \
        == len(banks)


def test_summary_shows_each_merged_convs_form_per_device_kind():
    """``--emit summary`` shows the recorded form, or without ``select-merge-form`` what the cost model
    picks per device kind (the form the lowering computes it in there)."""
    from nasir.summary import summary

    g, _ = run_pipeline(parse_string(SPACE.format(stride=1)), "reparam")
    text = summary(g)
    filecheck(text, "CHECK: merged convs: 3; forms by device kind")
    picks = [line for line in text.splitlines() if line.startswith("    merged_conv of")]
    assert len(picks) == 3 and all("(cost model: cpu " in line and ", cuda " in line for line in picks)
    g, _ = run_pipeline(g, "select-merge-form{form=separate}")
    text = summary(g)
    filecheck(text, "CHECK: cpu separate 3; cuda separate 3\nCHECK: merged_conv of skip, s3, s5, d3, avg (separate form)")
