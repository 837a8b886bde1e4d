"""The DSL's builtin functions: ``sum``, ``concat``, ``input_choice``, ``len``, ``range``, ``choose``...

``BUILTINS`` maps each name to a function ``(evaluator, args, kwargs, call tree) -> value``; adding a
builtin is adding one function and one table entry. The arguments arrive evaluated; ``tree`` is
the call, which errors point at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from lark import Tree

from nasir.frontends.binding import as_module
from nasir.frontends.limits import check_length
from nasir.frontends.values import LayerChoice, Par, Seq, Template, Tensor, ValueChoice
from nasir.ir.graph import InputGroup
from nasir.ir.nodes import ChoiceNode

if TYPE_CHECKING:
    from nasir.frontends.expressions import Evaluator

BuiltinFunction = Callable[["Evaluator", list[Any], dict[str, Any], Tree], Any]


def _items(args: list[Any]) -> list[Any]:
    """``f([a, b])`` and ``f(a, b)`` mean the same for the variadic builtins."""
    return args[0] if len(args) == 1 and isinstance(args[0], list) else args


def _combine(kind: str, ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Any:
    """``sum``/``concat`` of tensors (a node), of modules (parallel branches) or, for ``sum``, of numbers."""
    items = _items(args)
    if kwargs:
        raise ev.err(t, f"{kind} takes no keyword arguments")
    if not items:
        raise ev.err(t, f"{kind} of nothing")
    if all(isinstance(i, Tensor) for i in items):
        return ev.emitter.combine(kind, items, ev.base, ev.loc(t))
    if kind == "sum" and all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in items):
        return ev.number(t, sum(items))
    return Par(kind, tuple(as_module(ev, i, t) for i in items), ev.loc(t))


def _input_choice(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Tensor:
    """The sum of ``k`` of the edges chosen by the search (DARTS: two inputs per node)."""
    if len(args) != 2 or not _is_int(args[0]) or not isinstance(args[1], list):
        raise ev.err(t, "input_choice(k, [edges...]) takes a count and a list of tensors")
    k, items = args
    if not items or not all(isinstance(i, Tensor) for i in items):
        raise ev.err(t, "input_choice needs a non-empty list of tensors")
    exclude = kwargs.pop("exclude", ["none"])
    if not (isinstance(exclude, list) and all(isinstance(e, str) for e in exclude)):
        raise ev.err(t, "input_choice's `exclude` is a list of candidate names", 'e.g. exclude = ["none"]')
    if kwargs:
        raise ev.err(t, f"unknown keyword {next(iter(kwargs))!r} for input_choice")
    members = []
    for item in items:
        node = ev.emitter.region[item.node]
        if not isinstance(node, ChoiceNode):
            raise ev.err(t, "every input of input_choice must come straight from a one_of choice")
        members.append(node.arch)
    if not 1 <= k <= len(items):
        raise ev.err(t, f"input_choice keeps {k} of {len(items)} inputs")
    graph = ev.emitter.graph
    if not any(g.members == members for g in graph.input_groups):
        graph.input_groups.append(
            InputGroup(name=ev.emitter.arch_name(ev.base), members=members, n_chosen=k, exclude=list(exclude)))
    return ev.emitter.combine("sum", items, ev.base, ev.loc(t))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _len(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> int:
    """``len(list)``: the number of items."""
    if len(args) != 1 or not isinstance(args[0], list):
        raise ev.err(t, "len() takes one list")
    return len(args[0])


def _extremum(kind: str, ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Any:
    """``min(a, b, ...)`` / ``max(a, b, ...)`` (or of one list): the smallest / largest number."""
    items = _items(args)
    if not items:
        raise ev.err(t, f"{kind} of nothing")
    for i in items:
        ev.need_numbers(t, i, 0, kind)
    return (min if kind == "min" else max)(items)


def _range(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> list[int]:
    """``range(n)`` or ``range(a, b)``: the list of integers from ``a`` (default 0) up to, not including, ``b``
    (the same as ``a .. b``)."""
    if not 1 <= len(args) <= 2 or not all(_is_int(a) for a in args) or kwargs:
        raise ev.err(t, "range(n) or range(a, b) with integers")
    start, stop = args if len(args) == 2 else (0, args[0])
    return ev.make_range(t, start, stop)


def _repeat(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Seq:
    """``n`` copies of a module in sequence; a template is instantiated ``n`` times."""
    if len(args) != 2 or not _is_int(args[0]) or args[0] < 1 or kwargs:
        raise ev.err(t, "repeat(n, module) needs a positive count and a module")
    check_length(args[0], "a repeat", ev.loc(t))
    ev.limits.charge(args[0], ev.loc, t)
    mod = as_module(ev, args[1], t)
    if isinstance(args[1], Template):
        return Seq(tuple(as_module(ev, args[1], t) for _ in range(args[0])), ev.loc(t))
    return Seq((mod,) * args[0], ev.loc(t))


def _str(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> str:
    """``str(x)``: a number or string as a string, for names such as ``"block" + str(i)``."""
    if len(args) != 1 or not isinstance(args[0], (int, float, str)):
        raise ev.err(t, "str() takes one number or string")
    return str(args[0]).lower() if isinstance(args[0], bool) else str(args[0])


def _choose(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> LayerChoice:
    """A layer choice built from a list of ``[name, module]`` pairs (``one_of { ... }`` computed)."""
    if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
        raise ev.err(t, "choose([[name, module], ...]) takes a non-empty list of name/module pairs")
    cands = []
    for pair in args[0]:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ev.err(t, "each candidate of choose() is a [name, module] pair")
        if any(pair[0] == n for n, _ in cands):
            raise ev.err(t, f"candidate name {pair[0]!r} is used twice")
        cands.append((pair[0], as_module(ev, pair[1], t)))
    unknown = set(kwargs) - {"label"}
    if unknown:
        raise ev.err(t, f"unknown keyword {unknown.pop()!r} for choose")
    return LayerChoice(tuple(cands), label=str(kwargs.get("label", "choice")), loc=ev.loc(t))


def _shared(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> ValueChoice:
    """``shared(one_of [...])``: a value choice that templates take as it is (instead of expanding into
    one candidate per value), so it can reach a channel count inside them and share one weight."""
    if len(args) != 1 or kwargs or not isinstance(args[0], ValueChoice):
        raise ev.err(t, "shared(...) takes one value choice", "e.g. mbconv(C, e = shared(one_of [3, 6]))")
    return replace(args[0], shared=True, key=args[0].key)


def _error(ev: Evaluator, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Any:
    """``error("message")``: stop compiling with ``message``, located at this call, e.g. in the branch
    of an ``if ... then ... else`` that no valid parameter reaches (``else error("unknown stem " + stem)``)."""
    if len(args) != 1 or kwargs or not isinstance(args[0], str):
        raise ev.err(t, "error() takes one string: the message")
    raise ev.err(t, args[0])


BUILTINS: dict[str, BuiltinFunction] = {
    "sum": partial(_combine, "sum"),
    "concat": partial(_combine, "concat"),
    "input_choice": _input_choice,
    "len": _len,
    "min": partial(_extremum, "min"),
    "max": partial(_extremum, "max"),
    "range": _range,
    "repeat": _repeat,
    "str": _str,
    "choose": _choose,
    "shared": _shared,
    "error": _error,
}
