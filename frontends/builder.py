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
from nasir.ir.graph import ArchParam, Graph
from nasir.ir.nodes import Candidate, ChoiceNode, ConcatNode, InputNode, OpNode, OutputNode, Region, SumNode
from nasir.ir.ops import PRIMITIVES
from nasir.ir.verify import verify


def _caller_loc() -> SourceLoc | None:
    """Where in the user's Python code the builder was called, so errors point there."""
    for frame in inspect.stack()[1:]:
        if frame.filename != __file__:
            return SourceLoc(file=frame.filename, line=frame.lineno, col=1)
    return None


class RegionBuilder:
    """Adds nodes to one region; ``GraphBuilder`` and candidate bodies are region builders."""

    def __init__(self, region: Region, graph: Graph):
        self.region = region
        self.graph = graph

    def _name(self, name: str | None, base: str) -> str:
        return self.region.fresh_name(name or base)

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
        node = OpNode(name=self._name(name, op), inputs=[x], attrs=model, loc=_caller_loc())
        return self.region.add(node).name

    def __getattr__(self, op: str) -> Callable[..., str]:
        if op in PRIMITIVES:
            return lambda x, *a, **k: self.op(op, x, *a, **k)
        raise AttributeError(op)

    def sum(self, *values: str, name: str | None = None) -> str:
        return self.region.add(SumNode(name=self._name(name, "sum"), inputs=list(values), loc=_caller_loc())).name

    def concat(self, *values: str, name: str | None = None) -> str:
        return self.region.add(ConcatNode(name=self._name(name, "concat"), inputs=list(values), loc=_caller_loc())).name

    def choice(self, arch: str, x: str | list[str], candidates: Mapping[str, Callable[[RegionBuilder, Any], str]],
               name: str | None = None) -> str:
        """A layer choice over ``candidates`` (name -> function building the body from its input).

        Choices given the same ``arch`` share one architecture parameter.
        """
        inputs = [x] if isinstance(x, str) else list(x)
        names = list(candidates)
        param = self.graph.arch.get(arch)
        if param is None:
            self.graph.arch[arch] = ArchParam(name=arch, candidates=names)
        elif param.candidates != names:
            raise NasirError(f"choices sharing {arch!r} must have the same candidates", _caller_loc())
        cands = []
        for cname, build in candidates.items():
            body = Region()
            vals = [body.add(InputNode(name=f"in{i}", index=i)).name for i in range(len(inputs))]
            sub = RegionBuilder(body, self.graph)
            out = build(sub, vals[0] if len(vals) == 1 else vals)
            body.add(OutputNode(name=body.fresh_name("out"), inputs=[out]))
            cands.append(Candidate(name=cname, body=body))
        node = ChoiceNode(name=self._name(name, arch), inputs=inputs, arch=arch, covers=[[i] for i in range(len(names))],
                          domain=list(range(len(names))), candidates=cands, loc=_caller_loc())
        return self.region.add(node).name


class GraphBuilder(RegionBuilder):
    def __init__(self, name: str):
        graph = Graph(name=name)
        super().__init__(graph.body, graph)

    def input(self, shape: list[int], name: str = "x") -> str:
        index = len(self.region.inputs)
        return self.region.add(InputNode(name=self._name(name, "x"), shape=list(shape), index=index)).name

    def output(self, value: str) -> None:
        index = len(self.region.outputs)
        self.region.add(OutputNode(name=self._name("output" if index == 0 else f"output{index}", "output"),
                                   inputs=[value], index=index))

    def build(self) -> Graph:
        verify(self.graph)
        return self.graph
