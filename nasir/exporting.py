"""Export one architecture of a search space, after any passes, as a plain network (``nasir export``).

Passes never change what one architecture computes, so the fixed network of a rewritten graph is
the plain architecture (``nasir.ir.fix``): choices inlined, merged convolutions folded into the one
plain convolution (or pool, or nothing) the chosen candidate is. Its lowering holds only torch
modules and functions, which ``torch.export`` and ONNX take. ``export`` writes it in one of
``FORMATS``:

* ``pt2``: a ``torch.export`` program (``torch.export.save``); run it with
  ``torch.export.load(path).module()(x)``. The batch size is dynamic unless ``dynamic_batch=False``;
* ``onnx``: the same program through the ONNX exporter (needs the ``onnx`` and ``onnxscript``
  packages, ``pip install nasir[export]``); only standard ONNX operators, no nasir ops;
* ``safetensors``: the weights, with the plain architecture's IR JSON in the file's metadata, so
  that ``load_fixed_network(path)`` lowers it again with nasir (to fine-tune or train it further).

Weights: ``weights`` is the state dict of the graph's supernet (``lower(graph, "supernet")``, or the
weights a ``nasir search`` checkpoint holds: ``search_checkpoint_weights``); the fixed network takes
each module's weights by path and folds a merged convolution's chosen kernel into the plain
convolution (``NasirModule.sliced_state_dict``), so the export predicts what the supernet
predicts at that architecture. Without weights, the network has fresh seeded initial weights.

Every export is checked before it is written: the exported program must compute what the fixed
network computes on a random input, and an ONNX model must pass ``onnx.checker`` with standard
operators only. Files are written atomically (``nasir.io``).
"""

from __future__ import annotations

import importlib.util
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from nasir.checkpoint import CheckpointMeta, build_for_state, checkpoint_writer, load_checkpoint_as
from nasir.diagnostics import NasirError
from nasir.io import Writer, atomic_write, check_output
from nasir.ir.arch import ArchSource, load_architecture, resolve_arch
from nasir.ir.fix import fix_architecture
from nasir.ir.graph import Graph
from nasir.ir.verify import verify
from nasir.lowering import NasirModule, lower

FORMATS = ("onnx", "pt2", "safetensors")
#: ONNX operator domains of standard operators; anything else would need a custom runtime.
STANDARD_ONNX_DOMAINS = ("", "ai.onnx")
#: Exported and fixed outputs may differ by rounding (another order of operations), not more.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


class FixedNetworkMeta(CheckpointMeta):
    """Metadata of a ``safetensors`` export: the plain network's IR and the architecture it is."""

    kind: Literal["fixed-network"] = "fixed-network"
    #: IR JSON of the plain architecture (no choices): ``Graph.from_json`` reads it.
    ir: str
    #: The architecture the network was fixed at, ``{parameter: candidate name}``.
    arch: dict[str, str]


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote and how it was checked."""

    path: Path
    format: str
    parameters: int
    #: Largest difference between the exported program's output and the fixed network's.
    max_difference: float
    #: Names of the network's inputs (an ONNX session's feed names).
    inputs: tuple[str, ...] = ()


def fixed_network(graph: Graph, arch: ArchSource, weights: Mapping[str, torch.Tensor] | None = None, *,
                  seed: int = 0) -> NasirModule:
    """``graph`` at ``arch`` as a plain fixed network (``lower(graph, "fixed")``), with a trained
    supernet's ``weights`` folded in when given; in eval mode, ready to run or export."""
    module = lower(graph, "fixed", arch=arch, seed=seed)
    if weights is not None:
        module.load_state_dict(module.sliced_state_dict(weights))
    return module.eval()


def plain_network(graph: Graph, arch: ArchSource, fixed: NasirModule) -> tuple[Graph, NasirModule]:
    """The plain architecture as IR (no choices, merged convs or architecture parameters) and its
    lowering, carrying a copy of the weights of ``fixed`` (``fixed_network(graph, arch, ...)``) by IR path."""
    plain = graph.copy_deep()
    fix_architecture(plain, resolve_arch(graph, arch))
    module = lower(plain, "fixed", arch={})
    weights = {fixed.ir_name(key): value for key, value in fixed.state_dict().items()}
    state = {}
    for key in module.state_dict():
        ir = module.ir_name(key)
        if ir not in weights:  # pragma: no cover - the two lowerings name modules by the same IR paths
            raise NasirError(f"internal error: the plain network's {ir!r} is not in the fixed network")
        state[key] = weights[ir].clone()
    module.load_state_dict(state, assign=True)  # assign: the fixed network's dtype and device too
    return plain, module.train(fixed.training)


def example_inputs(graph: Graph, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the graph's input shapes with a batch dimension (what exports trace with)."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *node.shape, generator=generator) for node in graph.body.inputs)


def export(graph: Graph, arch: ArchSource, weights: Mapping[str, torch.Tensor] | None = None, *, format: str,
           path: str | Path, dynamic_batch: bool = True, seed: int = 0) -> Exported:
    """Write ``graph`` at ``arch`` (with a supernet's ``weights``, see the module doc) to ``path`` as
    ``format`` (one of ``FORMATS``), after checking the export against the fixed network."""
    if format not in FORMATS:
        raise NasirError(f"unknown export format {format!r}", hint=f"choose one of {', '.join(FORMATS)}")
    if format == "onnx":
        require_onnx()
    check_output(path)
    fixed = fixed_network(graph, arch, weights, seed=seed)
    plain, module = plain_network(graph, arch, fixed)
    inputs = example_inputs(graph)
    with torch.no_grad():
        expected = fixed(*inputs)
    if format == "safetensors":
        writer = _fixed_network_writer(plain, load_architecture(arch, graph).arch, module)
        with torch.no_grad():
            difference = _difference(module(*inputs), expected)
        atomic_write(path, writer)
        return Exported(Path(path), format, sum(p.numel() for p in module.parameters()), difference)
    return _export_plain(module, inputs, expected, format, path, dynamic_batch)


def export_fixed_file(source: str | Path, *, format: str, path: str | Path, dynamic_batch: bool = True) -> Exported:
    """Write the fixed network of a ``safetensors`` export (or of ``nasir train -o``) as ``format``
    (``onnx`` or ``pt2``), checked against the network itself."""
    if format not in ("onnx", "pt2"):
        raise NasirError(f"{source} is a fixed network already; export it as onnx or pt2, not {format}")
    if format == "onnx":
        require_onnx()
    check_output(path)
    module, graph = read_fixed_network(source)
    inputs = example_inputs(graph)
    with torch.no_grad():
        expected = module(*inputs)
    return _export_plain(module, inputs, expected, format, path, dynamic_batch)


def _export_plain(module: NasirModule, inputs: tuple[torch.Tensor, ...], expected: Any, format: str,
                  path: str | Path, dynamic_batch: bool) -> Exported:
    """Export a plain network as ``onnx`` or ``pt2`` after checking the program against ``expected``."""
    program = export_program(module, inputs, dynamic_batch)
    with torch.no_grad():
        difference = _difference(program.module()(*inputs), expected)
    writer = _onnx_writer(program, inputs) if format == "onnx" else _pt2_writer(program)
    atomic_write(path, writer)
    names = tuple(node.name for node in module.graph.nodes if node.op == "placeholder")
    return Exported(Path(path), format, sum(p.numel() for p in module.parameters()), difference, names)


def save_fixed_network(graph: Graph, arch: ArchSource, fixed: NasirModule, path: str | Path) -> None:
    """Write a fixed network of ``graph`` at ``arch`` (e.g. one ``nasir train`` trained) in the
    ``safetensors`` export format: its plain IR and its weights."""
    plain, module = plain_network(graph, arch, fixed)
    atomic_write(path, _fixed_network_writer(plain, load_architecture(arch, graph).arch, module))


def _fixed_network_writer(plain: Graph, arch: dict[str, str], module: NasirModule) -> Writer:
    meta = {"kind": "fixed-network", "ir": plain.to_json(indent=None), "arch": arch}
    return checkpoint_writer(dict(module.state_dict()), meta)


def export_program(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                   dynamic_batch: bool = True) -> torch.export.ExportedProgram:
    """``torch.export`` of a fixed network (dimension 0 of every input dynamic with ``dynamic_batch``)."""
    shapes = tuple({0: torch.export.Dim("batch")} for _ in inputs) if dynamic_batch else None
    return torch.export.export(module, inputs, dynamic_shapes=shapes)


def require_onnx() -> None:
    """Raise a ``NasirError`` saying what to install when the ONNX exporter's packages are missing."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise NasirError(f"ONNX export needs the {' and '.join(missing)} package{'s' * (len(missing) > 1)}",
                         hint="pip install 'nasir[export]' (or: pip install onnx onnxscript)")


def onnx_model(program: torch.export.ExportedProgram, inputs: tuple[torch.Tensor, ...]) -> Any:
    """The ONNX model (an ``onnx.ModelProto``) of an exported program, checked: ``onnx.checker``
    passes and every operator is a standard ONNX one."""
    import onnx

    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms" and the like
    try:
        onnx_program = torch.onnx.export(program, inputs, dynamo=True, verbose=False, external_data=False)
    finally:
        registry.setLevel(level)
    model = onnx_program.model_proto
    onnx.checker.check_model(model)
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in onnx_nodes(model) if n.domain not in STANDARD_ONNX_DOMAINS})
    if foreign:  # pragma: no cover - a fixed network is plain torch
        raise NasirError(f"internal error: the ONNX model uses non-standard operators: {', '.join(foreign[:5])}")
    return model


def onnx_nodes(model: Any) -> list[Any]:
    """Every node of an ONNX model: its graph's, its subgraphs' and its local functions'."""
    nodes: list[Any] = []

    def visit(graph_nodes: Any) -> None:
        for node in graph_nodes:
            nodes.append(node)
            for attribute in node.attribute:
                for sub in [attribute.g, *attribute.graphs]:
                    visit(sub.node)

    visit(model.graph.node)
    for function in model.functions:
        visit(function.node)
    return nodes


def _pt2_writer(program: torch.export.ExportedProgram) -> Writer:
    archive = io.BytesIO()  # torch.export.save wants a name ending in .pt2; the temporary file's does not
    torch.export.save(program, archive)
    return lambda tmp: Path(tmp).write_bytes(archive.getvalue())


def _onnx_writer(program: torch.export.ExportedProgram, inputs: tuple[torch.Tensor, ...]) -> Writer:
    model = onnx_model(program, inputs)
    return lambda tmp: Path(tmp).write_bytes(model.SerializeToString())


def _difference(got: Any, expected: Any) -> float:
    got, expected = _flat(got), _flat(expected)
    worst = 0.0
    for g, e in zip(got, expected):
        if g.shape != e.shape or not torch.allclose(g, e, **TOLERANCE):
            raise NasirError("internal error: the exported network computes something else than the fixed network "
                             f"(max difference {(g - e).abs().max().item() if g.shape == e.shape else 'in shape'})")
        worst = max(worst, (g - e).abs().max().item())
    return worst


def _flat(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def search_checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The supernet weights (``state_dict``) of a ``nasir search`` checkpoint."""
    from nasir.search.darts import SearchCheckpoint

    tensors, _ = load_checkpoint_as(path, SearchCheckpoint, "supernet search")
    return {key.removeprefix("model."): value for key, value in tensors.items() if key.startswith("model.")}


def load_fixed_network(path: str | Path) -> NasirModule:
    """Lower a ``safetensors`` export again: its plain IR, with its weights (checked against it)."""
    return read_fixed_network(path)[0]


def read_fixed_network(path: str | Path) -> tuple[NasirModule, Graph]:
    """``load_fixed_network``, and the plain IR it lowered."""
    tensors, meta = load_checkpoint_as(path, FixedNetworkMeta, "fixed-network export")
    graph = Graph.from_json(meta.ir, f"{path} (IR)")
    verify(graph)
    if graph.arch:
        raise NasirError(f"{path}: the stored IR still has architecture parameters; a fixed-network export has none")
    module = build_for_state(lambda: lower(graph, "fixed", arch={}), tensors, str(path))
    return module.eval(), graph
