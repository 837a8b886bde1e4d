"""Values of the DSL at elaboration time.

Numbers, booleans, strings and lists are plain Python values. Modules are small immutable trees
(``Prim``, ``Seq``, ``Par``, ``LayerChoice``, ``CellMod``, ``Named``) that are only turned into IR
nodes when applied to tensors, so one module value applied twice gives two sets of weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ValueChoice:
    values: tuple[Any, ...]
    loc: SourceLoc | None = None


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
