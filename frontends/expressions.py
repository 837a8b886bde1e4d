"""The expression evaluator: DSL expression trees to values (numbers, lists, modules, tensors).

``Evaluator.eval`` dispatches on the grammar rule to an ``_e_<rule>`` method. Calls go to the
builtin table (``builtins.py``), to template and primitive binding (``binding.py``), or, when the
arguments are tensors, apply a module through the current emitter (``emit.py``). The evaluator
also carries what every error and node name depends on: the file being read and the naming base,
the assignment target the value will be stored in (``cells[3] = ...`` names nodes ``cells3.*``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from lark import Token, Tree

from nasir.diagnostics import NasirError, SourceLoc
from nasir.frontends.binding import as_module, instantiate, primitive
from nasir.frontends.builtins import BUILTINS
from nasir.frontends.emit import ModuleEmitter, temporarily
from nasir.frontends.limits import (
    MAX_INT,
    LimitError,
    Limits,
    check_length,
    in_range,
    int_power,
    out_of_range,
    power_text,
)
from nasir.frontends.parser import loc_of
from nasir.frontends.values import Builtin, Env, LayerChoice, Mod, Seq, Template, Tensor, ValueChoice, describe


class Evaluator:
    """Evaluates expressions in an environment; names defined nowhere else are looked up in ``globals``."""

    def __init__(self, global_env: Env) -> None:
        self.globals = global_env
        self.filename = "<string>"  # the file the trees being evaluated come from
        self.base = ""  # naming base of the nodes a value being evaluated emits
        self.emitter: ModuleEmitter | None = None  # where applied modules emit nodes (None outside networks)
        self.limits = Limits()  # the work of this elaboration so far, against the limits

    # == context ==========================================================================
    def in_file(self, filename: str) -> AbstractContextManager[None]:
        """Evaluate trees of ``filename`` (a template's body, an imported file): locations name that file."""
        return temporarily(self, filename=filename)

    def naming(self, base: str) -> AbstractContextManager[None]:
        return temporarily(self, base=base)

    def emitting(self, emitter: ModuleEmitter) -> AbstractContextManager[None]:
        return temporarily(self, emitter=emitter)

    def loc(self, where: Any) -> SourceLoc:
        return loc_of(where, self.filename)

    def err(self, where: Any, message: str, hint: str | None = None) -> NasirError:
        return NasirError(message, self.loc(where), hint)

    def need_numbers(self, t: Tree, x: Any, y: Any, op: str) -> None:
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.err(t, f"operator {op!r} needs numbers, got {describe(v)}")

    # == evaluation =======================================================================
    def truth(self, tree: Tree, env: Env) -> bool:
        value = self.eval(tree, env)
        if not isinstance(value, (bool, int)):
            raise self.err(tree, f"a condition must be a boolean, got {describe(value)}")
        return bool(value)

    def eval(self, tree: Any, env: Env) -> Any:
        if isinstance(tree, Token):
            raise NasirError(f"unexpected token {tree!r}", self.loc(tree))
        method = getattr(self, f"_e_{tree.data}", None)
        if method is None:  # pragma: no cover
            raise self.err(tree, f"cannot evaluate {tree.data}")
        self.limits.enter(self.loc, tree)
        try:
            return method(tree, env)
        finally:
            self.limits.leave()

    def number(self, t: Tree, value: Any) -> Any:
        """``value``, the result of arithmetic at ``t``, if it is in range (``limits.in_range``)."""
        if not in_range(value):
            raise out_of_range(value, self.loc(t))
        return value

    def structural(self, loc: SourceLoc | None, compute: Callable[[], Any]) -> Any:
        """``compute()``, which compares or prints DSL values (``==``, value-choice names).

        Lists and modules built in a loop (``l = [l]``) nest without bound, and Python compares and
        prints them recursively; too deep a value is refused here rather than crashing.
        """
        try:
            return compute()
        except RecursionError:
            raise LimitError("values nested too deeply to compare or name (lists or modules within each other)",
                             loc) from None

    def _e_number(self, t: Tree, env: Env) -> Any:
        text = str(t.children[0])
        if any(c in text for c in ".eE"):
            return self.number(t, float(text))
        digits = text.lstrip("0") or "0"
        if len(digits) > len(str(MAX_INT)):  # refused before int() meets Python's 4,300-digit limit
            raise out_of_range(MAX_INT + 1, self.loc(t))
        return self.number(t, int(digits))

    def _e_string(self, t: Tree, env: Env) -> str:
        return str(t.children[0])[1:-1]

    def _e_true(self, t: Tree, env: Env) -> bool:
        return True

    def _e_false(self, t: Tree, env: Env) -> bool:
        return False

    def _e_var(self, t: Tree, env: Env) -> Any:
        name = str(t.children[0])
        found, value = env.lookup(name)
        if not found:
            known = set(self.globals.vars)
            e: Env | None = env
            while e is not None:
                known |= set(e.vars)
                e = e.parent
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else None
            raise self.err(t, f"unknown name {name!r} (not a parameter, variable, op or template)", hint)
        return value

    def _e_list(self, t: Tree, env: Env) -> list:
        return [self.eval(c, env) for c in t.children if c is not None]

    def _e_list_comp(self, t: Tree, env: Env) -> list:
        expr, var, it = t.children
        seq = self.eval(it, env)
        if not isinstance(seq, list):
            raise self.err(it, f"a comprehension needs a list or range, got {describe(seq)}")
        out = []
        self.limits.charge(len(seq), self.loc, t)
        inner = Env(parent=env)
        base = self.base
        for k, value in enumerate(seq):
            inner.set(str(var), value)
            with self.naming(f"{base}_{k}" if base else f"item{k}"):
                out.append(self.eval(expr, inner))
        return out

    def _e_layer_choice(self, t: Tree, env: Env) -> LayerChoice:
        cands: list[tuple[str, Mod]] = []
        for c in t.children:
            name = str(c.children[0])
            if any(name == n for n, _ in cands):
                raise self.err(c, f"candidate name {name!r} is used twice in this one_of")
            cands.append((name, as_module(self, self.eval(c.children[1], env), c.children[1])))
        return LayerChoice(tuple(cands), loc=self.loc(t))

    def _e_value_choice(self, t: Tree, env: Env) -> ValueChoice:
        values = tuple(self.eval(c, env) for c in t.children if c is not None)
        if self.structural(self.loc(t), lambda: len(set(map(repr, values)))) != len(values):
            raise self.err(t, "a value choice lists the same value twice")
        return ValueChoice(values, self.loc(t))

    def _e_value_choice_of(self, t: Tree, env: Env) -> ValueChoice:
        values = self.eval(t.children[0], env)
        if not isinstance(values, list) or not values:
            raise self.err(t, f"one_of(...) needs a non-empty list of values, got {describe(values)}")
        if self.structural(self.loc(t), lambda: len(set(map(repr, values)))) != len(values):
            raise self.err(t, "a value choice lists the same value twice")
        return ValueChoice(tuple(values), self.loc(t))

    def _e_pow(self, t: Tree, env: Env) -> Any:
        x, y = self.eval(t.children[0], env), self.eval(t.children[2], env)
        self.need_numbers(t, x, y, "**")
        if isinstance(x, int) and isinstance(y, int):
            if y < 0:
                raise self.err(t, "negative integer power")
            return int_power(x, y, self.loc(t))
        if x == 0 and y < 0:
            raise self.err(t, "zero to a negative power")
        if x < 0 and not float(y).is_integer():
            raise self.err(t, f"{power_text(x, y)} is not a real number")
        try:
            return self.number(t, x**y)
        except OverflowError:
            raise LimitError(f"{power_text(x, y)} is out of range (overflows a 64-bit float)", self.loc(t)) from None

    def _e_if_expr(self, t: Tree, env: Env) -> Any:
        cond, a, b = t.children
        return self.eval(a, env) if self.truth(cond, env) else self.eval(b, env)

    def _e_or_op(self, t: Tree, env: Env) -> bool:
        return self.truth(t.children[0], env) or self.truth(t.children[1], env)

    def _e_and_op(self, t: Tree, env: Env) -> bool:
        return self.truth(t.children[0], env) and self.truth(t.children[1], env)

    def _e_not_op(self, t: Tree, env: Env) -> bool:
        return not self.truth(t.children[0], env)

    def _e_compare(self, t: Tree, env: Env) -> bool:
        a, op, b = t.children
        x, y = self.eval(a, env), self.eval(b, env)
        if op in ("==", "!="):
            return self.structural(self.loc(t), lambda: (x == y) if op == "==" else (x != y))
        self.need_numbers(t, x, y, op)
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[str(op)]

    def _e_seq(self, t: Tree, env: Env) -> Seq:
        a = as_module(self, self.eval(t.children[0], env), t.children[0])
        b = as_module(self, self.eval(t.children[1], env), t.children[1])
        parts = (a.parts if isinstance(a, Seq) else (a,)) + (b.parts if isinstance(b, Seq) else (b,))
        return Seq(parts, self.loc(t))

    def _e_range_expr(self, t: Tree, env: Env) -> list[int]:
        a, b = (self.eval(c, env) for c in t.children)
        if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
            raise self.err(t, "a range `a .. b` needs integers")
        return self.make_range(t, a, b)

    def make_range(self, t: Tree, start: int, stop: int) -> list[int]:
        """The list ``start, ..., stop - 1``, within the length limit and counted as that many steps."""
        check_length(stop - start, "a range", self.loc(t))
        self.limits.charge(max(stop - start, 0), self.loc, t)
        return list(range(start, stop))

    def _e_binop(self, t: Tree, env: Env) -> Any:
        a, op, b = t.children
        x, y = self.eval(a, env), self.eval(b, env)
        op = str(op)
        if op == "+" and (isinstance(x, str) and isinstance(y, str) or isinstance(x, list) and isinstance(y, list)):
            check_length(len(x) + len(y), "a list" if isinstance(x, list) else "a string", self.loc(t))
            self.limits.charge(len(x) + len(y), self.loc, t)
            return x + y
        if isinstance(x, ValueChoice) or isinstance(y, ValueChoice):
            return self._choice_arithmetic(t, x, y, op)
        return self._arithmetic(t, x, y, op)

    def _arithmetic(self, t: Tree, x: Any, y: Any, op: str) -> Any:
        self.need_numbers(t, x, y, op)
        if op in ("//", "%") and y == 0:
            raise self.err(t, "division by zero")
        return self.number(t, {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "//": lambda: x // y,
                               "%": lambda: x % y}[op]())

    def _choice_arithmetic(self, t: Tree, x: Any, y: Any, op: str) -> ValueChoice:
        """Arithmetic on a value choice maps its values (``C * one_of [3, 6]``): the result is the same
        choice; two different choices do not combine (their product would be a new choice)."""
        if isinstance(x, ValueChoice) and isinstance(y, ValueChoice):
            if x.key != y.key:
                raise self.err(t, f"operator {op!r} on two different value choices",
                               "compute with one choice and numbers, e.g. C * one_of [3, 6]")
            return x.mapped(tuple(self._arithmetic(t, u, v, op) for u, v in zip(x.values, y.values)))
        if isinstance(x, ValueChoice):
            return x.mapped(tuple(self._arithmetic(t, u, y, op) for u in x.values))
        return y.mapped(tuple(self._arithmetic(t, x, v, op) for v in y.values))

    def _e_neg(self, t: Tree, env: Env) -> Any:
        x = self.eval(t.children[0], env)
        if isinstance(x, ValueChoice):
            return x.mapped(tuple(self._arithmetic(t, 0, v, "-") for v in x.values))
        self.need_numbers(t, x, 0, "-")
        return self.number(t, -x)

    def _e_index(self, t: Tree, env: Env) -> Any:
        seq = self.eval(t.children[0], env)
        idx = self.eval(t.children[1], env)
        if isinstance(seq, dict):
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise self.err(t.children[1], f"an index must be an integer, got {describe(idx)}")
            if idx not in seq:
                raise self.err(t.children[1], f"no element {idx!r} assigned yet (assigned: {sorted(seq)})")
            return seq[idx]
        if not isinstance(seq, list):
            raise self.err(t, f"cannot index {describe(seq)}")
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise self.err(t.children[1], f"an index must be an integer, got {describe(idx)}")
        if not -len(seq) <= idx < len(seq):
            raise self.err(t.children[1], f"index {idx} out of range for a list of length {len(seq)}")
        return seq[idx]

    def _e_call(self, t: Tree, env: Env) -> Any:
        callee = self.eval(t.children[0], env)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if t.children[1] is not None:
            for a in t.children[1].children:
                if a is None:
                    continue
                if a.data == "kwarg":
                    key = str(a.children[0])
                    if key in kwargs:
                        raise self.err(a, f"keyword {key!r} given twice")
                    kwargs[key] = self.eval(a.children[1], env)
                else:
                    if kwargs:
                        raise self.err(a, "positional argument after a keyword argument")
                    args.append(self.eval(a.children[0], env))
        return self._call(callee, args, kwargs, t)

    # == calls ============================================================================
    def _call(self, callee: Any, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Any:
        tensors = [a for a in args if isinstance(a, Tensor)]
        if isinstance(callee, Builtin) and callee.name in BUILTINS:
            return BUILTINS[callee.name](self, args, kwargs, t)
        if tensors and len(tensors) == len(args) and not kwargs:
            mod = as_module(self, callee, t.children[0])
            if self.emitter is None:
                raise self.err(t, "modules can only be applied to tensors inside a cell or network")
            return self.emitter.apply(mod, tensors, self.base or self.emitter.prefix + "out")
        if tensors:
            raise self.err(t, "cannot mix tensors and attributes in one call",
                           "build the module first, then apply it: `conv(C, 3)(x)`")
        if isinstance(callee, Builtin):
            return primitive(self, callee.name, args, kwargs, self.loc(t), t)
        if isinstance(callee, Template):
            return instantiate(self, callee, args, kwargs, self.loc(t))
        if isinstance(callee, Mod):
            raise self.err(t, "a module can only be applied to tensors", "e.g. `m(x)` where x is an input or a node")
        raise self.err(t, f"{describe(callee)} is not callable")
