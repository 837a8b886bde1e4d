"""Passes and the pass manager.

A pass is a dataclass registered under a kebab-case name; its fields are its options, so the
textual pipeline ``canonicalize,reparam{kernel_norm=true}`` parses straight into pass objects
(the pipeline grammar is ``grammar/pipeline.lark``). Each pass says, through ``exactness()``,
whether it preserves the computed function, and returns a ``PassResult`` saying what it changed.

Passes load lazily: ``nasir.passes.BUILTIN`` maps each built-in name to its module, and a pass
written outside this tree is found through the ``nasir.passes`` entry point group, e.g. in the
plugin's ``pyproject.toml``::

    [project.entry-points."nasir.passes"]
    fold-identities = "my_package.fold:FoldIdentities"

(the value may also name a module whose ``@register`` runs on import). A module is imported only
when a pipeline names its pass or ``nasir passes`` lists them all.

The ``PassManager`` verifies the IR between passes, times each pass, collects statistics (module
counts, parameters, FLOPs, search-space size), can print the IR after every pass, and calls its
instruments (``PassInstrument``) around each pass for anything else a tool wants measured. A pass
that fails, with any exception, surfaces as a ``NasirError`` naming the pass and the pipeline so far.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata, resources
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TextIO

from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ir.stats import GraphStats, graph_stats
from nasir.ir.verify import verify
from nasir.passes import BUILTIN

if TYPE_CHECKING:
    from lark import Lark

#: What a pass promises about the function the lowered graph computes.
Exactness = Literal["exact", "approximate"]

#: The entry point group through which installed distributions contribute passes.
ENTRY_POINT_GROUP = "nasir.passes"

#: Pass classes imported so far, by name (``register`` fills it).
PASSES: dict[str, type[Pass]] = {}


@dataclass
class PassResult:
    """What a pass did: whether it changed the graph and counters of its rewrites."""

    changed: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    #: Human-readable remarks (e.g. which rewrites were approximate).
    notes: list[str] = field(default_factory=list)

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n
        if n:
            self.changed = True


class Pass:
    """Base class; subclasses are dataclasses whose fields are the pass options."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: The pass changes the supernet for the search only: the architecture a search finds with it is
    #: built from the graph without it (PC-DARTS' partial channels), so commands that build the
    #: found network leave it out of their pipeline.
    search_only: ClassVar[bool] = False

    def exactness(self) -> Exactness:
        """``"exact"``: the lowered function is unchanged; ``"approximate"``: changed on purpose
        (documented in the pass). A method because options may decide it: ``pms{approximate=false}``
        is exact. Every pass defines it (``register`` checks)."""
        raise NotImplementedError

    def run(self, graph: Graph) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} if dataclasses.is_dataclass(self) else {}

    def spec(self) -> str:
        opts = self.options()
        if not opts:
            return self.name
        text = ",".join(f"{k}={_fmt(v)}" for k, v in opts.items())
        return f"{self.name}{{{text}}}"


def _fmt(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def register(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make the pass available by its ``name`` in pipelines and the CLI."""
    if not dataclasses.is_dataclass(cls):
        cls = dataclass(cls)
    if cls.exactness is Pass.exactness:
        raise TypeError(f"pass {cls.name!r} must define exactness() -> 'exact' | 'approximate'")
    if cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"pass name {cls.name!r} registered twice")
    PASSES[cls.name] = cls
    return cls


# -- lookup ---------------------------------------------------------------------------------
def _plugins() -> dict[str, metadata.EntryPoint]:
    """Passes that installed distributions declare in the ``nasir.passes`` entry point group."""
    found = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name, ep in found.items():
        if name in BUILTIN:
            raise NasirError(f"the pass plugin {ep.value!r} takes the name of the built-in pass {name!r}",
                             hint="give the plugin's entry point another name")
    return found


def pass_names() -> list[str]:
    """Every pass a pipeline can name, built-in and plugged in, without importing any of them."""
    return sorted({*BUILTIN, *_plugins()})


def get_pass(name: str) -> type[Pass]:
    """The pass class registered as ``name``, importing its module on first use."""
    if name in PASSES:
        return PASSES[name]
    if name in BUILTIN:
        source = BUILTIN[name]
        importlib.import_module(source)
    else:
        ep = _plugins().get(name)
        if ep is None:
            close = difflib.get_close_matches(name, pass_names(), n=3)
            raise NasirError(f"unknown pass {name!r}",
                             hint=f"did you mean {', '.join(close)}?" if close else "run `nasir passes` for the list")
        source = ep.value
        _load_plugin(ep)
    if name not in PASSES:
        raise NasirError(f"{source} does not register a pass named {name!r}",
                         hint="decorate the pass class with nasir.passmanager.register, or name the class in the entry point")
    return PASSES[name]


def _load_plugin(ep: metadata.EntryPoint) -> None:
    """Import the entry point's module; a pass class it names is registered here."""
    try:
        loaded = ep.load()
        if isinstance(loaded, type) and issubclass(loaded, Pass) and getattr(loaded, "name", None) == ep.name:
            register(loaded)
    except Exception as e:
        raise NasirError(f"the pass plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from e


def load_passes() -> dict[str, type[Pass]]:
    """Every pass, imported (what ``nasir passes`` lists)."""
    return {name: get_pass(name) for name in pass_names()}


# -- pipeline text -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _pipeline_parser() -> Lark:
    from lark import Lark  # imported by the first pipeline, so that `nasir passes` and `show` start fast

    text = resources.files("nasir.grammar").joinpath("pipeline.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", strict=True, propagate_positions=True)


def parse_pipeline(text: str) -> list[Pass]:
    """``"canonicalize,reparam{kernel_norm=true}"`` -> configured pass objects."""
    text = text.strip()
    if not text:
        return []
    from lark import UnexpectedInput

    try:
        tree = _pipeline_parser().parse(text)
    except UnexpectedInput as e:
        col = getattr(e, "column", 0) or len(text) + 1
        raise NasirError(f"malformed pass pipeline at column {col}: {text!r}",
                         hint="separate passes by commas, options in braces: `canonicalize,reparam{kernel_norm=true}`",
                         ) from None
    passes = []
    for item in tree.children:
        cls = get_pass(str(item.children[0]))
        opts = {}
        for opt in (o for o in item.children[1:] if o is not None):
            key, raw = str(opt.children[0]), str(opt.children[1])
            opts[key] = raw
        passes.append(make_pass(cls, opts))
    return passes


def make_pass(cls: type[Pass], raw: dict[str, str]) -> Pass:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in fields:
            raise NasirError(f"pass {cls.name!r} has no option {key!r}",
                             hint=f"options: {', '.join(fields) or 'none'}")
        values[key] = _convert(cls.name, key, text, hints.get(key, str))
    return cls(**values)


def _convert(pass_name: str, key: str, text: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if text in ("none", "null"):
            return None
        typ = args[0]
    try:
        if typ is bool:
            if text not in ("true", "false", "1", "0"):
                raise ValueError
            return text in ("true", "1")
        if typ is int:
            return int(text)
        if typ is float:
            return float(text)
        return text.strip('"')
    except ValueError:
        raise NasirError(f"option {key!r} of pass {pass_name!r} expects {getattr(typ, '__name__', typ)}, got {text!r}") from None


# -- running ----------------------------------------------------------------------------------
@dataclass
class PassRecord:
    name: str
    spec: str
    exactness: Exactness
    seconds: float
    result: PassResult
    #: None when the manager runs with ``stats=False``
    stats: GraphStats | None
    #: lines the instruments add under this pass's row of ``report()``
    report_lines: list[str] = field(default_factory=list)


class PassInstrument:
    """A hook the manager calls around the pipeline, so that a tool can measure or check more
    than the manager does (statistics in a paper's units, traces) without the manager knowing it.

    Override what you need; append to ``record.report_lines`` to show a line in ``report()``.
    """

    def before_pipeline(self, graph: Graph, record: PassRecord) -> None:
        """Called once with the input graph and its ``input`` record."""

    def after_pass(self, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        """Called after every pass, once the graph is verified and measured."""


@dataclass
class PassManager:
    """Runs a pipeline of passes over a graph, verifying and measuring between them."""

    passes: list[Pass]
    verify: bool = True
    print_ir_after_all: bool = False
    #: measure the graph (modules, params, FLOPs) before and after every pass; ``report()``
    #: needs it, a plain compile does not (it costs about as much as the passes)
    stats: bool = True
    #: run on a copy so the caller's graph is untouched; a caller that built the graph for this
    #: run alone (the CLI) saves the copy (a JSON round trip, ~0.25 s on DARTS)
    copy_input: bool = True
    print_ir: Callable[[Graph], str] | None = None
    out: TextIO | None = None
    instruments: list[PassInstrument] = field(default_factory=list)
    records: list[PassRecord] = field(default_factory=list)

    @classmethod
    def parse(cls, pipeline: str, **kwargs: Any) -> PassManager:
        return cls(parse_pipeline(pipeline), **kwargs)

    def run(self, graph: Graph) -> Graph:
        """Apply the pipeline to a copy of ``graph`` (or, with ``copy_input=False``, to ``graph``
        itself) and return the result."""
        if self.copy_input:
            graph = graph.copy_deep()
        start = PassRecord("input", "input", "exact", 0.0, PassResult(), self._measure(graph, infer=True))
        self.records = [start]
        for instrument in self.instruments:
            instrument.before_pipeline(graph, start)
        for k, p in enumerate(self.passes):
            try:
                record = self._run_pass(p, graph)
            except NasirError as e:
                e.add_context(self._where(k))
                raise
            except Exception as e:
                raise NasirError(f"pass {p.name!r} failed: {type(e).__name__}: {e}").add_context(self._where(k)) from e
            self.records.append(record)
            for instrument in self.instruments:
                instrument.after_pass(p, graph, record)
            if self.print_ir_after_all and self.out is not None:
                printer = self.print_ir or _default_printer
                self.out.write(f"// ----- IR after {p.spec()} -----\n{printer(graph)}\n")
        return graph

    def _run_pass(self, p: Pass, graph: Graph) -> PassRecord:
        start = time.perf_counter()
        result = p.run(graph)
        seconds = time.perf_counter() - start
        if self.verify:
            try:
                verify(graph)
            except NasirError as e:
                raise NasirError(f"IR invalid after pass {p.name!r}: {e.message}", e.loc, e.hint) from None
        stats = self._measure(graph, infer=not self.verify)  # verify just inferred shapes
        return PassRecord(p.name, p.spec(), p.exactness(), seconds, result, stats)

    def _where(self, k: int) -> str:
        return f"in pass {self.passes[k].name!r} (pipeline: {','.join(p.spec() for p in self.passes[:k + 1])})"

    def _measure(self, graph: Graph, infer: bool) -> GraphStats | None:
        return graph_stats(graph, infer=infer) if self.stats else None

    @property
    def exact(self) -> bool:
        return all(p.exactness() == "exact" for p in self.passes)

    def report(self) -> str:
        """A table of per-pass timing and statistics."""
        head = f"{'pass':<28}{'exact':>8}{'ms':>9}{'modules':>9}{'conv':>7}{'params':>12}{'FLOPs':>14}  changes"
        lines = [head, "-" * len(head)]
        for r in self.records:
            s = r.stats
            changes = ", ".join(f"{k}={v}" for k, v in r.result.stats.items()) or "-"
            measured = (f"{s.modules:>9}{s.conv:>7}{s.params:>12,}{s.flops:>14,}" if s is not None
                        else f"{'-':>9}{'-':>7}{'-':>12}{'-':>14}")
            lines.append(f"{r.spec:<28}{r.exactness[:5]:>8}{r.seconds * 1e3:>9.1f}{measured}  {changes}")
            lines.extend(f"{'':<28}{line}" for line in r.report_lines)
            lines.extend(f"{'':<28}note: {n}" for n in r.result.notes if n not in r.report_lines)
        return "\n".join(lines)


def _default_printer(graph: Graph) -> str:
    from nasir.ir.printer import print_graph

    return print_graph(graph)
