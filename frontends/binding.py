"""Binding call arguments: templates to their parameters, primitive ops to their attributes.

A call such as ``sep_conv(C, 3, stride = 2)`` or ``conv(C, k)`` binds its arguments here and yields a
module value (``values.py``). An argument that is a value choice (``one_of[3, 5]``) binds once per
value, and the instances become the candidates of one value choice (a ``LayerChoice`` of kind
``value``), so ``conv(C, one_of[3, 5])`` is a choice between ``conv(C, 3)`` and ``conv(C, 5)``,
each with its own weights.

A value choice on an op's output width (``conv(one_of [8, 16], 3)``, ``linear(F * one_of [1, 2])``:
the op's ``width_attr``) is a *width choice* instead: one op of the largest width whose channels are
sliced per candidate (``nasir.ir.width``). A template binds a ``shared(one_of [...])`` argument as
it is, so the choice reaches the ops inside it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lark import Tree
from pydantic import ValidationError

from nasir.diagnostics import NasirError, SourceLoc
from nasir.frontends.limits import MAX_CANDIDATES, LimitError
from nasir.frontends.values import (
    Builtin,
    CellMod,
    Env,
    LayerChoice,
    Mod,
    Named,
    Prim,
    Template,
    Tensor,
    ValueChoice,
    describe,
    value_label,
)
from nasir.ir.ops import PRIMITIVES, OpAttrs

if TYPE_CHECKING:
    from nasir.frontends.expressions import Evaluator

#: DSL op names that are sugar for a primitive with some attributes fixed.
ALIASES = {"pwconv": ("conv", {"kernel": 1})}


def is_primitive(name: str) -> bool:
    return name in PRIMITIVES or name in ALIASES


def bind(ev: Evaluator, tpl: Template, args: list[Any], kwargs: dict[str, Any], loc: SourceLoc) -> Env:
    """The environment of one instance of ``tpl``: its parameters bound to the arguments or defaults."""
    env = Env(parent=tpl.env)
    names = [p for p, _ in tpl.params]
    if len(args) > len(names):
        raise NasirError(f"{tpl.kind} '{tpl.name}' takes {len(names)} arguments, got {len(args)}", loc)
    for key in kwargs:
        if key not in names:
            raise NasirError(f"{tpl.kind} '{tpl.name}' has no parameter {key!r}", loc,
                             f"its parameters are: {', '.join(names) or 'none'}")
    for i, (pname, default) in enumerate(tpl.params):
        if i < len(args):
            if pname in kwargs:
                raise NasirError(f"parameter {pname!r} of '{tpl.name}' given twice", loc)
            env.set(pname, args[i])
        elif pname in kwargs:
            env.set(pname, kwargs[pname])
        elif default is not None:
            with ev.in_file(tpl.filename):
                env.set(pname, ev.eval(default, env))
        else:
            raise NasirError(f"{tpl.kind} '{tpl.name}' needs a value for parameter {pname!r}", loc)
    return env


def instantiate(ev: Evaluator, tpl: Template, args: list[Any], kwargs: dict[str, Any], loc: SourceLoc) -> Mod:
    """The module ``tpl(args, kwargs)``: an op's body evaluated, or a cell bound to apply later."""
    with ev.limits.expanding(tpl.name, loc):
        env = bind(ev, tpl, args, kwargs, loc)
        choices = {k: v for k, v in env.vars.items() if isinstance(v, ValueChoice) and not v.shared}
        if choices:
            keys = [k for k, _ in tpl.params if k in choices]
            fixed = {k: v for k, v in env.vars.items() if k not in choices}
            return _expand_value_choices(ev, choices, keys,
                                         lambda sub: instantiate(ev, tpl, [], {**fixed, **sub}, loc), tpl.name, loc)
        if tpl.kind in ("cell", "network"):
            return CellMod(tpl, tuple(env.vars.items()), loc)
        with ev.in_file(tpl.filename):
            mod = as_module(ev, ev.eval(tpl.body, env), tpl.body)
    if isinstance(mod, LayerChoice):
        return replace(mod, label=tpl.name)
    return Named(tpl.name, mod, loc)


def as_module(ev: Evaluator, value: Any, where: Any) -> Mod:
    """``value`` where the DSL expects a module: a bare op or template name means its call without arguments."""
    if isinstance(value, Mod):
        return value
    if isinstance(value, Builtin) and is_primitive(value.name):
        return primitive(ev, value.name, [], {}, ev.loc(where), where)
    if isinstance(value, Template):
        return instantiate(ev, value, [], {}, ev.loc(where))
    if isinstance(value, Tensor):
        raise ev.err(where, "expected a module but got a tensor",
                     "`a -> b` chains modules; apply a chain to a tensor with `(a -> b)(x)`")
    raise ev.err(where, f"expected a module, got {describe(value)}")


def primitive(ev: Evaluator, name: str, args: list[Any], kwargs: dict[str, Any], loc: SourceLoc, t: Tree) -> Mod:
    """The primitive op ``name(args, kwargs)``, its positional arguments in the op's declared order."""
    extra: dict[str, Any] = {}
    if name in ALIASES:
        name, extra = ALIASES[name]
    cls = PRIMITIVES[name]
    positional = [p for p in cls.positional if p not in extra]
    if len(args) > len(positional):
        raise ev.err(t, f"{name} takes at most {len(positional)} positional arguments "
                        f"({', '.join(positional)}), got {len(args)}")
    fields: dict[str, Any] = dict(extra)
    for key, value in zip(positional, args):
        fields[key] = value
    for key, value in kwargs.items():
        if key in fields:
            raise ev.err(t, f"{name}: {key!r} given twice")
        if key not in cls.model_fields or key == "op":
            opts = ", ".join(k for k in cls.model_fields if k != "op")
            raise ev.err(t, f"{name} has no attribute {key!r}", f"its attributes are: {opts or 'none'}")
        fields[key] = value
    choices = {k: v for k, v in fields.items() if isinstance(v, ValueChoice)}
    width = choices.pop(cls.width_attr, None) if cls.width_attr is not None else None
    for key, choice in choices.items():
        if choice.shared:
            raise ev.err(t, f"{name}: attribute {key!r} cannot take a shared value choice: only a channel count can "
                            "share one weight", "drop shared(...) to choose among separate ops")
    if choices:
        return _expand_value_choices(ev, choices, list(choices),
                                     lambda sub: _make_primitive(ev, cls, name, dict(fields, **sub), loc, t, width),
                                     name, loc)
    return _make_primitive(ev, cls, name, fields, loc, t, width)


def _make_primitive(ev: Evaluator, cls: type[OpAttrs], name: str, fields: dict[str, Any], loc: SourceLoc,
                    t: Tree, width: ValueChoice | None = None) -> Prim:
    if width is not None:
        width = _width_values(ev, name, cls.width_attr, width, t)
        fields = dict(fields, **{cls.width_attr: max(width.values)})
    for key, value in fields.items():
        if isinstance(value, (Mod, Tensor, list, Template, Builtin)):
            raise ev.err(t, f"{name}: attribute {key!r} must be a number, got {describe(value)}")
    try:
        attrs = cls(**fields)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or name
        msg = first["msg"]
        if first["type"] == "missing":
            msg = "is required"
        raise ev.err(t, f"{name}: attribute {key!r} {msg}",
                     f"positional order: {name}({', '.join(cls.positional)})" if cls.positional else None) from None
    return Prim(attrs, loc, width)


def _width_values(ev: Evaluator, name: str, attr: str, choice: ValueChoice, t: Tree) -> ValueChoice:
    """A width choice's values as positive whole numbers (``C * one_of [0.5, 1.0]`` gives floats), all different."""
    widths = []
    for value in choice.values:
        whole = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
        if not whole or value < 1:
            raise ev.err(t, f"{name}: a width choice of {attr!r} needs whole numbers >= 1, got {value!r}",
                         f"the values given: {list(choice.values)}")
        widths.append(int(value))
    if len(set(widths)) != len(widths):
        raise ev.err(t, f"{name}: the width choice of {attr!r} gives a width twice: {widths}")
    return choice.mapped(tuple(widths))


def _expand_value_choices(ev: Evaluator, choices: dict[str, ValueChoice], keys: list[str],
                          build: Callable[[dict[str, Any]], Mod], label: str, loc: SourceLoc) -> LayerChoice:
    """One candidate per combination of the values of ``choices[keys]``, named like ``k3_e6``."""
    combinations = math.prod(len(choices[k].values) for k in keys)
    if combinations > MAX_CANDIDATES:
        raise LimitError(f"'{label}' takes {len(keys)} value choices: {combinations:,} combinations, more than the "
                         f"limit of {MAX_CANDIDATES:,} candidates of one choice", loc,
                         "choose among whole modules with one_of { ... } instead")
    ev.limits.charge(combinations, lambda _: loc, None)
    candidates = []
    for combo in itertools.product(*(choices[k].values for k in keys)):
        sub = dict(zip(keys, combo))
        name = ev.structural(loc, lambda sub=sub: "_".join(f"{k}{value_label(v)}" for k, v in sub.items()))
        candidates.append((name, build(sub)))
    return LayerChoice(tuple(candidates), label=label, kind="value", loc=loc)

