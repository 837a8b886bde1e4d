"""Python builder API: construct IR graphs from code instead of a ``.nas`` file.

    b = GraphBuilder("net")
    x = b.input([3, 32, 32])
    h = b.conv(x, 16, 3, name="stem")
    h = b.choice("edge", h, {
        "conv3": lambda r, v: r.relu(r.conv(v, 16, 3)),
        "pool":  lambda r, v: r.max_pool(v, 3),
    })
    b.output(b.linear(b.global_avg_pool(h), 10))
    graph = b.build()           # verified, shapes inferred

Every primitive of the DSL is a method taking the input value first, then the op's positional
attributes and keywords (``b.dwconv(h, 5, stride=2)``). Values are node names (strings).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from nasir.diagnostics import NasirError, SourceLoc
from nasir.frontends.emit import CandidateBuilder, Emitter
from nasir.ir.graph import Graph
from nasir.ir.nodes import Region
from nasir.ir.ops import PRIMITIVES
from nasir.ir.verify import verify


def _caller_loc() -> SourceLoc | None:
    """Where in the user's Python code the builder was called, so errors point there."""
    for frame in inspect.stack()[1:]:
        if frame.filename != __file__:
            return SourceLoc(file=frame.filename, line=frame.lineno, col=1)
    return None


class RegionBuilder:
    """Adds nodes to one region through an ``Emitter``; ``GraphBuilder`` and candidate bodies are region builders."""

    def __init__(self, emitter: Emitter):
        self.emitter = emitter

    @property
    def region(self) -> Region:
        return self.emitter.region

    @property
    def graph(self) -> Graph:
        return self.emitter.graph

    def op(self, op: str, x: str, *args: Any, name: str | None = None, **attrs: Any) -> str:
        cls = PRIMITIVES.get(op)
        if cls is None:
            raise NasirError(f"unknown op {op!r}", _caller_loc(), f"ops: {', '.join(sorted(PRIMITIVES))}")
        if len(args) > len(cls.positional):
            raise NasirError(f"{op} takes at most {len(cls.positional)} positional attributes", _caller_loc())
        fields = dict(zip(cls.positional, args), **attrs)
        try:
            model = cls(**fields)
        except ValidationError as e:
            raise NasirError(f"{op}: {e.errors()[0]['msg']} ({'.'.join(map(str, e.errors()[0]['loc']))})",
                             _caller_loc()) from None
        return self.emitter.op(model, x, name or op, _caller_loc())

    def __getattr__(self, op: str) -> Callable[..., str]:
        if op in PRIMITIVES:
            return lambda x, *a, **k: self.op(op, x, *a, **k)
        raise AttributeError(op)

    def sum(self, *values: str, name: str | None = None) -> str:
        return self.emitter.join("sum", list(values), name or "sum", _caller_loc())

    def concat(self, *values: str, name: str | None = None) -> str:
        return self.emitter.join("concat", list(values), name or "concat", _caller_loc())

    def choice(self, arch: str, x: str | list[str], candidates: Mapping[str, Callable[[RegionBuilder, Any], str]],
               name: str | None = None) -> str:
        """A layer choice over ``candidates`` (name -> function building the body from its input).

        Choices given the same ``arch`` share one architecture parameter.
        """
        inputs = [x] if isinstance(x, str) else list(x)

        def builder(build: Callable[[RegionBuilder, Any], str]) -> CandidateBuilder:
            return lambda inner, values: build(RegionBuilder(inner), values[0] if len(values) == 1 else values)

        bodies = [(cname, builder(build)) for cname, build in candidates.items()]
        return self.emitter.choice(name or arch, inputs, bodies, arch=arch, loc=_caller_loc())


class GraphBuilder(RegionBuilder):
    def __init__(self, name: str):
        graph = Graph(name=name)
        super().__init__(Emitter(graph, graph.body))

    def input(self, shape: list[int], name: str = "x") -> str:
        return self.emitter.input(name or "x", list(shape))

    def output(self, value: str) -> None:
        self.emitter.output(value, len(self.region.outputs))

    def aux_output(self, value: str) -> None:
        """An auxiliary output (the DSL's ``aux_output``): returned beside the output in training mode only."""
        self.emitter.aux_output(value)

    def build(self) -> Graph:
        verify(self.graph)
        return self.graph
