"""Random search spaces for property tests: spaces nobody wrote by hand, so no pass is tuned to them.

``random_space(seed)`` writes a small ``.nas`` network, deterministic in ``seed``, that mixes what
real spaces hold and what trips compilers up:

* choices over dense, grouped and depthwise convolutions of several kernels, dilations and
  strides, separable pairs and stacks whose shared ReLU prefixes, BatchNorm suffixes and floating
  BN -> ReLU middles give PMS and FMS something to share, max and average pools (with and without
  ``count_include_pad``), identity, zero, ``factorized_reduce``, value choices, parallel sums and
  choices nested inside candidates;
* width choices with shared weights: inverted bottlenecks ``conv(C * one_of [1, 2], 1) -> ... ->
  conv(C, 1)`` as candidates (some with a kernel choice reading the chosen width), a stem layer
  whose two convolutions' widths a sum ties, and a classifier with a width choice. They are drawn
  from a second random stream, so adding them left every other part of each space as it was;
* DARTS-like cells whose nodes pick ``input_choice(k, ...)`` edges, stacked with reduction cells,
  their architecture parameters tied through ``shares`` keys;
* odd and non-square spatial sizes through stride-2 candidates, and names that are also
  ``nn.Module`` attributes (``forward``, ``training``...).

Channel counts and resolutions are tiny, so hundreds of spaces compile, lower and run in seconds.
``brute_force_size`` is the independent check of ``Graph.search_space_size``: it enumerates every
assignment of the architecture parameters (and every top-k subset of the input groups) and counts
the distinct architectures they reach.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from nasir.frontends.elaborate import parse_string
from nasir.ir.graph import Graph
from nasir.ir.names import fresh_name
from nasir.ir.nodes import ChoiceNode, MergedConvNode, OpNode, Region, sub_regions

__all__ = ["GeneratedSpace", "brute_force_size", "random_space", "random_spaces"]

#: Candidate and tensor names that are also attributes of every ``nn.Module``.
MODULE_ATTRIBUTE_NAMES = ("forward", "training", "cuda", "arch", "half", "state_dict")


@dataclass(frozen=True)
class GeneratedSpace:
    """One generated space: its ``.nas`` text and the shape of its input (without the batch)."""

    seed: int
    text: str
    input_shape: tuple[int, int, int]

    @cached_property
    def graph(self) -> Graph:
        """The elaborated, verified graph (parsed once; callers copy it before rewriting)."""
        return parse_string(self.text, filename=f"<generated {self.seed}>")

    def batch_shape(self, batch: int = 2) -> tuple[int, ...]:
        return (batch, *self.input_shape)


def random_spaces(count: int, start: int = 0) -> Iterator[GeneratedSpace]:
    """``random_space(seed)`` for ``count`` consecutive seeds from ``start``."""
    return (random_space(seed) for seed in range(start, start + count))


def random_space(seed: int) -> GeneratedSpace:
    """A small random network exercising choices, nested choices, cells, input choices and ``shares``."""
    return _SpaceWriter(random.Random(seed), seed).write()


# -- the writer ----------------------------------------------------------------------------------
#: Candidate kinds and how often each is drawn (``nested``, a choice inside the candidate, is added
#: while choices are less than two deep).
_CANDIDATE_KINDS = {"conv": 4, "grouped": 1, "dwconv": 2, "pair": 2, "rcb": 3, "sep": 3, "dil": 2, "cbr": 2, "pool": 3,
                    "skip": 2, "zero": 2, "value": 1, "sum": 1, "act": 1}
#: Network layers and how often each is drawn.
_LAYER_KINDS = {"choice": 4, "residual": 2, "cells": 3, "inputs": 1, "widen": 1}


class _SpaceWriter:
    """Writes one space: choice templates (``choice chN(C, stride)``), cell templates and the network.

    Candidate texts use the template parameters ``C`` (channels, in = out) and ``stride`` (1 or 2),
    so every template works at every place it is applied; all stride-2 candidates produce
    ceil(H / 2) x ceil(W / 2), so the candidates of a choice always agree on their output shape.
    The writer tracks the channels and spatial size of the current tensor to keep strides legal.
    """

    def __init__(self, rng: random.Random, seed: int):
        self.rng = rng
        #: draws the width choices (a stream of its own, so they do not move the rest of the space)
        self.width_rng = random.Random(f"widths {seed}")
        self.seed = seed
        self.defs: list[str] = []  # templates, in definition order
        self.lines: list[str] = []  # statements of the network
        self.n_choices = 0
        self.n_cells = 0
        self.names: set[str] = {"x", "h"}
        self.current = "h"
        self.channels = rng.choice((2, 4))
        self.size = [0, 0]

    # -- candidates (text in C and stride) ------------------------------------------------------
    def candidate(self, depth: int) -> tuple[str, str]:
        """(base name, module text) of one random candidate at nesting ``depth``."""
        kinds = dict(_CANDIDATE_KINDS)
        if depth < 2:
            kinds["nested"] = 2 if depth == 0 else 1
        kind = self.rng.choices(list(kinds), list(kinds.values()))[0]
        base, text = getattr(self, f"_cand_{kind}")(self.rng.choice((1, 3, 3, 5)), depth)
        if self.width_rng.random() < 0.04:
            return self._cand_bottleneck()
        return base, text

    def _cand_bottleneck(self) -> tuple[str, str]:
        """An inverted bottleneck whose expansion is a width choice (weights shared across widths);
        the depthwise conv follows the chosen width, alone or as a kernel choice (which ``reparam``
        must leave unmerged)."""
        w = self.width_rng
        dw = "dwconv(one_of [3, 5], stride)" if w.random() < 0.4 else f"dwconv({w.choice((1, 3))}, stride)"
        affine = "true" if w.random() < 0.5 else "false"
        return "wide", f"conv(C * one_of [1, 2], 1) -> bn(affine = {affine}) -> relu -> {dw} -> conv(C, 1)"

    def _dilation(self, k: int) -> str:
        return ", dilation = 2" if k > 1 and self.rng.random() < 0.3 else ""

    def _affine(self, p_true: float) -> str:
        return "true" if self.rng.random() < p_true else "false"

    def _maybe_bn(self) -> str:
        return " -> bn(affine = false)" if self.rng.random() < 0.5 else ""

    def _cand_conv(self, k: int, depth: int) -> tuple[str, str]:
        return f"conv{k}", f"conv(C, {k}, stride{self._dilation(k)})"

    def _cand_grouped(self, k: int, depth: int) -> tuple[str, str]:
        return f"gconv{k}", f"conv(C, {k}, stride, groups = 2)"

    def _cand_dwconv(self, k: int, depth: int) -> tuple[str, str]:
        return f"dw{k}", f"dwconv({k}, stride{self._dilation(k)})"

    def _cand_pair(self, k: int, depth: int) -> tuple[str, str]:
        return f"pair{k}", f"dwconv({k}, stride{self._dilation(k)}) -> conv(C, 1)"

    def _cand_rcb(self, k: int, depth: int) -> tuple[str, str]:
        return f"rcb{k}", f"relu -> conv(C, {k}, stride) -> bn(affine = {self._affine(0.3)})"

    def _cand_dil(self, k: int, depth: int) -> tuple[str, str]:
        """Half a separable stack: ReLU prefix and BN suffix for PMS."""
        k = max(k, 3)
        return f"dil{k}", f"relu -> dwconv({k}, stride{self._dilation(k)}) -> conv(C, 1) -> bn(affine = false)"

    def _cand_sep(self, k: int, depth: int) -> tuple[str, str]:
        """A separable stack: ReLU prefix and BN suffix for PMS, a floating BN -> ReLU middle for FMS."""
        k = max(k, 3)
        first = self._cand_dil(k, depth)[1]
        return f"sep{k}", f"{first} -> relu -> dwconv({k}{self._dilation(k)}) -> conv(C, 1) -> bn(affine = false)"

    def _cand_cbr(self, k: int, depth: int) -> tuple[str, str]:
        """A floating BN -> ReLU without the ReLU prefix of the stacks (PMS and FMS then conflict)."""
        first = self.rng.choice((f"conv(C, {k}, stride)", f"dwconv({k}, stride) -> conv(C, 1)"))
        return f"cbr{k}", f"{first} -> bn(affine = false) -> relu -> conv(C, {k}){self._maybe_bn()}"

    def _cand_pool(self, k: int, depth: int) -> tuple[str, str]:
        pool = self.rng.choice(("max_pool(3, stride)", "avg_pool(3, stride)",
                                "avg_pool(3, stride, count_include_pad = false)"))
        return pool.split("(")[0], pool + self._maybe_bn()

    def _cand_skip(self, k: int, depth: int) -> tuple[str, str]:
        return "skip", f"if stride == 1 then identity else factorized_reduce(C, affine = {self._affine(0.5)})"

    def _cand_zero(self, k: int, depth: int) -> tuple[str, str]:
        return "none", "zero(stride)"

    def _cand_value(self, k: int, depth: int) -> tuple[str, str]:
        if self.rng.random() < 0.5:
            return "vconv", "conv(C, one_of [1, 3], stride)"
        return "vdw", "dwconv(one_of [3, 5], stride) -> conv(C, 1)"

    def _cand_sum(self, k: int, depth: int) -> tuple[str, str]:
        return "par", f"sum(conv(C, {k}, stride), {self.candidate(2)[1]})"

    def _cand_act(self, k: int, depth: int) -> tuple[str, str]:
        return "act", f"conv(C, {k}, stride) -> {self.rng.choice(('relu6', 'sigmoid', 'relu'))}"

    def _cand_nested(self, k: int, depth: int) -> tuple[str, str]:
        prefix = "relu -> " if self.rng.random() < 0.4 else ""
        suffix = " -> bn(affine = false)" if self.rng.random() < 0.4 else ""
        return "nest", f"{prefix}{self.one_of(depth + 1, self.rng.randint(2, 3))}{suffix}"

    def one_of(self, depth: int, n: int) -> str:
        """A layer choice of ``n`` candidates (rarely: of two zeros), indented for ``depth``."""
        used: set[str] = set()
        items = []
        for _ in range(n):
            base, text = self.candidate(depth)
            if self.rng.random() < 0.015:
                base = self.rng.choice(MODULE_ATTRIBUTE_NAMES)
            name = fresh_name(base, used)
            used.add(name)
            items.append(f"{name}: {text}")
        if self.rng.random() < 0.01:
            items = ["a: zero(stride)", "b: zero(stride)"]
        pad = "    " * depth
        body = "".join(f"\n{pad}    {item}" for item in items)
        return f"one_of {{{body}\n{pad}}}"

    def choice_template(self) -> str:
        """Define ``choice chN(C, stride)`` with 2-6 candidates; returns its name."""
        name = f"ch{self.n_choices}"
        self.n_choices += 1
        self.defs.append(f"choice {name}(C, stride) = {self.one_of(0, self.rng.choice((2, 3, 3, 4, 4, 5, 6)))}")
        return name

    # -- network -------------------------------------------------------------------------------
    def write(self) -> GeneratedSpace:
        r = self.rng
        shape = (r.choice((1, 2, 3)), r.choice((5, 6, 7, 7, 9)), r.choice((5, 5, 6, 7, 9)))
        self.size = [shape[1], shape[2]]
        stem_channels = self.channels
        stem = r.choice(("conv(C, 3)", "conv(C, 3) -> bn", "conv(C, 1) -> relu"))
        self.lines.append(f"h = ({stem})(x)")
        if self.width_rng.random() < 0.15:
            self._layer_tied_widths()
        for layer in r.choices(list(_LAYER_KINDS), list(_LAYER_KINDS.values()), k=r.choice((1, 1, 2, 2, 3))):
            getattr(self, f"_layer_{layer}")()
        if r.random() < 0.5:
            head = "linear(one_of [2, 4]) -> relu -> linear(3)" if self.width_rng.random() < 0.2 else "linear(3)"
            self.lines.append(f"logits = (global_avg_pool -> {head})({self.current})")
            self.lines.append("output logits")
        else:
            self.lines.append(f"output {self.current}")
        body = "\n    ".join(self.lines)
        net = (f"network gen{self.seed}(C = {stem_channels}) {{\n"
               f"    input x: [{shape[0]}, {shape[1]}, {shape[2]}]\n    {body}\n}}")
        header = f"# generated by nasir.testing.spaces.random_space({self.seed})\n"
        return GeneratedSpace(self.seed, header + "\n\n".join([*self.defs, net]) + "\n", shape)

    def fresh(self, base: str) -> str:
        """An unused tensor name (now and then one that is also an ``nn.Module`` attribute)."""
        if self.rng.random() < 0.02:
            base = self.rng.choice(MODULE_ATTRIBUTE_NAMES)
        name = fresh_name(base, self.names)
        self.names.add(name)
        return name

    def stride(self) -> int:
        """2 (halving the tracked spatial size, rounding up) now and then while the map is at least 3 x 3."""
        if min(self.size) >= 3 and self.rng.random() < 0.35:
            self.size = [(s + 1) // 2 for s in self.size]
            return 2
        return 1

    def _assign(self, base: str, expr: str) -> None:
        name = self.fresh(base)
        self.lines.append(f"{name} = {expr}")
        self.current = name

    def _layer_choice(self) -> None:
        template = self.choice_template()
        self._assign("e", f"{template}({self.channels}, {self.stride()})({self.current})")

    def _layer_residual(self) -> None:
        template = self.choice_template()
        self._assign("res", f"sum({self.current}, {template}({self.channels}, 1)({self.current}))")

    def _layer_inputs(self) -> None:
        """An ``input_choice`` outside any cell, over two or three choice applications."""
        n = self.rng.randint(2, 3)
        edges = ", ".join(f"{self.choice_template()}({self.channels}, 1)({self.current})" for _ in range(n))
        self._assign("pick", f"input_choice({self.rng.randint(1, n - 1)}, [{edges}])")

    def _layer_tied_widths(self) -> None:
        """Two convolutions of one width choice, tied by a sum, read back by a 1x1 conv."""
        self.names.update(("tie_w", "width0"))  # names no ``fresh`` base reaches
        self.lines.append("tie_w = one_of [2, 3]")
        self.lines.append(f"width0 = (relu -> conv({self.channels}, 1))(sum((conv(tie_w, 3) -> bn)({self.current}), "
                          f"conv(tie_w, 1)({self.current})))")
        self.current = "width0"

    def _layer_widen(self) -> None:
        self.channels = min(2 * self.channels, 8)
        self._assign("wide", f"conv({self.channels}, 1)({self.current})")

    def _layer_cells(self) -> None:
        """A stack of 1-3 instances of one new cell template, reduction cells among them."""
        cell, out_factor = self._cell_template()
        s0 = s1 = self.current
        reduction_prev = False
        for _ in range(self.rng.choice((1, 1, 2, 2, 3))):
            reduction = min(self.size) >= 3 and self.rng.random() < 0.4
            if reduction:
                self.size = [(s + 1) // 2 for s in self.size]
                self.channels = min(2 * self.channels, 8)
            name = self.fresh("cells")
            self.lines.append(f"{name} = {cell}({self.channels}, {str(reduction).lower()}, "
                              f"{str(reduction_prev).lower()})({s0}, {s1})")
            s0, s1 = s1, name
            reduction_prev = reduction
        self.current = s1
        self.channels *= out_factor

    def _cell_template(self) -> tuple[str, int]:
        """Define ``cell cellN(C, reduction, reduction_prev)``, DARTS-like nodes over input-choice
        edges; returns its name and how many times C channels it outputs."""
        r = self.rng
        name = f"cell{self.n_cells}"
        self.n_cells += 1
        edge = self.choice_template()
        steps = r.choice((1, 1, 2))
        shares = (f' shares if reduction then "reduce{self.n_cells}" else "normal{self.n_cells}"'
                  if r.random() < 0.7 else "")
        pre = r.choice(("conv(C, 1)", "relu -> conv(C, 1) -> bn(affine = false)"))
        reduce_pre = r.choice(("factorized_reduce(C, affine = false)", "conv(C, 1, 2)"))
        last = r.randint(1, steps)
        join, factor = ("concat", last) if r.random() < 0.5 else ("sum", 1)
        self.defs.append(
            f"cell {name}(C, reduction, reduction_prev){shares} {{\n"
            f"    input s0, s1\n"
            f"    p0 = if reduction_prev then ({reduce_pre})(s0) else ({pre})(s0)\n"
            f"    p1 = ({pre})(s1)\n"
            f"    states = [p0, p1]\n"
            f"    for i in 0 .. {steps} {{\n"
            f"        n[i] = input_choice({r.choice((1, 2))}, [{edge}(C, if reduction and t < 2 then 2 else 1)(states[t])\n"
            f"                               for t in 0 .. len(states)])\n"
            f"        states = states + [n[i]]\n"
            f"    }}\n"
            f"    output {join}([states[t] for t in len(states) - {last} .. len(states)])\n"
            f"}}")
        return name, factor


# -- brute-force size ----------------------------------------------------------------------------
def brute_force_size(graph: Graph, input_rule: bool = False) -> int:
    """The number of distinct architectures of ``graph``, by enumeration (small spaces only).

    Every assignment of every architecture parameter is walked from the top: a choice records its
    parameter's value and descends into the candidate covering it, so nested choices count only
    under the candidate holding them and tied choices count once. With ``input_rule`` every input
    group also keeps each ``n_chosen``-subset of its member edges: the dropped edges are not walked,
    and a kept edge may not pick an excluded candidate (DARTS' top-2 rule). Architectures are the
    distinct (kept subsets, reached assignments) pairs. Exponential on purpose: it shares no code
    with ``Graph.search_space_size`` it checks.
    """
    params = sorted(graph.arch)
    groups = graph.input_groups if input_rule else []
    seen: set[tuple] = set()
    for kept_edges in itertools.product(*(itertools.combinations(g.members, g.n_chosen) for g in groups)):
        kept = {m: g.exclude for g, edges in zip(groups, kept_edges) for m in edges}
        dropped = {m for g in groups for m in g.members} - set(kept)
        for values in itertools.product(*(range(graph.arch[a].size) for a in params)):
            assignment = dict(zip(params, values))
            reached: set[tuple[str, int]] = set()
            _reach(graph.body, assignment, dropped, reached)
            if any(graph.arch[a].candidates[v] in kept.get(a, ()) for a, v in reached):
                continue
            seen.add((kept_edges, frozenset(reached)))
    return len(seen)


def _reach(region: Region, assignment: dict[str, int], dropped: set[str], reached: set[tuple[str, int]]) -> None:
    for node in region.nodes:
        if isinstance(node, OpNode) and node.width is not None:
            reached.add((node.width.arch, assignment[node.width.arch]))
        elif isinstance(node, (ChoiceNode, MergedConvNode)):
            if node.arch in dropped:
                continue
            value = assignment[node.arch]
            reached.add((node.arch, value))
            if isinstance(node, ChoiceNode):
                for cand, cover in zip(node.candidates, node.covers):
                    if value in cover:
                        _reach(cand.body, assignment, dropped, reached)
        else:
            for _, sub in sub_regions(node):
                _reach(sub, assignment, dropped, reached)
