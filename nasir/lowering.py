"""Lowering: IR graph -> ``torch.fx.GraphModule``.

Three modes:

* ``supernet``: every choice is a softmax-weighted sum of its candidates (DARTS); architecture
  parameters live in ``self.arch`` (an ``nn.ParameterDict``), separate from the weights.
* ``sampled``: one path per forward, picked by ``self.sampler`` (uniform for SPOS/DNA, Gumbel for
  GDAS, fixed for rating one path); only that path runs.
* ``fixed``: one given architecture, inlined: no choice modules, no architecture parameters, a
  compact module that ``torch.export`` accepts.

Width choices (``nasir.ir.width``) share one weight of the largest width: supernet mode runs it
whole and masks the channels each width drops where a conv or linear reads them, weighted by the
architecture probabilities (FBNetV2); sampled mode slices the weights to the picked widths on
every forward (``nasir.runtime.SlicedConv2d``...); fixed mode builds plain layers of the chosen
widths, whose weights are the supernet's first channels (``NasirModule.sliced_state_dict``).

Submodules are named after IR node paths (``cells.0.n.2.1.sep_conv_3x3.dwconv``), so state dicts
are stable across runs, and a fixed module's weights are the supernet's weights of the same path.
A name that would clash with a module attribute (``forward``, ``arch``) gets a trailing underscore;
``nasir.module_names`` has the rule.
"""

from __future__ import annotations

import functools
import importlib
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from nasir.diagnostics import NasirError, SourceLoc
from nasir.ir.arch import Architecture, ArchSource, derive_architecture, resolve_arch
from nasir.ir.cost import check_weight_budget
from nasir.ir.fix import fold_merged_conv
from nasir.ir.graph import Graph
from nasir.ir.nodes import (
    BlockNode,
    ChoiceNode,
    ConcatNode,
    GateNode,
    InputNode,
    MergedConvNode,
    OpNode,
    OutputNode,
    Region,
    SumNode,
)
from nasir.ir.ops import OpAttrs, TorchCall
from nasir.ir.rewrite import aux_head, used_arch
from nasir.ir.verify import infer_shapes
from nasir.ir.width import WidthAnalysis, WidthUse, check_widths, fix_widths
from nasir.merged_runtime import emit_merge_banks, merged_choice
from nasir.module_names import install, module_name, module_path, module_paths
from nasir.runtime import (
    SLICED_MODULES,
    AuxHead,
    ChannelGate,
    ChoiceModule,
    Sampler,
    UniformSampler,
    derived_weights,
    width_mask,
)

MODES = ("supernet", "sampled", "fixed")


def arch_key(name: str) -> str:
    """``normal.n.0.1`` -> ``normal_n_0_1``: a valid ParameterDict key and Python identifier
    (``module_name`` of it: an arch parameter named ``keys`` or ``training`` gets ``keys_``)."""
    return module_name(re.sub(r"\W", "_", name))


def _arch_keys(names: list[str]) -> dict[str, str]:
    """``arch_key`` of each name, with underscores appended in sorted-name order where two meet (``a.b``, ``a_b``)."""
    keys: dict[str, str] = {}
    for name in sorted(names):
        key = arch_key(name)
        while key in keys.values():
            key += "_"
        keys[name] = key
    return keys


def _ident(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


@dataclass(frozen=True)
class Fold:
    """Where a fixed network's folded weight comes from: a supernet kernel (state-dict key), normalized
    or not, times a pointwise kernel (``nasir.ir.fix.FoldedOp.pointwise``) or not."""

    source: str
    normalize: bool
    pointwise: str | None = None


class NasirModule(fx.GraphModule):
    """A lowered search space. Feels like any ``nn.Module``; adds the NAS handles."""

    def arch_parameters(self) -> list[nn.Parameter]:
        """The search parameters: the alphas of the choices, then the edge weights of edge-normalized
        sums (PC-DARTS betas, if the ``partial-channel`` pass made any)."""
        return [p for _, p in self.named_arch_parameters()]

    def named_arch_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """``(IR name, parameter)`` of every search parameter; an edge weight is named ``<group>.edges``."""
        arch = getattr(self, "arch", None)
        names = getattr(self, "arch_names", {})
        out = [(names.get(k, k), p) for k, p in arch.named_parameters()] if arch is not None else []
        edges = getattr(self, "edge_arch", None)
        if edges is not None:
            out += [(f"{self.edge_names[k]}.edges", p) for k, p in edges.named_parameters()]
        return out

    def weight_parameters(self) -> list[nn.Parameter]:
        arch_ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch_ids]

    def set_sampler(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def derive(self) -> Architecture:
        """The architecture the current architecture parameters pick, candidates named, the DARTS
        way: every parameter its heaviest candidate, except that each input group keeps only its
        ``n_chosen`` strongest edges and drops the others to 'none' (``derive_architecture``); edge
        weights (PC-DARTS) scale the strengths of their group's edges."""
        weights = {self.arch_names[k]: torch.softmax(p.detach().float(), -1).tolist()
                   for k, p in self.arch.named_parameters()}
        edges = getattr(self, "edge_arch", None)
        edge_weights = {self.edge_names[k]: torch.softmax(p.detach().float(), -1).tolist()
                        for k, p in edges.named_parameters()} if edges is not None else None
        return derive_architecture(self.arch_space, weights, edge_weights)

    def sliced_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This module's state taken from ``state``, the state of a supernet or sampled lowering of the
        same graph (or the weights of a ``nasir search`` checkpoint). In fixed mode the weights and
        statistics of layers following width choices are cut to the chosen widths (the first channels of
        every width segment), and the plain convolution a merged convolution became takes the chosen
        candidate's kernel, normalized where the graph normalizes kernels (``reparam{kernel_norm=true}``)
        as the supernet does at run time; the rest is copied. A missing or misshapen entry is a ``NasirError``.
        ``fixed.load_state_dict(fixed.sliced_state_dict(supernet.state_dict()))`` inherits the weights."""
        slices = getattr(self, "weight_slices", {})
        folds = getattr(self, "ir_folds", {})
        out = {}
        for key, own in self.state_dict().items():
            fold = folds.get(key)
            source = fold.source if fold is not None else key
            if source not in state:
                raise NasirError(f"the given state has no entry {source!r}" + (f" (for {key!r})" if fold else ""),
                                 hint="give the weights of a supernet of the same graph: same file, -D values and passes")
            value = state[source]
            if fold is not None and fold.pointwise is not None and fold.pointwise not in state:
                raise NasirError(f"the given state has no entry {fold.pointwise!r} (for {key!r})",
                                 hint="give the weights of a supernet of the same graph: same file, -D values and passes")
            if fold is not None and fold.normalize:
                from nasir.kernels.reference import normalized_kernel  # the kernels' package loads torch._dynamo

                value = normalized_kernel(value, state[fold.pointwise] if fold.pointwise is not None else None)
            for dim, kept in enumerate(slices.get(key.rpartition(".")[0], ())):
                if kept is not None and value.dim() > dim:
                    value = value.index_select(dim, torch.tensor(kept, dtype=torch.long, device=value.device))
            if value.shape != own.shape:
                raise NasirError(f"entry {source!r} of the given state has shape {list(value.shape)}, {key!r} needs "
                                 f"{list(own.shape)}", hint="the weights come from another graph")
            out[key] = value
        return out

    def ir_name(self, name: str) -> str:
        """The IR path behind a module, parameter or buffer name of this module (``forward_.conv.weight``
        -> ``forward.conv.weight``): ``nasir.module_names`` explains why the two may differ."""
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            ir_path = self.ir_paths.get(".".join(parts[:k]))
            if ir_path is not None:
                return ".".join([ir_path, *parts[k:]])
        return name


def lower(graph: Graph, mode: str = "supernet", arch: ArchSource | None = None,
          sampler: Sampler | None = None, seed: int | None = None) -> NasirModule:
    """Lower ``graph`` to a ``torch.fx`` module.

    ``arch`` (fixed mode): an ``Architecture``, a mapping of parameters to candidate names or
    indices, or a path to an architecture file (JSON, DARTS genotype or NB201 string), see
    ``nasir.ir.arch.load_architecture``. ``sampler`` (sampled mode) defaults to uniform sampling.
    ``seed`` makes weight init repeatable.
    """
    if mode not in MODES:
        raise NasirError(f"unknown lowering mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    infer_shapes(graph)
    check_weight_budget(graph)
    widths = check_widths(graph)
    fixed: dict[str, int] = {}
    slices: dict[str, tuple] = {}
    if mode == "fixed":
        fixed = resolve_arch(graph, arch or {})
        if widths is not None:  # plain layers of the chosen widths; their weights: the first channels
            slices = {path: use.dims(fixed) for path, use in widths.uses.items()}
            graph = graph.copy_deep()
            fix_widths(graph, fixed)
            infer_shapes(graph)
            widths = None
    if seed is not None:
        torch.manual_seed(seed)
    lowerer = _Lowerer(graph, mode, fixed, widths)
    root = nn.Module()
    fx_graph = lowerer.top(root)
    module = NasirModule(root, fx_graph, class_name=_ident(graph.name).title().replace("_", ""))
    if mode != "fixed":
        params = nn.ParameterDict()
        for name, key in lowerer.arch_keys.items():
            # DARTS initialises alphas to 1e-3 * randn
            params[key] = nn.Parameter(1e-3 * torch.randn(graph.arch[name].size))
        module.arch = params
        module.arch_names = {key: name for name, key in lowerer.arch_keys.items()}
        if lowerer.edge_keys:  # PC-DARTS initialises betas like alphas
            module.edge_arch = nn.ParameterDict({
                key: nn.Parameter(1e-3 * torch.randn(len(lowerer.edge_groups[group].members)))
                for group, key in lowerer.edge_keys.items()})
            module.edge_names = {key: group for group, key in lowerer.edge_keys.items()}
        #: what ``derive`` names and groups by: the graph's parameter table, without its body
        module.arch_space = Graph(name=graph.name, arch=graph.arch, input_groups=graph.input_groups)
    if mode == "sampled":
        module.sampler = sampler or UniformSampler()
    module.ir_mode = mode
    module.ir_paths = {path: ir_path for ir_path, path in lowerer.paths.items()}
    module.weight_slices = {lowerer.paths[path]: dims for path, dims in slices.items()}
    module.ir_folds = lowerer.folds
    module.graph.lint()  # the GraphModule constructor generated ``code``; the graph has not changed since
    return module


class _Lowerer:
    def __init__(self, graph: Graph, mode: str, fixed: dict[str, int], widths: WidthAnalysis | None):
        self.graph = graph
        self.mode = mode
        self.fixed = fixed
        #: How each op follows width choices (None: no width choice, or fixed mode, where they are plain widths).
        self.widths = widths
        #: ``arch`` ParameterDict key of every architecture parameter the graph uses (none in fixed mode).
        self.arch_keys = _arch_keys(list(used_arch(graph.body))) if mode != "fixed" else {}
        #: IR path -> module path of every node (``nasir.module_names``), and of the ops folded merged convs become.
        self.paths = module_paths(graph)
        #: Input groups whose edge weights scale a sum (``SumNode.edge_weights``), and their ``edge_arch`` keys.
        self.edge_groups = {g.name: g for g in graph.input_groups}
        self.edge_keys = _arch_keys(sorted({n.edge_weights for _, n, _ in graph.walk()
                                            if isinstance(n, SumNode) and n.edge_weights is not None})) \
            if mode != "fixed" else {}
        self.edge_vectors: dict[str, fx.Node] = {}
        #: Fixed mode: values known to be zero (a picked 'none'), left out of sums and then erased.
        self.zeros: set[fx.Node] = set()
        #: Fixed mode: state-dict key of each folded weight -> the supernet's kernel it is made from.
        self.folds: dict[str, Fold] = {}
        #: module path -> what the merge banks built for that merged conv (supernet mode).
        self.prepared: dict[str, fx.Node] = {}
        #: supernet mode: derived-weight vectors and single weights already emitted, shared by choices
        self.weight_nodes: dict[tuple, fx.Node] = {}

    # -- entry --------------------------------------------------------------------------------
    def top(self, root: nn.Module) -> fx.Graph:
        g = fx.Graph()
        env: dict[str, fx.Node] = {}
        for node in self.graph.body.inputs:
            env[node.name] = g.placeholder(_ident(node.name))
        vectors: dict[str, fx.Node] = {}
        for name, key in self.arch_keys.items():
            alpha = g.get_attr(f"arch.{key}")
            if self.mode == "supernet":
                vectors[name] = _fn(g, torch.softmax, (alpha, -1), name=f"p_{key}")
            else:
                vectors[name] = g.create_node("call_module", "sampler", (alpha, name), name=f"h_{key}")
        for group, key in self.edge_keys.items():
            beta = g.get_attr(f"edge_arch.{key}")
            self.edge_vectors[group] = _fn(g, torch.softmax, (beta, -1), name=f"e_{key}")
        if self.mode == "supernet":  # kernels of depthwise -> pointwise merged convs, built in batches
            self.prepared = emit_merge_banks(g, root, self.graph, self.paths, vectors)
        head = aux_head(self.graph.body)
        outs = self.region(g, root, self.graph.body, "", "", env, vectors, skip=frozenset(head))
        if head:
            outs = [self.auxiliary(g, root, head, outs[0], env, vectors)]
        g.output(outs[0] if len(outs) == 1 else tuple(outs))
        for node in reversed(list(g.nodes)):
            if node in self.zeros and not node.users:
                g.erase_node(node)
        # get_attr targets must exist on the root while building the GraphModule
        root.arch = nn.ParameterDict({key: nn.Parameter(torch.zeros(self.graph.arch[name].size))
                                      for name, key in self.arch_keys.items()})
        if self.edge_keys:
            root.edge_arch = nn.ParameterDict({key: nn.Parameter(torch.zeros(len(self.edge_groups[group].members)))
                                               for group, key in self.edge_keys.items()})
        if self.mode == "sampled":
            root.sampler = UniformSampler()
        return g

    # -- regions ------------------------------------------------------------------------------
    def region(self, g: fx.Graph, root: nn.Module, region: Region, ir_prefix: str, root_path: str,
               env: dict[str, fx.Node], vectors: dict[str, fx.Node], skip: frozenset[str] = frozenset()) -> list[fx.Node]:
        """Emit ``region``'s nodes into ``g``, but those in ``skip`` (the auxiliary head, lowered on its own).
        ``ir_prefix`` + a node's name is its IR path; module targets are its module path (``self.paths``)
        relative to ``root``, which sits at ``root_path``."""
        outs: list[fx.Node] = []
        masked: dict[str, fx.Node] = {}  # supernet mode: values read by consumers of width choices, masked
        for node in region.nodes:
            if node.kind == "input" or node.name in skip:
                continue
            args = [env[i] for i in node.inputs]
            ir_path = ir_prefix + node.name
            target = self.paths[ir_path].removeprefix(root_path)
            name = _ident(target)
            if isinstance(node, OutputNode):
                outs.append(args[0])
                continue
            if isinstance(node, OpNode):
                use = self.widths.uses.get(ir_path) if self.widths is not None else None
                if use is None:
                    env[node.name] = self.op(g, root, node.attrs, region[node.inputs[0]].shape, target, name, args[0], node.loc)
                elif self.mode == "supernet":
                    x = args[0]
                    if use.masks_input:
                        if node.inputs[0] not in masked:
                            masked[node.inputs[0]] = self.mask(g, x, use, vectors)
                        x = masked[node.inputs[0]]
                    env[node.name] = self.op(g, root, node.attrs, region[node.inputs[0]].shape, target, name, x, node.loc)
                else:
                    env[node.name] = self.sliced(g, root, node, region, target, name, args[0], use, vectors)
            elif isinstance(node, SumNode) and node.edge_weights in self.edge_vectors:
                q = self.edge_vectors[node.edge_weights]
                terms = [_fn(g, operator.mul, (_fn(g, operator.getitem, (q, i)), a)) for i, a in enumerate(args)]
                acc = terms[0]
                for k, t in enumerate(terms[1:]):
                    acc = _fn(g, operator.add, (acc, t), name=name if k == len(terms) - 2 else None)
                env[node.name] = acc
            elif isinstance(node, SumNode):
                args = [a for a in args if a not in self.zeros] or args[:1]  # fixed mode: dropped edges add nothing
                acc = args[0]
                for k, a in enumerate(args[1:]):
                    last = k == len(args) - 2
                    acc = _fn(g, operator.add, (acc, a), name=name if last else None)
                env[node.name] = acc
            elif isinstance(node, ConcatNode):
                env[node.name] = _fn(g, torch.cat, (list(args),), {"dim": 1}, name=name)
            elif isinstance(node, ChoiceNode):
                env[node.name] = self.choice(g, root, node, region, ir_path, root_path, name, args, vectors)
            elif isinstance(node, MergedConvNode) and self.mode == "fixed":
                env[node.name] = self.folded(g, root, node, region[node.inputs[0]].shape, ir_path, target, name, args[0])
            elif isinstance(node, MergedConvNode):
                env[node.name] = self.merged(g, root, node, region, target, name, args[0], vectors)
            elif isinstance(node, GateNode):
                install(root, target, ChannelGate(node.channels, node.group), node.loc)
                env[node.name] = g.create_node("call_module", target, (args[0],), name=name)
            elif isinstance(node, BlockNode):
                inner_env = {i.name: a for i, a in zip(node.body.inputs, args)}
                env[node.name] = self.region(g, root, node.body, f"{ir_path}.", root_path, inner_env, vectors)[0]
            else:  # pragma: no cover
                raise NasirError(f"cannot lower node kind {node.kind!r}", node.loc)
        return outs

    def op(self, g: fx.Graph, root: nn.Module, attrs: OpAttrs, in_shape: list[int], target: str, name: str,
           x: fx.Node, loc: SourceLoc | None) -> fx.Node:
        """Emit what the op's ``torch_call`` names: a module call, a tensor method, a function, or nothing."""
        call = attrs.torch_call(in_shape)
        if call.target is None:
            return x
        if call.target.startswith(_TENSOR_METHOD):
            return _method(g, call.target.removeprefix(_TENSOR_METHOD), (x, *call.args), name=name)
        module = build_op_module(call)
        if module is not None:
            install(root, target, module, loc)
            return g.create_node("call_module", target, (x,), name=name)
        return _fn(g, torch_target(call.target), (x, *call.args), dict(call.kwargs), name=name)

    def mask(self, g: fx.Graph, x: fx.Node, use: WidthUse, vectors: dict[str, fx.Node]) -> fx.Node:
        """Supernet mode: ``x`` with the channels of width choices weighted by their probabilities."""
        archs = use.archs
        segments = tuple((s.size, s.repeat, archs.index(s.arch) if s.arch else -1, s.widths) for s in use.inp)
        return _fn(g, width_mask, (x, *(vectors[a] for a in archs)), {"segments": segments}, name=f"{x.name}_masked")

    def sliced(self, g: fx.Graph, root: nn.Module, node: OpNode, region: Region, target: str, name: str,
               x: fx.Node, use: WidthUse, vectors: dict[str, fx.Node]) -> fx.Node:
        """Sampled mode: the op's layer at the largest widths, sliced to the picked ones on every forward."""
        call = node.attrs.torch_call(region[node.inputs[0]].shape)
        sliced = SLICED_MODULES.get(torch_target(call.target)) if call.target else None
        if sliced is None:
            raise NasirError(f"{node.attrs.op} cannot follow a width choice in sampled mode", node.loc)
        module = sliced(*call.args, **call.kwargs)
        module.follow_widths(use)
        install(root, target, module, node.loc)
        return g.create_node("call_module", target, (x, *(vectors[a] for a in use.archs)), name=name)

    def _needed_arch(self, root: Region | ChoiceNode, ir_prefix: str) -> list[str]:
        """Architecture parameters a choice or candidate reads: its own, and those of width choices its ops follow."""
        widths = self.widths.archs_under(ir_prefix) if self.widths is not None else set()
        return sorted(used_arch(root) | widths)

    def _widths_read(self, names: set[str]) -> set[str]:
        """Width parameters that the ops of the top-level nodes ``names`` (and of their regions) follow."""
        if self.widths is None:
            return set()
        return {arch for path, use in self.widths.uses.items()
                if path in names or any(path.startswith(f"{n}.") for n in names) for arch in use.archs}

    def choice(self, g: fx.Graph, root: nn.Module, node: ChoiceNode, region: Region, ir_path: str, root_path: str,
               name: str, args: list[fx.Node], vectors: dict[str, fx.Node]) -> fx.Node:
        if self.mode == "fixed":
            pick = self.fixed[node.arch]
            for cand, cover in zip(node.candidates, node.covers):
                if pick in cover:
                    inner = {i.name: a for i, a in zip(cand.body.inputs, args)}
                    out = self.region(g, root, cand.body, f"{ir_path}.{cand.name}.", root_path, inner, vectors)[0]
                    if _is_zero(cand.body):
                        self.zeros.add(out)
                    return out
            # the chosen original candidate was dropped from this choice (it computes zero)
            out = _fn(g, torch.mul, (args[0], 0.0), name=name)
            self.zeros.add(out)
            return out
        if self.mode == "supernet":
            return self.mixed(g, root, node, ir_path, root_path, name, args, vectors)
        path = self.paths[ir_path]
        arch_args = self._needed_arch(node, f"{ir_path}.")
        cand_mods: dict[str, nn.Module] = {}
        cand_args: list[list[str]] = []
        zero: list[bool] = []
        for cand in node.candidates:
            sub_arch = self._needed_arch(cand.body, f"{ir_path}.{cand.name}.")
            key = module_name(cand.name)
            cand_mods[key] = self.sub_module(cand.body, sub_arch, f"{ir_path}.{cand.name}.", f"{path}.{key}.")
            cand_args.append(sub_arch)
            zero.append(_is_zero(cand.body))
        module = ChoiceModule(cand_mods, node.covers, node.domain, node.arch, arch_args, cand_args, zero,
                              len(args), self.mode)
        target = path.removeprefix(root_path)
        install(root, target, module, node.loc)
        return g.create_node("call_module", target, tuple(args) + tuple(vectors[a] for a in arch_args), name=name)

    def mixed(self, g: fx.Graph, root: nn.Module, node: ChoiceNode, ir_path: str, root_path: str, name: str,
              args: list[fx.Node], vectors: dict[str, fx.Node]) -> fx.Node:
        """Supernet mode: candidates inline, then ``w0 * out0 + w1 * out1 + ...``.

        Zero candidates are skipped (they add nothing) unless all are zero: then the first one
        stands for the zero output. Derived weights (PMS groups) are computed from the original
        softmax by ``derived_weights``, once per forward for all choices with the same parameter,
        covers and domain (cells of one type share their parameters), and so is each weight.
        """
        p = vectors[node.arch]
        trivial = all(len(c) == 1 for c in node.covers) and sorted(node.domain) == list(range(self.graph.arch[node.arch].size)) \
            and sorted(i for c in node.covers for i in c) == sorted(node.domain)
        key = (node.arch, tuple(map(tuple, node.covers)), tuple(node.domain))
        if not trivial and key not in self.weight_nodes:
            self.weight_nodes[key] = _fn(g, derived_weights, (p, node.covers, node.domain), name=f"{name}_w")
        weights = None if trivial else self.weight_nodes[key]
        zero = [_is_zero(cand.body) for cand in node.candidates]
        if all(zero):
            zero[0] = False
        terms = []
        for j, (cand, cover) in enumerate(zip(node.candidates, node.covers)):
            if zero[j]:
                continue
            inner = {i.name: a for i, a in zip(cand.body.inputs, args)}
            out = self.region(g, root, cand.body, f"{ir_path}.{cand.name}.", root_path, inner, vectors)[0]
            pick = (p, cover[0]) if trivial else (weights, j)
            if pick not in self.weight_nodes:
                self.weight_nodes[pick] = _fn(g, operator.getitem, pick, name=f"w_{name}_{cand.name}")
            terms.append(_fn(g, operator.mul, (self.weight_nodes[pick], out), name=f"{name}_{cand.name}_weighted"))
        acc = terms[0]
        for k, t in enumerate(terms[1:]):
            acc = _fn(g, operator.add, (acc, t), name=name if k == len(terms) - 2 else None)
        return acc

    def auxiliary(self, g: fx.Graph, root: nn.Module, head: list[str], logits: fx.Node, env: dict[str, fx.Node],
                  vectors: dict[str, fx.Node]) -> fx.Node:
        """The network's result when it has an auxiliary head (the top-level nodes ``head``, its output
        last in order): an ``AuxHead`` at the auxiliary output's path, given the logits and the values
        the head reads, whose ``head`` is the head's nodes lowered as one sub-module (``module_paths``
        put their modules there); it returns ``AuxOutput(logits, aux_logits)`` in training mode only."""
        body = self.graph.body
        inside = set(head)
        reads = list(dict.fromkeys(i for name in head for i in body[name].inputs if i not in inside))
        region = Region(nodes=[InputNode(name=name, index=k, shape=body[name].shape) for k, name in enumerate(reads)]
                        + [body[name] for name in head])
        target = self.paths[body.aux_outputs[0].name]
        arch_args = sorted(used_arch(region) | self._widths_read(inside))
        module = AuxHead(self.sub_module(region, arch_args, "", f"{target}.head."))
        install(root, target, module, body.aux_outputs[0].loc)
        args = (logits, *(env[name] for name in reads), *(vectors[a] for a in arch_args))
        return g.create_node("call_module", target, args, name=_ident(target))

    def sub_module(self, region: Region, arch_args: list[str], ir_prefix: str, root_path: str) -> fx.GraphModule:
        """Lower a candidate region to its own GraphModule taking (inputs..., arch vectors...), to sit at ``root_path``."""
        g = fx.Graph()
        env = {n.name: g.placeholder(_ident(n.name)) for n in region.inputs}
        vectors = {a: g.placeholder(f"p_{self.arch_keys[a]}") for a in arch_args}
        root = nn.Module()
        outs = self.region(g, root, region, ir_prefix, root_path, env, vectors)
        g.output(outs[0])
        gm = fx.GraphModule(root, g, class_name="Candidate")
        gm.graph.lint()
        return gm

    def merged(self, g: fx.Graph, root: nn.Module, node: MergedConvNode, region: Region, target: str, name: str,
               x: fx.Node, vectors: dict[str, fx.Node]) -> fx.Node:
        specs = [dict(k.model_dump(), name=module_name(k.name)) for k in node.kernels]  # ParameterDict keys
        install(root, target, merged_choice(node, region[node.inputs[0]].shape, specs, self.mode), node.loc)
        return g.create_node("call_module", target, (x, self.prepared.get(target, vectors[node.arch])), name=name)

    def folded(self, g: fx.Graph, root: nn.Module, node: MergedConvNode, in_shape: list[int], ir_path: str, target: str,
               name: str, x: fx.Node) -> fx.Node:
        """Fixed mode: the plain ops the chosen kernel stands for (``nasir.ir.fix``), under the merged
        conv's path; each op's weights come from the kernel (and bias) it folds (``folds``)."""
        ops = fold_merged_conv(node, self.fixed[node.arch], in_shape)
        for k, op in enumerate(ops):
            local = op.node.name[len(node.name) + 1:]
            path = f"{self.paths[ir_path]}.{module_path(local)}"
            self.paths[f"{ir_path}.{local}"] = path
            last = k == len(ops) - 1
            x = self.op(g, root, op.node.attrs, in_shape, f"{target}.{module_path(local)}",
                        name if last else _ident(f"{target}.{local}"), x, node.loc)
            in_shape = op.node.shape
            for param, source in op.params.items():
                weight = param == "weight"
                pointwise = self.paths[f"{ir_path}.{op.pointwise}"] if weight and op.pointwise else None
                self.folds[f"{path}.{param}"] = Fold(self.paths[f"{ir_path}.{source}"], op.normalize and weight, pointwise)
            if op.node.attrs.op == "zero":  # a picked 'none' the merge dropped: left out of sums, like a choice's
                self.zeros.add(x)
        return x


def _fn(g: fx.Graph, fn: Any, args: tuple, kwargs: dict | None = None, name: str | None = None) -> fx.Node:
    return g.create_node("call_function", fn, args, kwargs or {}, name=name)


def _method(g: fx.Graph, method: str, args: tuple, name: str | None = None) -> fx.Node:
    return g.create_node("call_method", method, args, {}, name=name)


#: ``TorchCall`` targets under this prefix are methods of the input tensor (``x.mean(...)``).
_TENSOR_METHOD = "torch.Tensor."


@functools.cache
def torch_target(path: str) -> Any:
    """The object a dotted ``TorchCall`` target names (``torch.nn.Conv2d``, ``nasir.runtime.Zero``)."""
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def build_op_module(call: TorchCall) -> nn.Module | None:
    """The module an op's ``torch_call`` builds (a primitive with weights or a window); ``None`` when
    the op lowers to a function, a tensor method or nothing (relu, global_avg_pool, identity)."""
    if call.target is None or call.target.startswith(_TENSOR_METHOD):
        return None
    cls = torch_target(call.target)
    if isinstance(cls, type) and issubclass(cls, nn.Module):
        return cls(*call.args, **call.kwargs)
    return None


def _is_zero(region: Region) -> bool:
    ops = [n for n in region.nodes if n.kind not in ("input", "output")]
    return len(ops) == 1 and isinstance(ops[0], OpNode) and ops[0].attrs.op == "zero"
