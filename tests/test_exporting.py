"""Export after passes (``nasir.exporting``): the fixed network of a rewritten std space is the plain
architecture (with normalized kernels, a separable pair as one dense conv), ``torch.export`` and ONNX
take it, and the formats carry a trained supernet's weights.

Exports are slow (ONNX most), so the std spaces are tiny, and ``torch.export`` runs once per space
(every pipeline on the smallest space): after every pipeline the fixed network is checked to be,
module for module and edge for edge, the plain space's fixed network, so one export of it stands
for all of them. ONNX runs once, on the networks of the spaces with choices side by side.
"""

from __future__ import annotations

import functools
import importlib.util

import pytest
import torch
import torch.fx as fx

from nasir.diagnostics import NasirError
from nasir.exporting import (
    FORMATS,
    example_inputs,
    export,
    export_program,
    fixed_network,
    load_fixed_network,
    onnx_model,
    onnx_nodes,
)
from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.graph import Graph
from nasir.lowering import NasirModule, lower
from nasir.passmanager import PassManager
from nasir.runtime import ChoiceModule, FixedSampler, MergedConv

from .test_generated_spaces import PIPELINES

#: The std spaces at tiny settings (the generated-space tests' pipelines run on each).
SPACES = {
    "darts": {"C": 4, "layers": 1, "steps": 2, "multiplier": 2},
    "nb201": {"N": 1, "C": 4},
    "mbconv": {"resolution": 32, "stem": 8, "widths": [8, 16], "strides": [2, 2], "cells": [[[1, 8], [2, 8]], [[1, 16]]]},
    "resnet18": {"width": 4, "resolution": 8},
}
#: The pipeline of the issue: shared modules, merged convolutions, normalized kernels.
TOPONAS = "topo-simplify,reparam{kernel_norm=true}"


@functools.cache
def _space(name: str) -> Graph:
    return parse_file(std_path(name), **SPACES[name])


@functools.cache
def _after(name: str, pipeline: str) -> Graph:
    return PassManager.parse(pipeline, stats=False).run(_space(name))


def _arch(graph: Graph, rewritten: Graph) -> dict[str, int]:
    """One architecture of ``graph`` (a mix of every parameter's candidates), for the parameters ``rewritten`` keeps."""
    return {name: (7 * i + 3) % graph.arch[name].size for i, name in enumerate(sorted(graph.arch)) if name in rewritten.arch}


def _fixed(name: str, pipeline: str) -> NasirModule:
    after = _after(name, pipeline)
    return lower(after, "fixed", arch=_arch(_space(name), after), seed=0).eval()


def structure(module: fx.GraphModule) -> list[tuple[str, str]]:
    """The computation of a lowered module without its names: each node's module (type and
    configuration) or function, and which earlier nodes it reads."""
    modules = dict(module.named_modules())
    index: dict[fx.Node, int] = {}
    out = []
    for i, node in enumerate(module.graph.nodes):
        index[node] = i
        if node.op == "call_module":
            what = f"{type(modules[node.target]).__name__}({modules[node.target].extra_repr()})"
        else:
            what = f"{node.op}:{getattr(node.target, '__name__', node.target)}"
        out.append((what, repr(fx.node.map_arg((node.args, node.kwargs), index.__getitem__))))
    return out


def plain_with_dense_pairs(plain: fx.GraphModule, fixed: fx.GraphModule) -> list[tuple[str, str]]:
    """``structure(plain)``, except that where ``fixed`` computes a depthwise conv and the 1x1 conv it
    alone feeds as one dense conv, as a merged conv with normalized kernels folds (normalizing the
    pair's reparameterized kernel PW DW leaves no depthwise -> pointwise factorization: ``nasir.ir.fix``),
    that dense conv stands in for the pair."""
    modules = dict(plain.named_modules())
    got = structure(fixed)

    def conv(node: fx.Node) -> torch.nn.Conv2d | None:
        m = modules.get(node.target) if node.op == "call_module" else None
        return m if isinstance(m, torch.nn.Conv2d) else None

    index: dict[fx.Node, int] = {}
    out: list[tuple[str, str]] = []
    fused: set[fx.Node] = set()
    for node in plain.graph.nodes:
        if node in fused:
            continue
        index[node] = len(out)
        args = repr(fx.node.map_arg((node.args, node.kwargs), index.__getitem__))
        what = f"{type(modules[node.target]).__name__}({modules[node.target].extra_repr()})" \
            if node.op == "call_module" else f"{node.op}:{getattr(node.target, '__name__', node.target)}"
        dw, users = conv(node), list(node.users)
        pw = conv(users[0]) if dw is not None and len(users) == 1 else None
        if dw is not None and pw is not None and dw.groups == dw.in_channels and dw.bias is None \
                and pw.kernel_size == (1, 1) and pw.groups == 1 and pw.bias is None:
            dense = torch.nn.Conv2d(dw.in_channels, pw.out_channels, dw.kernel_size, dw.stride, dw.padding,
                                    dw.dilation, bias=False)
            if got[len(out):len(out) + 1] == [(f"Conv2d({dense.extra_repr()})", args)]:
                what = f"Conv2d({dense.extra_repr()})"
                fused.add(users[0])
                index[users[0]] = len(out)
        out.append((what, args))
    return out


def _same(got: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("space", SPACES)
def test_fixed_network_after_every_pipeline_is_the_plain_one_and_exports(space):
    plain = _fixed(space, "")
    for pipeline in PIPELINES:
        fixed = _fixed(space, pipeline)
        assert not any(isinstance(m, (MergedConv, ChoiceModule)) for m in fixed.modules()), pipeline
        expected = plain_with_dense_pairs(plain, fixed) if "kernel_norm=true" in pipeline else structure(plain)
        assert structure(fixed) == expected, f"{pipeline}: not the plain architecture"
    if space == "darts":  # the normalized separable pairs of the TopoNAS pipeline are dense convs
        assert plain_with_dense_pairs(plain, _fixed(space, TOPONAS)) != structure(plain)
        if space == "darts" and pipeline != TOPONAS:  # the smallest space: every pipeline through torch.export
            inputs = example_inputs(_space(space))
            _same(export_program(fixed, inputs, dynamic_batch=False).module()(*inputs), fixed(*inputs))
    fixed = _fixed(space, TOPONAS)
    program = export_program(fixed, example_inputs(_space(space)))
    other_batch = example_inputs(_space(space), batch=3, seed=1)
    _same(program.module()(*other_batch), fixed(*other_batch))
    assert not [n for n in program.graph.nodes if n.op == "call_function" and "nasir" in str(n.target)]


class _SideBySide(torch.nn.Module):
    """Several networks in one module, each on its own input: one ONNX export checks them all."""

    def __init__(self, networks: list[torch.nn.Module]):
        super().__init__()
        self.networks = torch.nn.ModuleList(networks)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(net(x) for net, x in zip(self.networks, inputs))


def test_onnx_after_toponas_passes_holds_standard_operators_only():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    searched = [space for space in SPACES if _space(space).arch]  # the passes leave resnet18 (no choices) as it is
    both = _SideBySide([_fixed(space, TOPONAS) for space in searched]).eval()
    inputs = tuple(x for space in searched for x in example_inputs(_space(space)))
    model = onnx_model(export_program(both, inputs, dynamic_batch=False), inputs)
    nodes = onnx_nodes(model)
    assert {n.domain for n in nodes} <= {"", "ai.onnx"}
    assert not [n for n in nodes if "merged" in n.op_type.lower() or "nasir" in n.op_type.lower()]
    assert {"Conv", "BatchNormalization"} <= {n.op_type for n in nodes} and len(model.graph.output) == len(searched)


def _trained_supernet(graph: Graph) -> NasirModule:
    """A supernet whose BatchNorm statistics moved (a few training forwards) and whose weights are random."""
    supernet = lower(graph, "supernet", seed=1)
    with torch.no_grad():
        for _ in range(2):
            supernet(example_inputs(graph, batch=4, seed=5)[0])
    return supernet.eval()


def _at(graph: Graph, supernet: NasirModule, arch: dict[str, int]) -> NasirModule:
    """The supernet at one architecture: its sampled lowering, always that path, with its weights."""
    sampled = lower(graph, "sampled", sampler=FixedSampler(arch), seed=2)
    sampled.load_state_dict(supernet.state_dict())
    return sampled.eval()


def test_every_format_carries_the_supernet_weights(tmp_path):
    graph = _after("darts", TOPONAS)
    arch = _arch(_space("darts"), graph)
    supernet = _trained_supernet(graph)
    x = example_inputs(graph, batch=3, seed=7)[0]
    with torch.no_grad():
        expected = _at(graph, supernet, arch)(x)
        _same(fixed_network(graph, arch, supernet.state_dict())(x), expected)
    has_onnx = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript"))
    formats = ["pt2", "safetensors"] + (["onnx"] if has_onnx else [])
    for fmt in formats:
        done = export(graph, arch, supernet.state_dict(), format=fmt, path=tmp_path / f"net.{fmt}")
        assert done.max_difference < 1e-5 and done.parameters > 0
    if "onnx" in formats:  # the file written is the checked model
        import onnx

        model = onnx.load(tmp_path / "net.onnx")
        assert {n.domain for n in onnx_nodes(model)} <= {"", "ai.onnx"} and len(model.graph.initializer) > 0
    with torch.no_grad():
        _same(torch.export.load(tmp_path / "net.pt2").module()(x), expected)
        reloaded = load_fixed_network(tmp_path / "net.safetensors")
        _same(reloaded(x), expected)
    assert isinstance(reloaded, NasirModule) and not reloaded.arch_parameters()


def test_width_choices_and_merged_kernels_export_together(tmp_path):
    graph = PassManager.parse("reparam{kernel_norm=true}", stats=False).run(parse_string("""
network n() {
    input x: [3, 8, 8]
    e = one_of { a: conv(4, 3)  b: conv(4, 5, dilation = 2) }(x)
    y = (conv(one_of [4, 8], 3) -> bn -> relu -> global_avg_pool -> linear(3))(e)
    output y
}"""))
    arch = dict.fromkeys(graph.arch, 1)  # the dilated kernel, 8 channels
    supernet = _trained_supernet(graph)
    x = example_inputs(graph, batch=3, seed=7)[0]
    export(graph, arch, supernet.state_dict(), format="safetensors", path=tmp_path / "net.safetensors")
    with torch.no_grad():
        _same(load_fixed_network(tmp_path / "net.safetensors")(x), _at(graph, supernet, arch)(x))


def test_export_refuses_bad_input_before_writing(tmp_path, monkeypatch):
    graph = _after("darts", TOPONAS)
    arch = _arch(_space("darts"), graph)
    with pytest.raises(NasirError, match="unknown export format 'tflite'"):
        export(graph, arch, format="tflite", path=tmp_path / "net")
    with pytest.raises(NasirError, match="is a directory"):
        export(graph, arch, format="pt2", path=tmp_path)
    plain_weights = lower(_space("darts"), "supernet").state_dict()  # a supernet of the graph before the passes
    with pytest.raises(NasirError, match="(?s)the given state has no entry .*same file, -D values and passes"):
        export(graph, arch, plain_weights, format="pt2", path=tmp_path / "net.pt2")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(NasirError, match="(?s)needs the onnx and onnxscript packages.*pip install 'nasir\\[export\\]'"):
        export(graph, arch, format="onnx", path=tmp_path / "net.onnx")
    assert not list(tmp_path.iterdir())


def test_the_cli_offers_every_format():
    from nasir.cli import EXPORT_FORMATS

    assert EXPORT_FORMATS == FORMATS
