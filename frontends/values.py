"""Values of the DSL at elaboration time.

Numbers, booleans, strings and lists are plain Python values. Modules are small immutable trees
(``Prim``, ``Seq``, ``Par``, ``LayerChoice``, ``CellMod``, ``Named``) that are only turned into IR
nodes when applied to tensors, so one module value applied twice gives two sets of weights.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from nasir.diagnostics import SourceLoc
from nasir.ir.ops import OpAttrs


@dataclass(frozen=True)
class Tensor:
    """A value flowing in the graph being built: the name of the node producing it."""

    node: str


class Mod:
    loc: SourceLoc | None


@dataclass(frozen=True)
class Prim(Mod):
    attrs: OpAttrs
    loc: SourceLoc | None = None
    #: A width choice on the op's ``width_attr`` (``attrs`` holds the largest width).
    width: ValueChoice | None = None


@dataclass(frozen=True)
class Seq(Mod):
    parts: tuple[Mod, ...]
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class Par(Mod):
    """Parallel branches over the same input(s), summed or concatenated."""

    combine: str  # "sum" | "concat"
    branches: tuple[Mod, ...]
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class LayerChoice(Mod):
    candidates: tuple[tuple[str, Mod], ...]
    label: str = "choice"
    kind: str = "layer"  # "layer" | "value"
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class Named(Mod):
    """A template instance: keeps the template's name as one level of node naming."""

    name: str
    body: Mod
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class CellMod(Mod):
    """A cell or network template bound to its arguments, applied to tensors later."""

    template: Template
    args: tuple[tuple[str, Any], ...]
    loc: SourceLoc | None = None


#: Identifies each evaluation of a ``one_of [...]``.
_CHOICE_KEYS = itertools.count()


@dataclass(frozen=True)
class ValueChoice:
    """``one_of [...]``: a choice among ``values``.

    ``key`` identifies one evaluation of a ``one_of``: arithmetic on it (``C * one_of [3, 6]``)
    maps the values and keeps the key and the ``labels`` of the original values, so every width
    choice made from it is one architecture parameter. A ``shared`` choice
    (``shared(one_of [...])``) is passed into templates as it is instead of expanding them.
    """

    values: tuple[Any, ...]
    loc: SourceLoc | None = None
    #: Labels of the original values, once arithmetic has mapped them (empty: the values' own).
    labels: tuple[str, ...] = ()
    shared: bool = False
    key: int = field(default_factory=lambda: next(_CHOICE_KEYS), compare=False)

    def names(self) -> tuple[str, ...]:
        """The labels of the original values (``3``, ``6`` for ``C * one_of [3, 6]``)."""
        return self.labels or tuple(value_label(v) for v in self.values)

    def mapped(self, values: tuple[Any, ...]) -> ValueChoice:
        """The same choice (key, labels) with each value replaced, in order."""
        return replace(self, values=values, labels=self.names(), key=self.key)


def value_label(value: Any) -> str:
    """A value as part of a candidate name: ``3``, ``0p5`` for 0.5, ``m1`` for -1."""
    return str(value).replace(".", "p").replace("-", "m")


@dataclass(eq=False)
class Template:
    """An ``op``/``choice``/``cell``/``network`` definition with the environment it closes over."""

    kind: str
    name: str
    params: list[tuple[str, Any]]  # (name, default expression tree or None)
    body: Any  # expression tree (op/choice) or list of statement trees (cell/network)
    env: Env
    loc: SourceLoc
    shares: Any = None
    filename: str = "<string>"


@dataclass(eq=False)
class Env:
    vars: dict[str, Any] = field(default_factory=dict)
    parent: Env | None = None

    def lookup(self, name: str) -> tuple[bool, Any]:
        env: Env | None = self
        while env is not None:
            if name in env.vars:
                return True, env.vars[name]
            env = env.parent
        return False, None

    def set(self, name: str, value: Any) -> None:
        self.vars[name] = value


@dataclass(frozen=True)
class Builtin:
    name: str


def describe(value: Any) -> str:
    """The DSL-level type name of a value, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Tensor):
        return "a tensor"
    if isinstance(value, ValueChoice):
        return "a value choice"
    if isinstance(value, Mod):
        return "a module"
    if isinstance(value, Template):
        return f"the {value.kind} template '{value.name}'"
    if isinstance(value, Builtin):
        return f"the builtin '{value.name}'"
    return type(value).__name__
