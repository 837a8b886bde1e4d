"""Module paths of lowered IR nodes: IR names, made safe as ``nn.Module`` attribute names.

Lowering installs every module under its IR node's dotted name (``cells0.n0_0.sep_conv_3x3.dwconv``),
so state-dict keys and generated code read like the ``.nas`` file. Two things can stand in the way,
and both are resolved here, the same way in every lowering mode (supernet, sampled and fixed
lowerings of one graph share their state-dict keys):

* **A name that is an attribute of the module holding it.** A layer named ``forward``, ``training``,
  ``cuda``, ``eval``, ``parameters`` or ``state_dict`` cannot be an ``nn.Module`` child, and one named
  ``arch`` or ``sampler`` would be replaced by the architecture parameters or the sampler. The rule
  (``module_name``): a name component gets a trailing underscore when it is an attribute of any of
  the modules that hold lowered submodules (``nn.Module``, ``torch.fx.GraphModule``, ``NasirModule``,
  ``ChoiceModule``, ``MergedConv``, ``MergedChoice``, ``ChannelGate``, ``nn.ParameterDict``) or when it already ends
  with an underscore. Every other name is kept. To map a module path back to the IR, drop one
  trailing underscore from each component that ends with one.
* **Names that extend a module's name.** Module sharing hoists modules next to their choice and
  names them after it (``y.first``, ``y.bn`` beside the choice ``y``). When ``y`` is a module of its
  own (a ``ChoiceModule`` in sampled mode, a ``MergedConv`` after ``reparam``) it also holds those
  (``install``); and where such a name runs into one of the choice's candidates (a hoisted ``y.bn``
  beside a candidate ``bn``), it takes one more underscore.

``module_paths`` gives every node's module path; a lowered module maps its names back to IR paths
with ``NasirModule.ir_name``.
"""

from __future__ import annotations

import functools

from torch import nn

from nasir.diagnostics import NasirError, SourceLoc
from nasir.ir.graph import Graph
from nasir.ir.nodes import MergedConvNode, Node, Region, sub_regions
from nasir.ir.rewrite import aux_head

#: Attributes ``lower`` sets on every ``NasirModule``, next to its methods and submodules.
LOWERED_ATTRIBUTES = ("arch", "arch_names", "edge_arch", "edge_names", "sampler", "ir_mode", "ir_paths",
                      "weight_slices", "ir_folds", "merge_banks")


@functools.cache
def reserved_names() -> frozenset[str]:
    """Every attribute name of the modules that hold lowered submodules (instances: their
    ``__init__`` sets attributes too)."""
    import torch.fx as fx

    from nasir.lowering import NasirModule
    from nasir.merged_runtime import MergedChoice
    from nasir.runtime import ChannelGate, ChoiceModule, MergedConv

    holders = (
        NasirModule(nn.Module(), fx.Graph()),
        ChoiceModule({}, [], [], "a", ["a"], [], [], 0, "supernet"),
        MergedConv(1, 1, [], [], [], "a", 1, 1, False),
        # a fixed kernel: a factorized instance with all its attributes and no weights to draw (no RNG use)
        MergedChoice(1, 1, [{"name": "k", "kernel": 1, "dilation": 1, "source": "identity", "pointwise": True}],
                     [[0]], [0], "a", 1, 1, False, {}, "supernet"),
        ChannelGate(1, "g"),
        nn.ParameterDict(),
    )
    return frozenset(LOWERED_ATTRIBUTES).union(*(dir(h) for h in holders))


def module_name(name: str) -> str:
    """The submodule (or ``ParameterDict`` key) name of the IR name component ``name``; see the module doc."""
    return f"{name}_" if name.endswith("_") or name in reserved_names() else name


def module_path(name: str) -> str:
    """``module_name`` of every component of a dotted IR name."""
    return ".".join(module_name(part) for part in name.split("."))


def _inner_names(node: Node) -> set[str]:
    """First components of the module paths a node holds below its own: a choice's candidates, a block's nodes."""
    names: set[str] = set()
    for local, sub in sub_regions(node):
        names |= {module_name(local)} if local else {module_name(n.name.split(".")[0]) for n in sub.nodes}
    return names


def _region_paths(region: Region) -> dict[str, str]:
    """The module path of every node of ``region``, relative to the region's own prefix.

    ``module_path`` of the node's name, except where that path runs into the inner modules of
    another node of the region (``y.bn`` beside a choice ``y`` with a candidate ``bn``): the
    component that does gets one more underscore, as often as needed.
    """
    paths = {n.name: module_path(n.name) for n in region.nodes}
    inner = {n.name: _inner_names(n) for n in region.nodes}
    moved = True
    while moved:  # a node that moves may hold inner modules of its own: check again against its new path
        claimed = {f"{paths[name]}.{i}" for name, names in inner.items() for i in names}
        moved = False
        for node in region.nodes:
            parts = paths[node.name].split(".")
            for k in range(1, len(parts)):
                while ".".join(parts[: k + 1]) in claimed:
                    parts[k] += "_"
                    moved = True
            paths[node.name] = ".".join(parts)
    return paths


def module_paths(graph: Graph) -> dict[str, str]:
    """IR path (as ``Graph.walk`` gives it) -> module path, for every node at every depth.

    A ``merged_conv``'s kernels are entries too (``y.kernels.a``, ``y.pointwise.a``): they are
    ``ParameterDict`` keys, named by ``module_name`` like everything else. Every lowering mode uses
    these paths, so supernet, sampled and fixed lowerings of a graph agree on their state-dict keys.
    The nodes of an auxiliary head (``nasir.ir.rewrite.aux_head``) live in the ``AuxHead`` module at
    the auxiliary output's path, in its ``head`` (``auxiliary_head.head.aux_logits.conv``).
    """
    out: dict[str, str] = {}
    aux = graph.body.aux_outputs
    head = set(aux_head(graph.body)) - {aux[0].name} if aux else set()
    head_prefix = f"{module_path(aux[0].name)}.head." if aux else ""

    def visit(region: Region, ir_prefix: str, prefix: str) -> None:
        paths = _region_paths(region)
        for node in region.nodes:
            inside_head = region is graph.body and node.name in head
            ir_path, path = ir_prefix + node.name, (head_prefix if inside_head else prefix) + paths[node.name]
            out[ir_path] = path
            if isinstance(node, MergedConvNode):
                for holder in ("kernels", "pointwise", "biases"):
                    out.update({f"{ir_path}.{holder}.{k.name}": f"{path}.{holder}.{module_name(k.name)}"
                                for k in node.kernels})
            for local, sub in sub_regions(node):
                if local:
                    visit(sub, f"{ir_path}.{local}.", f"{path}.{module_name(local)}.")
                else:
                    visit(sub, f"{ir_path}.", f"{path}.")

    visit(graph.body, "", "")
    return out


class PathModule(nn.Module):
    """An empty module that only holds the submodules below one component of a dotted path."""


def install(root: nn.Module, target: str, module: nn.Module, loc: SourceLoc | None = None) -> None:
    """Install ``module`` at the dotted path ``target`` below ``root``, making ``PathModule`` parents.

    A module may hold others below its path: when ``y.first`` was installed before ``y``, the
    ``PathModule`` at ``y`` gives its children to the module installed there, and a later ``y.bn``
    is installed into the module at ``y``.
    """
    *path, leaf = target.split(".")
    parent = root
    for part in path:
        child = parent._modules.get(part)
        if child is None:
            child = PathModule()
            parent.add_module(part, child)
        parent = child
    existing = parent._modules.get(leaf)
    if existing is None:
        _check_free(parent, leaf, target, loc)
        parent.add_module(leaf, module)
        return
    if not isinstance(existing, PathModule):
        raise NasirError(f"two IR nodes lower to the same module path {target!r}", loc)
    for name, child in existing.named_children():
        _check_free(module, name, f"{target}.{name}", loc)
        module.add_module(name, child)
    parent._modules[leaf] = module


def _check_free(parent: nn.Module, name: str, target: str, loc: SourceLoc | None) -> None:
    if hasattr(parent, name):
        raise NasirError(f"module path {target!r} names an attribute of {type(parent).__name__}", loc,
                         "rename the IR node: only names under a module of nasir's own are made safe")
