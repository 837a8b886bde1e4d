"""IR emission shared by the front ends: the one place that turns values into graph nodes.

``Emitter`` adds nodes to one region of a graph under fresh names, tags them with the enclosing
``block``/``gate`` annotation and names architecture parameters; the Python builder API and the
DSL elaborator both build through it, so both make the same nodes the same way.
``ModuleEmitter`` adds what only the DSL needs: applying module values (``values.py``) to tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from nasir.diagnostics import NasirError, SourceLoc
from nasir.frontends.limits import MAX_CHOICE_NESTING, LimitError, Limits
from nasir.frontends.values import CellMod, LayerChoice, Mod, Named, Par, Prim, Seq, Tensor, ValueChoice, describe
from nasir.ir.graph import ArchParam, Graph
from nasir.ir.nodes import (
    Candidate,
    ChoiceNode,
    ConcatNode,
    InputNode,
    NodeBase,
    OpNode,
    OutputNode,
    Region,
    SumNode,
    WidthChoice,
)
from nasir.ir.ops import OpAttrs


@contextmanager
def temporarily(obj: Any, **values: Any) -> Iterator[None]:
    """Set attributes of ``obj`` for the duration of a ``with`` block, restoring them even on errors."""
    saved = {name: getattr(obj, name) for name in values}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)


#: Builds a candidate's body in the emitter of its region from the region's input values; returns its output.
CandidateBuilder = Callable[["Emitter", list[str]], str]


@dataclass
class Emitter:
    """Adds nodes to ``region`` of ``graph``; also says how they and their architecture parameters are named."""

    graph: Graph
    region: Region
    prefix: str = ""  # node-name prefix inside ``region`` (``cells.3.`` inside an applied cell)
    abs_prefix: str = ""  # path of ``region`` itself from the top graph
    arch_prefix: str = ""  # "normal." inside a cell that `shares "normal"`
    arch_root: str = ""  # absolute path at which shared naming starts
    block: str | None = None  # DNA block of the nodes added (a `block` annotation)
    budget: float | None = None  # DANCE channel budget of the nodes added (a `gate` annotation)
    limits: Limits | None = None  # counts the nodes against the DSL's limits (None: the Python builder)
    choice_depth: int = 0  # how many choices ``region`` is a candidate body of
    #: value-choice key -> its width parameter (shared by the emitters of all regions of one graph)
    width_params: dict[int, str] = field(default_factory=dict)

    def fresh(self, base: str) -> str:
        return self.region.fresh_name(base)

    def add(self, node: NodeBase) -> NodeBase:
        """Add a computing node, tagged with the enclosing block and budget."""
        node.block = self.block
        node.budget = self.budget
        return self._put(self.region, node)

    def _put(self, region: Region, node: NodeBase) -> NodeBase:
        if self.limits is not None:
            self.limits.add_node(node.loc)
        return region.add(node)

    def arch_name(self, name: str) -> str:
        """The architecture-parameter name of node ``name``: its path, relative to a sharing cell if any."""
        full = self.abs_prefix + name
        if self.arch_prefix:
            rel = full[len(self.arch_root):] if full.startswith(self.arch_root) else full
            return self.arch_prefix + rel
        return full

    def input(self, base: str, shape: list[int], loc: SourceLoc | None = None) -> str:
        node = InputNode(name=self.fresh(base), shape=shape, index=len(self.region.inputs), loc=loc)
        return self._put(self.region, node).name

    def output(self, value: str, index: int, loc: SourceLoc | None = None) -> str:
        node = OutputNode(name=self.fresh("output" if index == 0 else f"output{index}"), inputs=[value], index=index,
                          loc=loc)
        return self._put(self.region, node).name

    def aux_output(self, value: str, loc: SourceLoc | None = None) -> str:
        """The auxiliary output; it names the module that holds the auxiliary head once lowered."""
        node = OutputNode(name=self.fresh("auxiliary_head"), inputs=[value], index=len(self.region.aux_outputs),
                          role="aux", loc=loc)
        return self._put(self.region, node).name

    def op(self, attrs: OpAttrs, value: str, base: str = "", loc: SourceLoc | None = None,
           width: ValueChoice | None = None) -> str:
        """An op node; ``width`` (whole, different values) makes its ``width_attr`` a width choice."""
        name = self.fresh(base or attrs.op)
        chosen = self._width(width, name, loc) if width is not None else None
        return self.add(OpNode(name=name, inputs=[value], attrs=attrs, width=chosen, loc=loc)).name

    def _width(self, choice: ValueChoice, node: str, loc: SourceLoc | None) -> WidthChoice:
        """The width choice of op ``node``: every op a value choice (by its key) reaches shares one
        parameter, named after the first; its candidates are named after the original values (``w8``)."""
        arch = self.width_params.get(choice.key)
        if arch is None:
            arch = self.arch_name(node)
            names = [f"w{label}" for label in choice.names()]
            param = self.graph.arch.get(arch)
            if param is None:
                self.graph.arch[arch] = ArchParam(name=arch, candidates=names, kind="width", loc=loc)
            elif param.candidates != names or param.kind != "width":
                raise NasirError(f"width choices sharing architecture parameter {arch!r} have different candidates "
                                 f"({param.candidates} vs {names})", loc)
            self.width_params[choice.key] = arch
        return WidthChoice(arch=arch, widths=list(choice.values))

    def join(self, kind: str, values: list[str], base: str = "", loc: SourceLoc | None = None) -> str:
        """A ``sum`` or ``concat`` node over ``values``."""
        cls = SumNode if kind == "sum" else ConcatNode
        return self.add(cls(name=self.fresh(base or self.prefix + kind), inputs=values, loc=loc)).name

    def choice(self, base: str, inputs: list[str], candidates: Sequence[tuple[str, CandidateBuilder]], *,
               arch: str | None = None, kind: str = "layer", loc: SourceLoc | None = None,
               input_names: list[str] | None = None) -> str:
        """A choice among ``candidates``, each built in a region of its own with ``input_names`` as inputs.

        ``arch`` defaults to the choice's own path; choices given the same ``arch`` share one parameter.
        """
        if self.choice_depth >= MAX_CHOICE_NESTING:
            raise LimitError(f"choices nested more than {MAX_CHOICE_NESTING} deep (a choice in a candidate of a "
                             "choice...)", loc)
        name = self.fresh(base)
        arch = self.arch_name(name) if arch is None else arch
        names = [cname for cname, _ in candidates]
        param = self.graph.arch.get(arch)
        if param is None:
            self.graph.arch[arch] = ArchParam(name=arch, candidates=names, kind=kind, loc=loc)
        elif param.candidates != names:
            raise NasirError(f"choices sharing architecture parameter {arch!r} have different candidates "
                             f"({param.candidates} vs {names})", loc)
        input_names = input_names or [f"in{i}" for i in range(len(inputs))]
        bodies = []
        for cname, build in candidates:
            region = Region()
            for i, input_name in enumerate(input_names):
                self._put(region, InputNode(name=input_name, index=i, loc=loc))
            inner = replace(self, region=region, prefix="", abs_prefix=f"{self.abs_prefix}{name}.{cname}.",
                            choice_depth=self.choice_depth + 1)
            out = build(inner, input_names)
            self._put(region, OutputNode(name=region.fresh_name("out"), inputs=[out], loc=loc))
            bodies.append(Candidate(name=cname, body=region))
        node = ChoiceNode(name=name, inputs=inputs, arch=arch, covers=[[i] for i in range(len(names))],
                          domain=list(range(len(names))), candidates=bodies, loc=loc)
        return self.add(node).name


#: Runs an applied cell's statements with its nodes going to the given emitter; returns the cell's output.
CellRunner = Callable[["ModuleEmitter", CellMod, list[Tensor], str], Tensor]


@dataclass
class ModuleEmitter(Emitter):
    """An emitter that also applies DSL module values to tensors; cells run through ``run_cell``."""

    run_cell: CellRunner | None = None

    def combine(self, kind: str, items: list[Tensor], base: str, loc: SourceLoc | None) -> Tensor:
        """``sum``/``concat`` of tensors; the sum of one tensor is that tensor."""
        if len(items) == 1 and kind == "sum":
            return items[0]
        return Tensor(self.join(kind, [i.node for i in items], base, loc))

    def apply(self, mod: Mod, ins: list[Tensor], base: str) -> Tensor:
        """Emit the nodes of ``mod`` applied to ``ins``, named under ``base`` (the assignment target)."""
        if self.limits is None:
            return self._apply(mod, ins, base)
        self.limits.enter(_loc_of, mod)
        try:
            return self._apply(mod, ins, base)
        finally:
            self.limits.leave()

    def _apply(self, mod: Mod, ins: list[Tensor], base: str) -> Tensor:
        if isinstance(mod, Prim):
            if len(ins) != 1:
                raise NasirError(f"{mod.attrs.op} takes one input, got {len(ins)}", mod.loc)
            if mod.attrs.op == "identity":
                return ins[0]
            return Tensor(self.op(mod.attrs, ins[0].node, base, mod.loc, mod.width))
        if isinstance(mod, Seq):
            x = ins
            for part in mod.parts:
                x = [self.apply(part, x, _dotted(base, _part_label(part)))]
            return x[0]
        if isinstance(mod, Named):
            return self.apply(mod.body, ins, base)
        if isinstance(mod, Par):
            outs = [self.apply(b, ins, _dotted(base, str(i))) for i, b in enumerate(mod.branches)]
            return self.combine(mod.combine, outs, base, mod.loc)
        if isinstance(mod, LayerChoice):
            return self._choice(mod, ins, base)
        if isinstance(mod, CellMod) and self.run_cell is not None:
            return self.run_cell(self, mod, ins, base)
        raise NasirError(f"cannot apply {describe(mod)}", getattr(mod, "loc", None))  # pragma: no cover

    def _choice(self, mod: LayerChoice, ins: list[Tensor], base: str) -> Tensor:
        def builder(cmod: Mod) -> CandidateBuilder:
            return lambda inner, values: inner.apply(cmod, [Tensor(v) for v in values], "").node

        candidates = [(cname, builder(cmod)) for cname, cmod in mod.candidates]
        input_names = ["x"] if len(ins) == 1 else None
        return Tensor(self.choice(base or mod.label, [i.node for i in ins], candidates, kind=mod.kind, loc=mod.loc,
                                  input_names=input_names))

    def entering_cell(self, base: str, shares: str | None) -> AbstractContextManager[None]:
        """Name the nodes of a cell applied as ``base`` under ``base.`` (a cell that is a whole candidate has no
        ``base``: its nodes keep their names); a sharing cell also names its parameters."""
        prefix = _dotted(base, "")
        if shares is None:
            return temporarily(self, prefix=prefix)
        return temporarily(self, prefix=prefix, arch_prefix=shares + ".", arch_root=self.abs_prefix + prefix)


def _loc_of(mod: Mod) -> SourceLoc | None:
    return mod.loc


def _dotted(base: str, label: str) -> str:
    return f"{base}.{label}" if base else label


def _part_label(mod: Mod) -> str:
    if isinstance(mod, Prim):
        return mod.attrs.op
    if isinstance(mod, Named):
        return mod.name
    if isinstance(mod, LayerChoice):
        return mod.label
    if isinstance(mod, Par):
        return mod.combine
    if isinstance(mod, CellMod):
        return mod.template.name
    return "seq"
