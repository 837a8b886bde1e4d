"""Passes and the pass manager.

A pass is a dataclass registered under a kebab-case name; its fields are its options, so the
textual pipeline ``canonicalize,reparam{kernel_norm=true}`` parses straight into pass objects
(the pipeline grammar is ``grammar/pipeline.lark``). Each pass declares whether it preserves the
computed function (``exact``) and returns a ``PassResult`` saying what it changed.

The ``PassManager`` verifies the IR between passes, times each pass, collects statistics (module
counts, parameters, FLOPs, search-space size) and can print the IR after every pass.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar, TextIO

from lark import Lark, UnexpectedInput

from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ir.stats import GraphStats, graph_stats
from nasir.ir.verify import verify

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
    #: "exact": the lowered function is unchanged; "approximate": changed on purpose (documented).
    exactness: ClassVar[str] = "exact"

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
    if cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"pass name {cls.name!r} registered twice")
    PASSES[cls.name] = cls
    return cls


def load_passes() -> dict[str, type[Pass]]:
    """Import every module of ``nasir.passes`` so their ``@register`` decorators run."""
    import nasir.passes as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"nasir.passes.{info.name}")
    return PASSES


# -- pipeline text -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _pipeline_parser() -> Lark:
    text = resources.files("nasir.grammar").joinpath("pipeline.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", strict=True, propagate_positions=True)


def parse_pipeline(text: str) -> list[Pass]:
    """``"canonicalize,reparam{kernel_norm=true}"`` -> configured pass objects."""
    load_passes()
    text = text.strip()
    if not text:
        return []
    try:
        tree = _pipeline_parser().parse(text)
    except UnexpectedInput as e:
        col = getattr(e, "column", 0) or len(text) + 1
        raise NasirError(f"malformed pass pipeline at column {col}: {text!r}",
                         hint="separate passes by commas, options in braces: `canonicalize,reparam{kernel_norm=true}`",
                         ) from None
    passes = []
    for item in tree.children:
        name = str(item.children[0])
        cls = PASSES.get(name)
        if cls is None:
            import difflib

            close = difflib.get_close_matches(name, sorted(PASSES), n=3)
            raise NasirError(f"unknown pass {name!r}",
                             hint=f"did you mean {', '.join(close)}?" if close else "run `nasir passes` for the list")
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
    exactness: str
    seconds: float
    result: PassResult
    #: None when the manager runs with ``stats=False``
    stats: GraphStats | None
    #: TopoNAS Table II units: conv / non-conv / total modules per edge (choice), as a histogram.
    edges: str = ""


@dataclass
class PassManager:
    """Runs a pipeline of passes over a graph, verifying and measuring between them."""

    passes: list[Pass]
    verify: bool = True
    print_ir_after_all: bool = False
    #: measure the graph (modules, params, FLOPs, per-edge counts) before and after every pass;
    #: ``report()`` needs it, a plain compile does not (it costs about as much as the passes)
    stats: bool = True
    #: run on a copy so the caller's graph is untouched; a caller that built the graph for this
    #: run alone (the CLI) saves the copy (a JSON round trip, ~0.25 s on DARTS)
    copy_input: bool = True
    print_ir: Callable[[Graph], str] | None = None
    out: TextIO | None = None
    records: list[PassRecord] = field(default_factory=list)

    @classmethod
    def parse(cls, pipeline: str, **kwargs: Any) -> PassManager:
        return cls(parse_pipeline(pipeline), **kwargs)

    def run(self, graph: Graph) -> Graph:
        """Apply the pipeline to a copy of ``graph`` (or, with ``copy_input=False``, to ``graph``
        itself) and return the result."""
        if self.copy_input:
            graph = graph.copy_deep()
        self.records = [PassRecord("input", "input", "exact", 0.0, PassResult(), *self._measure(graph, infer=True))]
        for p in self.passes:
            start = time.perf_counter()
            try:
                result = p.run(graph)
            except NasirError:
                raise
            seconds = time.perf_counter() - start
            if self.verify:
                try:
                    verify(graph)
                except NasirError as e:
                    raise NasirError(f"IR invalid after pass {p.name!r}: {e.message}", e.loc, e.hint) from None
            measured = self._measure(graph, infer=not self.verify)  # verify just inferred shapes
            self.records.append(PassRecord(p.name, p.spec(), p.exactness, seconds, result, *measured))
            if self.print_ir_after_all and self.out is not None:
                printer = self.print_ir or _default_printer
                self.out.write(f"// ----- IR after {p.spec()} -----\n{printer(graph)}\n")
        return graph

    def _measure(self, graph: Graph, infer: bool) -> tuple[GraphStats | None, str]:
        if not self.stats:
            return None, ""
        return graph_stats(graph, infer=infer), _edges(graph)

    @property
    def exact(self) -> bool:
        return all(p.exactness == "exact" for p in self.passes)

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
            if r.edges:
                lines.append(f"{'':<28}{r.edges}")
            lines.extend(f"{'':<28}note: {n}" for n in r.result.notes if n != r.edges)
        return "\n".join(lines)


def _edges(graph: Graph) -> str:
    """Per-edge module counts (only for graphs with choices)."""
    if not any(getattr(n, "arch", None) for _, n, _ in graph.walk()):
        return ""
    from nasir.passes._topo_stats import edge_summary

    return edge_summary(graph)


def _default_printer(graph: Graph) -> str:
    from nasir.ir.printer import print_graph

    return print_graph(graph)
