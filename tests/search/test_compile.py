"""Whole-step compilation: the supernet lowering has no host sync, traces as one graph, compiles exactly."""

from __future__ import annotations

import operator

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_string
from nasir.lowering import lower
from nasir.passmanager import PassManager
from nasir.search.darts import SearchConfig, SupernetSearch

#: merged factorized pairs with normalization, a merged dense choice, pools, PMS/FMS derived weights
SPACE = """
op sep(C, k, dilation = 1) = relu -> dwconv(k, dilation = dilation) -> conv(C, 1) -> bn(affine = false)
network tiny(C = 4) {
    input x: [3, 6, 6]
    h = (conv(C, 3) -> bn(affine = false))(x)
    h = one_of { none: zero  skip: identity  max: max_pool(3, 1)  s3: sep(C, 3) -> sep(C, 3)
                 s5: sep(C, 5) -> sep(C, 5)  d3: sep(C, 3, 2) }(h)
    h = one_of { c1: conv(C, 1)  c3: conv(C, 3) }(h)
    logits = (global_avg_pool -> linear(10))(h)
    output logits
}"""
PIPELINE = "topo-simplify,reparam{kernel_norm=true}"

#: ATen ops that make the host wait for the device (or read device data on the host)
HOST_SYNCS = {"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "item", "tolist"}


class _Syncs(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in HOST_SYNCS:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def _model(mode="supernet"):
    return lower(PassManager.parse(PIPELINE).run(parse_string(SPACE)), mode, seed=0)


def test_supernet_step_has_no_host_sync():
    """Forward and backward of the lowered supernet never read a device value on the host (no
    ``.item()``, ``.tolist()``, ``nonzero``, Python control flow on tensors), so on CUDA the step
    can be captured as CUDA graphs. The sampled lowering does read the sampled index, once per choice."""
    model = _model()
    x = torch.randn(2, 3, 6, 6)
    model(x).sum().backward()  # builds the per-device constant caches
    with _Syncs() as syncs:
        model(x).sum().backward()
    assert syncs.seen == []
    calls = [n for n in model.graph.nodes if n.op in ("call_method", "call_function")]
    assert not any(n.op == "call_method" and n.target in HOST_SYNCS for n in calls)
    assert {operator.getitem, torch.softmax} & {n.target for n in calls}  # the check saw the graph's calls
    sampled = _model("sampled")
    with _Syncs() as syncs:
        sampled(x)
    assert syncs.seen  # the check does see host syncs


def test_supernet_traces_as_one_graph_and_compiles_exactly():
    """``torch.compile(fullgraph=True)`` accepts the supernet (any host sync would break the graph),
    and a search with ``compile`` takes the same steps as the eager one."""
    model = _model()
    x = torch.randn(2, 3, 6, 6)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))
    batch = (torch.randn(4, 3, 6, 6), torch.randint(0, 10, (4,)))
    losses = {}
    for backend in ("", "eager"):
        search = SupernetSearch(_model(), SearchConfig(compile=backend))
        losses[backend] = [search.step(batch, batch) for _ in range(2)]
    assert losses["eager"] == losses[""]


def test_compile_refuses_gdas():
    with pytest.raises(NasirError, match="GDAS"):
        SupernetSearch(_model("sampled"), SearchConfig(method="gdas", compile="eager"))


def test_search_cli_option():
    from nasir.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["search", "std/darts.nas"]).compile == ""
    assert parse(["search", "std/darts.nas", "--compile"]).compile == "inductor"
    assert parse(["search", "std/darts.nas", "--compile", "aot_eager"]).compile == "aot_eager"
