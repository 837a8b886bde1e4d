"""Elaboration: parse tree -> graph IR.

Parameters, arithmetic, conditionals, loops and templates are evaluated here, once, so the IR holds
only the resulting graph. Modules are built lazily (see ``values.py``) and become nodes when applied
to tensors; node names follow the assignment targets of the DSL (``cells[3] = ...`` gives nodes
``cells.3.*``), which in turn name the lowered PyTorch submodules.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Token, Tree
from pydantic import ValidationError

from nasir.diagnostics import NasirError, SourceLoc
from nasir.frontends.parser import loc_of, parse
from nasir.frontends.values import (
    Builtin,
    CellMod,
    Env,
    LayerChoice,
    Mod,
    Named,
    Par,
    Prim,
    Seq,
    Template,
    Tensor,
    ValueChoice,
    describe,
)
from nasir.ir.graph import ArchParam, Graph, InputGroup
from nasir.ir.nodes import (
    Candidate,
    ChoiceNode,
    ConcatNode,
    InputNode,
    OpNode,
    OutputNode,
    Region,
    SumNode,
)
from nasir.ir.ops import PRIMITIVES, OpAttrs
from nasir.ir.verify import verify

BUILTINS = ("sum", "concat", "input_choice", "len", "min", "max", "range", "repeat", "str", "choose")
ALIASES = {"pwconv": ("conv", {"kernel": 1})}


def std_dir() -> Path:
    return Path(str(resources.files("nasir.grammar").joinpath("std")))


class _Scope:
    """Where new nodes go and how they and their architecture parameters are named."""

    def __init__(self, region: Region, prefix: str = "", abs_prefix: str = ""):
        self.region = region
        self.prefix = prefix  # node-name prefix inside ``region``
        self.abs_prefix = abs_prefix  # path of ``region`` itself from the top graph
        self.arch_prefix = ""  # "normal." inside a cell that `shares "normal"`
        self.arch_root = ""  # absolute path at which shared naming starts
        self.block: str | None = None
        self.budget: float | None = None


class Elaborator:
    def __init__(self) -> None:
        self.globals = Env()
        for name in PRIMITIVES:
            self.globals.set(name, Builtin(name))
        for name in ALIASES:
            self.globals.set(name, Builtin(name))
        for name in BUILTINS:
            self.globals.set(name, Builtin(name))
        self.loaded: set[Path] = set()
        self.networks: list[Template] = []
        self.main_networks: list[Template] = []
        self.filename = "<string>"
        self.graph: Graph | None = None
        self.scope: _Scope | None = None
        self.base = ""

    # == loading files ===================================================================
    def load_file(self, path: str | Path, main: bool = True) -> None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise NasirError(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}") from None
        self.loaded.add(path.resolve())
        self.load_text(text, str(path), main=main)

    def load_text(self, text: str, filename: str = "<string>", main: bool = True) -> None:
        tree = parse(text, filename)
        saved = self.filename
        self.filename = filename
        try:
            for item in tree.children:
                self._top_item(item, main)
        finally:
            self.filename = saved

    def _top_item(self, item: Tree, main: bool) -> None:
        kind = item.data
        if kind == "import_stmt":
            self._import(item)
        elif kind in ("op_def", "cell_def", "network_def"):
            tpl = self._template(item)
            self.globals.set(tpl.name, tpl)
            if tpl.kind == "network":
                self.networks.append(tpl)
                if main:
                    self.main_networks.append(tpl)
        elif kind == "assign":
            self._assign(item, self.globals)
        else:  # pragma: no cover - grammar guarantees the kinds above
            raise self._err(item, f"unexpected top-level item {kind}")

    def _import(self, item: Tree) -> None:
        rel = item.children[0][1:-1]
        here = Path(self.filename).parent if not self.filename.startswith("<") else Path.cwd()
        for base in (here, std_dir().parent, std_dir()):
            cand = (base / rel).resolve()
            if cand.is_file():
                if cand not in self.loaded:
                    self.load_file(cand, main=False)
                return
        raise self._err(item, f"cannot find imported file {rel!r}",
                        'paths are relative to the importing file or to the standard library (e.g. "std/darts.nas")')

    def _template(self, item: Tree) -> Template:
        kind = {"op_def": "op", "cell_def": "cell", "network_def": "network"}[item.data]
        name_tok = item.children[0]
        params_tree = item.children[1]
        params: list[tuple[str, Any]] = []
        if params_tree is not None:
            for p in params_tree.children:
                if p is None:
                    continue
                params.append((str(p.children[0]), p.children[1]))
        shares = None
        if kind == "op":
            body: Any = item.children[2]
        elif kind == "cell":
            shares = item.children[2].children[0] if item.children[2] is not None else None
            body = list(item.children[3:])
        else:
            body = list(item.children[2:])
        names = [p for p, _ in params]
        if len(set(names)) != len(names):
            raise self._err(item, f"{kind} '{name_tok}' repeats a parameter name")
        return Template(kind, str(name_tok), params, body, self.globals, loc_of(name_tok, self.filename),
                        shares=shares, filename=self.filename)

    # == building a network ==============================================================
    def build(self, entry: str | None = None, overrides: dict[str, Any] | None = None) -> Graph:
        pool = self.main_networks or self.networks
        if not pool:
            raise NasirError(f"{self.filename}: no `network` definition to compile",
                             hint="define `network name(...) { input x: [3, 32, 32] ... output y }`")
        if entry is None:
            tpl = pool[-1]
        else:
            found = [t for t in self.networks if t.name == entry]
            if not found:
                raise NasirError(f"no network named {entry!r}", hint=f"networks here: {', '.join(t.name for t in self.networks)}")
            tpl = found[-1]
        graph = Graph(name=tpl.name)
        self.graph = graph
        self.scope = _Scope(graph.body)
        saved_file = self.filename
        self.filename = tpl.filename
        try:
            env = self._bind(tpl, [], dict(overrides or {}), tpl.loc, allow_unknown=False)
            graph.params = {k: v for k, v in env.vars.items() if isinstance(v, (int, float, bool, str))}
            self._run_body(tpl, env, [], network=True)
        finally:
            self.filename = saved_file
        verify(graph)
        return graph

    # == statements ======================================================================
    def _run_body(self, tpl: Template, env: Env, inputs: list[Tensor], network: bool) -> list[Tensor]:
        self._inputs_pending = list(inputs)
        outputs: list[Tensor] = []
        self._exec(tpl.body, env, network, outputs)
        if not outputs:
            raise NasirError(f"{tpl.kind} '{tpl.name}' has no `output` statement", tpl.loc)
        if not network and self._inputs_pending:
            raise NasirError(f"{tpl.kind} '{tpl.name}' was given {len(inputs)} inputs but declares fewer", tpl.loc)
        return outputs

    def _exec(self, stmts: list[Tree], env: Env, network: bool, outputs: list[Tensor]) -> None:
        for st in stmts:
            kind = st.data
            if kind == "input_stmt":
                self._input(st, env, network)
            elif kind == "assign":
                self._assign(st, env)
            elif kind == "for_stmt":
                var, it_tree, *body = st.children
                seq = self._eval(it_tree, env)
                if not isinstance(seq, list):
                    raise self._err(it_tree, f"`for` needs a list or range, got {describe(seq)}")
                for value in seq:
                    env.set(str(var), value)
                    self._exec(body, env, network, outputs)
            elif kind == "if_stmt":
                cond, *rest = st.children
                else_part = rest[-1] if rest and isinstance(rest[-1], Tree) and rest[-1].data == "else_part" else None
                body = [c for c in rest if c is not else_part and c is not None]
                if self._truth(cond, env):
                    self._exec(body, env, network, outputs)
                elif else_part is not None:
                    self._exec(list(else_part.children), env, network, outputs)
            elif kind == "output_stmt":
                for i, expr in enumerate(st.children):
                    value = self._eval(expr, env)
                    if not isinstance(value, Tensor):
                        raise self._err(expr, f"`output` needs a tensor, got {describe(value)}",
                                        "apply a module to an input, e.g. `output head(x)`")
                    if network:
                        node = OutputNode(name=self._fresh("output" if i == 0 else f"output{i}"),
                                          inputs=[value.node], index=i, loc=loc_of(expr, self.filename))
                        self.scope.region.add(node)
                    outputs.append(value)
            elif kind in ("block_stmt", "gate_stmt"):
                tag_tree, *body = st.children
                tag = self._eval(tag_tree, env)
                attr = "block" if kind == "block_stmt" else "budget"
                if attr == "block" and not isinstance(tag, str):
                    raise self._err(tag_tree, f"`block` needs a name string, got {describe(tag)}")
                if attr == "budget" and (not isinstance(tag, (int, float)) or not 0 < tag <= 1):
                    raise self._err(tag_tree, "`gate` needs a budget fraction in (0, 1]")
                saved = getattr(self.scope, attr)
                setattr(self.scope, attr, tag if attr == "block" else float(tag))
                try:
                    self._exec(body, env, network, outputs)
                finally:
                    setattr(self.scope, attr, saved)
            else:  # pragma: no cover
                raise self._err(st, f"unexpected statement {kind}")

    def _input(self, st: Tree, env: Env, network: bool) -> None:
        for decl in st.children:
            name = str(decl.children[0])
            shape_tree = decl.children[1]
            if network:
                if shape_tree is None:
                    raise self._err(decl, f"network input {name!r} needs a shape", "write `input x: [3, 32, 32]`")
                shape = self._eval(shape_tree, env)
                if not (isinstance(shape, list) and shape and all(isinstance(s, int) and s > 0 for s in shape)):
                    raise self._err(shape_tree, "an input shape is a list of positive integers, e.g. [3, 32, 32]")
                index = sum(1 for n in self.scope.region.nodes if n.kind == "input")
                node = InputNode(name=self._fresh(self.scope.prefix + name), shape=shape, index=index,
                                 loc=loc_of(decl, self.filename))
                self.scope.region.add(node)
                env.set(name, Tensor(node.name))
            else:
                if not self._inputs_pending:
                    raise self._err(decl, f"input {name!r} has no value: the cell was applied to too few tensors")
                env.set(name, self._inputs_pending.pop(0))

    def _assign(self, st: Tree, env: Env) -> None:
        target, expr = st.children
        if target.data == "indexed_target":
            name = str(target.children[0])
            idx = self._eval(target.children[1], env)
            if not isinstance(idx, int):
                raise self._err(target, f"index must be an integer, got {describe(idx)}")
            label = f"{name}{idx}"
        else:
            name = str(target.children[0])
            idx = None
            label = name
        prefix = self.scope.prefix if self.scope is not None else ""
        with self._naming(prefix + label):
            value = self._eval(expr, env)
        if idx is None:
            env.set(name, value)
            return
        found, current = env.lookup(name)
        if not found:
            current = {}  # indexed variables are sparse: `n[1] = ...` may come first
            env.set(name, current)
        if isinstance(current, dict):
            current[idx] = value
        elif isinstance(current, list) and 0 <= idx <= len(current):
            current[idx:idx + 1] = [value]
        else:
            raise self._err(target, f"cannot assign {name}[{idx}]: {name!r} is {describe(current)}"
                            + (f" of length {len(current)}" if isinstance(current, list) else ""))

    @contextmanager
    def _naming(self, base: str) -> Iterator[None]:
        saved = self.base
        self.base = base
        try:
            yield
        finally:
            self.base = saved

    # == expressions =====================================================================
    def _truth(self, tree: Tree, env: Env) -> bool:
        value = self._eval(tree, env)
        if not isinstance(value, (bool, int)):
            raise self._err(tree, f"a condition must be a boolean, got {describe(value)}")
        return bool(value)

    def _eval(self, tree: Any, env: Env) -> Any:
        if isinstance(tree, Token):
            raise NasirError(f"unexpected token {tree!r}", loc_of(tree, self.filename))
        method = getattr(self, f"_e_{tree.data}", None)
        if method is None:  # pragma: no cover
            raise self._err(tree, f"cannot evaluate {tree.data}")
        return method(tree, env)

    def _e_number(self, t: Tree, env: Env) -> Any:
        text = str(t.children[0])
        return float(text) if any(c in text for c in ".eE") else int(text)

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
            raise self._err(t, f"unknown name {name!r} (not a parameter, variable, op or template)", hint)
        return value

    def _e_list(self, t: Tree, env: Env) -> list:
        return [self._eval(c, env) for c in t.children if c is not None]

    def _e_list_comp(self, t: Tree, env: Env) -> list:
        expr, var, it = t.children
        seq = self._eval(it, env)
        if not isinstance(seq, list):
            raise self._err(it, f"a comprehension needs a list or range, got {describe(seq)}")
        out = []
        inner = Env(parent=env)
        base = self.base
        for k, value in enumerate(seq):
            inner.set(str(var), value)
            with self._naming(f"{base}_{k}" if base else f"item{k}"):
                out.append(self._eval(expr, inner))
        return out

    def _e_layer_choice(self, t: Tree, env: Env) -> LayerChoice:
        cands: list[tuple[str, Mod]] = []
        for c in t.children:
            name = str(c.children[0])
            if any(name == n for n, _ in cands):
                raise self._err(c, f"candidate name {name!r} is used twice in this one_of")
            cands.append((name, self._as_mod(self._eval(c.children[1], env), c.children[1])))
        return LayerChoice(tuple(cands), loc=loc_of(t, self.filename))

    def _e_value_choice(self, t: Tree, env: Env) -> ValueChoice:
        values = tuple(self._eval(c, env) for c in t.children if c is not None)
        if len(set(map(repr, values))) != len(values):
            raise self._err(t, "a value choice lists the same value twice")
        return ValueChoice(values, loc_of(t, self.filename))

    def _e_value_choice_of(self, t: Tree, env: Env) -> ValueChoice:
        values = self._eval(t.children[0], env)
        if not isinstance(values, list) or not values:
            raise self._err(t, f"one_of(...) needs a non-empty list of values, got {describe(values)}")
        if len(set(map(repr, values))) != len(values):
            raise self._err(t, "a value choice lists the same value twice")
        return ValueChoice(tuple(values), loc_of(t, self.filename))

    def _e_pow(self, t: Tree, env: Env) -> Any:
        x, y = self._eval(t.children[0], env), self._eval(t.children[2], env)
        self._need_numbers(t, x, y, "**")
        if isinstance(y, int) and y < 0 and isinstance(x, int):
            raise self._err(t, "negative integer power")
        return x**y

    def _e_if_expr(self, t: Tree, env: Env) -> Any:
        cond, a, b = t.children
        return self._eval(a, env) if self._truth(cond, env) else self._eval(b, env)

    def _e_or_op(self, t: Tree, env: Env) -> bool:
        return self._truth(t.children[0], env) or self._truth(t.children[1], env)

    def _e_and_op(self, t: Tree, env: Env) -> bool:
        return self._truth(t.children[0], env) and self._truth(t.children[1], env)

    def _e_not_op(self, t: Tree, env: Env) -> bool:
        return not self._truth(t.children[0], env)

    def _e_compare(self, t: Tree, env: Env) -> bool:
        a, op, b = t.children
        x, y = self._eval(a, env), self._eval(b, env)
        if op in ("==", "!="):
            return (x == y) if op == "==" else (x != y)
        self._need_numbers(t, x, y, op)
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[str(op)]

    def _e_seq(self, t: Tree, env: Env) -> Seq:
        a = self._as_mod(self._eval(t.children[0], env), t.children[0])
        b = self._as_mod(self._eval(t.children[1], env), t.children[1])
        parts = (a.parts if isinstance(a, Seq) else (a,)) + (b.parts if isinstance(b, Seq) else (b,))
        return Seq(parts, loc_of(t, self.filename))

    def _e_range_expr(self, t: Tree, env: Env) -> list[int]:
        a, b = (self._eval(c, env) for c in t.children)
        if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
            raise self._err(t, "a range `a .. b` needs integers")
        return list(range(a, b))

    def _e_binop(self, t: Tree, env: Env) -> Any:
        a, op, b = t.children
        x, y = self._eval(a, env), self._eval(b, env)
        op = str(op)
        if op == "+" and isinstance(x, str) and isinstance(y, str):
            return x + y
        if op == "+" and isinstance(x, list) and isinstance(y, list):
            return x + y
        self._need_numbers(t, x, y, op)
        if op in ("//", "%") and y == 0:
            raise self._err(t, "division by zero")
        return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "//": lambda: x // y,
                "%": lambda: x % y}[op]()

    def _e_neg(self, t: Tree, env: Env) -> Any:
        x = self._eval(t.children[0], env)
        self._need_numbers(t, x, 0, "-")
        return -x

    def _e_index(self, t: Tree, env: Env) -> Any:
        seq = self._eval(t.children[0], env)
        idx = self._eval(t.children[1], env)
        if isinstance(seq, dict):
            if idx not in seq:
                raise self._err(t.children[1], f"no element {idx!r} assigned yet (assigned: {sorted(seq)})")
            return seq[idx]
        if not isinstance(seq, list):
            raise self._err(t, f"cannot index {describe(seq)}")
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise self._err(t.children[1], f"an index must be an integer, got {describe(idx)}")
        if not -len(seq) <= idx < len(seq):
            raise self._err(t.children[1], f"index {idx} out of range for a list of length {len(seq)}")
        return seq[idx]

    def _e_call(self, t: Tree, env: Env) -> Any:
        callee = self._eval(t.children[0], env)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        arg_trees: list[Tree] = []
        if t.children[1] is not None:
            for a in t.children[1].children:
                if a is None:
                    continue
                if a.data == "kwarg":
                    key = str(a.children[0])
                    if key in kwargs:
                        raise self._err(a, f"keyword {key!r} given twice")
                    kwargs[key] = self._eval(a.children[1], env)
                else:
                    if kwargs:
                        raise self._err(a, "positional argument after a keyword argument")
                    args.append(self._eval(a.children[0], env))
                    arg_trees.append(a)
        return self._call(callee, args, kwargs, t)

    # == calls ===========================================================================
    def _call(self, callee: Any, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Any:
        loc = loc_of(t, self.filename)
        tensors = [a for a in args if isinstance(a, Tensor)]
        if isinstance(callee, Builtin) and callee.name in BUILTINS:
            return self._builtin(callee.name, args, kwargs, t)
        if tensors and len(tensors) == len(args) and not kwargs:
            mod = self._as_mod(callee, t.children[0])
            return self._apply_checked(mod, tensors, t)
        if tensors:
            raise self._err(t, "cannot mix tensors and attributes in one call",
                            "build the module first, then apply it: `conv(C, 3)(x)`")
        if isinstance(callee, Builtin):
            return self._prim(callee.name, args, kwargs, loc, t)
        if isinstance(callee, Template):
            return self._instantiate(callee, args, kwargs, loc)
        if isinstance(callee, Mod):
            raise self._err(t, "a module can only be applied to tensors", "e.g. `m(x)` where x is an input or a node")
        raise self._err(t, f"{describe(callee)} is not callable")

    def _apply_checked(self, mod: Mod, tensors: list[Tensor], t: Tree) -> Tensor:
        if self.scope is None:
            raise self._err(t, "modules can only be applied to tensors inside a cell or network")
        return self._apply(mod, tensors, self.base or self.scope.prefix + "out")

    def _builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], t: Tree) -> Any:
        loc = loc_of(t, self.filename)
        if name in ("sum", "concat"):
            items = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            if kwargs:
                raise self._err(t, f"{name} takes no keyword arguments")
            if not items:
                raise self._err(t, f"{name} of nothing")
            if all(isinstance(i, Tensor) for i in items):
                return self._join(name, items, loc)
            if name == "sum" and all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in items):
                return sum(items)
            mods = tuple(self._as_mod(i, t) for i in items)
            return Par(name, mods, loc)
        if name == "input_choice":
            if len(args) != 2 or not isinstance(args[0], int) or not isinstance(args[1], list):
                raise self._err(t, "input_choice(k, [edges...]) takes a count and a list of tensors")
            k, items = args
            if not items or not all(isinstance(i, Tensor) for i in items):
                raise self._err(t, "input_choice needs a non-empty list of tensors")
            exclude = kwargs.pop("exclude", ["none"])
            if kwargs:
                raise self._err(t, f"unknown keyword {next(iter(kwargs))!r} for input_choice")
            members = []
            for item in items:
                node = self.scope.region[item.node]
                if not isinstance(node, ChoiceNode):
                    raise self._err(t, "every input of input_choice must come straight from a one_of choice")
                members.append(node.arch)
            if not 1 <= k <= len(items):
                raise self._err(t, f"input_choice keeps {k} of {len(items)} inputs")
            if not any(g.members == members for g in self.graph.input_groups):
                self.graph.input_groups.append(
                    InputGroup(name=self._arch_name(self.base), members=members, n_chosen=k, exclude=list(exclude)))
            return self._join("sum", items, loc)
        if name == "len":
            if len(args) != 1 or not isinstance(args[0], list):
                raise self._err(t, "len() takes one list")
            return len(args[0])
        if name in ("min", "max"):
            items = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            for i in items:
                self._need_numbers(t, i, 0, name)
            return (min if name == "min" else max)(items)
        if name == "range":
            if not 1 <= len(args) <= 2 or not all(isinstance(a, int) for a in args):
                raise self._err(t, "range(n) or range(a, b) with integers")
            return list(range(*args))
        if name == "str":
            if len(args) != 1 or not isinstance(args[0], (int, float, str)):
                raise self._err(t, "str() takes one number or string")
            return str(args[0]).lower() if isinstance(args[0], bool) else str(args[0])
        if name == "choose":
            if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
                raise self._err(t, "choose([[name, module], ...]) takes a non-empty list of name/module pairs")
            cands = []
            for pair in args[0]:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                    raise self._err(t, "each candidate of choose() is a [name, module] pair")
                if any(pair[0] == n for n, _ in cands):
                    raise self._err(t, f"candidate name {pair[0]!r} is used twice")
                cands.append((pair[0], self._as_mod(pair[1], t)))
            return LayerChoice(tuple(cands), label=str(kwargs.get("label", "choice")), loc=loc)
        if name == "repeat":
            if len(args) != 2 or not isinstance(args[0], int) or args[0] < 1:
                raise self._err(t, "repeat(n, module) needs a positive count and a module")
            mod = self._as_mod(args[1], t)
            if isinstance(args[1], Template):
                return Seq(tuple(self._as_mod(args[1], t) for _ in range(args[0])), loc)
            return Seq((mod,) * args[0], loc)
        raise self._err(t, f"unknown builtin {name}")  # pragma: no cover

    def _prim(self, name: str, args: list[Any], kwargs: dict[str, Any], loc: SourceLoc, t: Tree) -> Mod:
        extra: dict[str, Any] = {}
        if name in ALIASES:
            name, extra = ALIASES[name]
        cls = PRIMITIVES[name]
        positional = [p for p in cls.positional if p not in extra]
        if len(args) > len(positional):
            raise self._err(t, f"{name} takes at most {len(positional)} positional arguments "
                               f"({', '.join(positional)}), got {len(args)}")
        fields: dict[str, Any] = dict(extra)
        for key, value in zip(positional, args):
            fields[key] = value
        for key, value in kwargs.items():
            if key in fields:
                raise self._err(t, f"{name}: {key!r} given twice")
            if key not in cls.model_fields or key == "op":
                opts = ", ".join(k for k in cls.model_fields if k != "op")
                raise self._err(t, f"{name} has no attribute {key!r}", f"its attributes are: {opts or 'none'}")
            fields[key] = value
        choices = {k: v for k, v in fields.items() if isinstance(v, ValueChoice)}
        if choices:
            keys = list(choices)
            cands = []
            for combo in itertools.product(*(choices[k].values for k in keys)):
                concrete = dict(fields, **dict(zip(keys, combo)))
                label = "_".join(f"{k}{_label(v)}" for k, v in zip(keys, combo))
                cands.append((label, self._make_prim(cls, name, concrete, loc, t)))
            return LayerChoice(tuple(cands), label=name, kind="value", loc=loc)
        return self._make_prim(cls, name, fields, loc, t)

    def _make_prim(self, cls: type[OpAttrs], name: str, fields: dict[str, Any], loc: SourceLoc, t: Tree) -> Prim:
        for key, value in fields.items():
            if isinstance(value, (Mod, Tensor, list, Template, Builtin)):
                raise self._err(t, f"{name}: attribute {key!r} must be a number, got {describe(value)}")
        try:
            attrs = cls(**fields)
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or name
            msg = first["msg"]
            if first["type"] == "missing":
                msg = "is required"
            raise self._err(t, f"{name}: attribute {key!r} {msg}",
                            f"positional order: {name}({', '.join(cls.positional)})" if cls.positional else None) from None
        return Prim(attrs, loc)

    def _bind(self, tpl: Template, args: list[Any], kwargs: dict[str, Any], loc: SourceLoc,
              allow_unknown: bool = False) -> Env:
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
                saved = self.filename
                self.filename = tpl.filename
                try:
                    env.set(pname, self._eval(default, env))
                finally:
                    self.filename = saved
            else:
                raise NasirError(f"{tpl.kind} '{tpl.name}' needs a value for parameter {pname!r}", loc)
        return env

    def _instantiate(self, tpl: Template, args: list[Any], kwargs: dict[str, Any], loc: SourceLoc) -> Mod:
        env = self._bind(tpl, args, kwargs, loc)
        choices = {k: v for k, v in env.vars.items() if isinstance(v, ValueChoice)}
        if choices:
            keys = [k for k, _ in tpl.params if k in choices]
            cands = []
            for combo in itertools.product(*(choices[k].values for k in keys)):
                sub = dict(zip(keys, combo))
                fixed = {k: v for k, v in env.vars.items() if k not in sub}
                label = "_".join(f"{k}{_label(v)}" for k, v in sub.items())
                cands.append((label, self._instantiate(tpl, [], {**fixed, **sub}, loc)))
            return LayerChoice(tuple(cands), label=tpl.name, kind="value", loc=loc)
        if tpl.kind in ("cell", "network"):
            return CellMod(tpl, tuple(env.vars.items()), loc)
        saved = self.filename
        self.filename = tpl.filename
        try:
            value = self._eval(tpl.body, env)
        finally:
            self.filename = saved
        mod = self._as_mod(value, tpl.body)
        if isinstance(mod, LayerChoice):
            return replace(mod, label=tpl.name)
        return Named(tpl.name, mod, loc)

    def _as_mod(self, value: Any, where: Any) -> Mod:
        if isinstance(value, Mod):
            return value
        if isinstance(value, Builtin) and value.name not in BUILTINS:
            return self._prim(value.name, [], {}, loc_of(where, self.filename), where)
        if isinstance(value, Template):
            return self._instantiate(value, [], {}, loc_of(where, self.filename))
        if isinstance(value, Tensor):
            raise self._err(where, "expected a module but got a tensor",
                            "`a -> b` chains modules; apply a chain to a tensor with `(a -> b)(x)`")
        raise self._err(where, f"expected a module, got {describe(value)}")

    # == applying modules: emitting IR nodes ============================================
    def _fresh(self, base: str) -> str:
        return self.scope.region.fresh_name(base)

    def _tag(self, node):
        node.block = self.scope.block
        node.budget = self.scope.budget
        return self.scope.region.add(node)

    def _join(self, kind: str, items: list[Tensor], loc: SourceLoc) -> Tensor:
        if len(items) == 1 and kind == "sum":
            return items[0]
        cls = SumNode if kind == "sum" else ConcatNode
        node = self._tag(cls(name=self._fresh(self.base or self.scope.prefix + kind), inputs=[i.node for i in items], loc=loc))
        return Tensor(node.name)

    def _apply(self, mod: Mod, ins: list[Tensor], base: str) -> Tensor:
        if isinstance(mod, Prim):
            if len(ins) != 1:
                raise NasirError(f"{mod.attrs.op} takes one input, got {len(ins)}", mod.loc)
            if mod.attrs.op == "identity":
                return ins[0]
            node = OpNode(name=self._fresh(base or mod.attrs.op), inputs=[ins[0].node], attrs=mod.attrs, loc=mod.loc)
            return Tensor(self._tag(node).name)
        if isinstance(mod, Seq):
            x = ins
            for part in mod.parts:
                x = [self._apply(part, x, _join(base, _part_label(part)))]
            return x[0]
        if isinstance(mod, Named):
            return self._apply(mod.body, ins, base)
        if isinstance(mod, Par):
            outs = [self._apply(b, ins, _join(base, str(i))) for i, b in enumerate(mod.branches)]
            with self._naming(base):
                return self._join(mod.combine, outs, mod.loc)
        if isinstance(mod, LayerChoice):
            return self._choice(mod, ins, base)
        if isinstance(mod, CellMod):
            return self._apply_cell(mod, ins, base)
        raise NasirError(f"cannot apply {describe(mod)}", getattr(mod, "loc", None))  # pragma: no cover

    def _arch_name(self, name: str) -> str:
        full = self.scope.abs_prefix + name
        if self.scope.arch_prefix:
            rel = full[len(self.scope.arch_root):] if full.startswith(self.scope.arch_root) else full
            return self.scope.arch_prefix + rel
        return full

    def _choice(self, mod: LayerChoice, ins: list[Tensor], base: str) -> Tensor:
        name = self._fresh(base or mod.label)
        arch = self._arch_name(name)
        cand_names = [c for c, _ in mod.candidates]
        param = self.graph.arch.get(arch)
        if param is None:
            self.graph.arch[arch] = ArchParam(name=arch, candidates=cand_names, kind=mod.kind, loc=mod.loc)
        elif param.candidates != cand_names:
            raise NasirError(f"choices sharing architecture parameter {arch!r} have different candidates "
                             f"({param.candidates} vs {cand_names})", mod.loc)
        candidates = []
        outer = self.scope
        for cname, cmod in mod.candidates:
            region = Region()
            for i in range(len(ins)):
                region.add(InputNode(name=f"in{i}" if len(ins) > 1 else "x", index=i, loc=mod.loc))
            inner = _Scope(region, "", f"{outer.abs_prefix}{name}.{cname}.")
            inner.arch_prefix, inner.arch_root = outer.arch_prefix, outer.arch_root
            inner.block, inner.budget = outer.block, outer.budget
            self.scope = inner
            try:
                with self._naming(""):
                    out = self._apply(cmod, [Tensor(n.name) for n in region.inputs], "")
                region.add(OutputNode(name=region.fresh_name("out"), inputs=[out.node], loc=mod.loc))
            finally:
                self.scope = outer
            candidates.append(Candidate(name=cname, body=region))
        node = ChoiceNode(name=name, inputs=[i.node for i in ins], arch=arch, covers=[[i] for i in range(len(cand_names))],
                          domain=list(range(len(cand_names))), candidates=candidates, loc=mod.loc)
        return Tensor(self._tag(node).name)

    def _apply_cell(self, mod: CellMod, ins: list[Tensor], base: str) -> Tensor:
        tpl = mod.template
        env = Env(parent=tpl.env)
        for k, v in mod.args:
            env.set(k, v)
        scope = self.scope
        saved = (scope.prefix, scope.arch_prefix, scope.arch_root, self.base, self.filename,
                 getattr(self, "_inputs_pending", []))
        self.filename = tpl.filename
        try:
            if tpl.shares is not None:
                key = self._eval(tpl.shares, env)
                if not isinstance(key, str):
                    raise self._err(tpl.shares, f"`shares` needs a string, got {describe(key)}")
                scope.arch_prefix = key + "."
                scope.arch_root = scope.abs_prefix + base + "."
            scope.prefix = base + "."
            self.base = ""
            outs = self._run_body(tpl, env, list(ins), network=False)
        finally:
            (scope.prefix, scope.arch_prefix, scope.arch_root, self.base, self.filename,
             self._inputs_pending) = saved
        if len(outs) != 1:
            raise NasirError(f"cell '{tpl.name}' must have exactly one output to be applied", mod.loc)
        return outs[0]

    # == helpers =========================================================================
    def _need_numbers(self, t: Tree, x: Any, y: Any, op: str) -> None:
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self._err(t, f"operator {op!r} needs numbers, got {describe(v)}")

    def _err(self, where: Any, message: str, hint: str | None = None) -> NasirError:
        return NasirError(message, loc_of(where, self.filename), hint)


def _join(base: str, label: str) -> str:
    return f"{base}.{label}" if base else label


def _label(value: Any) -> str:
    return str(value).replace(".", "p").replace("-", "m")


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


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["C=8", "layers=5"]`` -> ``{"C": 8, "layers": 5}`` (ints, floats, true/false, strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise NasirError(f"bad parameter override {item!r}", hint="use NAME=VALUE, e.g. -D C=8")
        key, raw = item.split("=", 1)
        raw = raw.strip()
        value: Any
        if raw.startswith("["):
            import json

            try:
                value = json.loads(raw)
            except json.JSONDecodeError as e:
                raise NasirError(f"bad list in override {item!r}: {e.msg}", hint="e.g. -D widths=[16,24,32]") from None
        elif raw in ("true", "false"):
            value = raw == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key.strip()] = value
    return out


def parse_file(path: str | Path, entry: str | None = None, **overrides: Any) -> Graph:
    """Parse and elaborate a ``.nas`` file into a verified IR graph."""
    el = Elaborator()
    el.load_file(path)
    return el.build(entry, overrides)


def parse_string(text: str, entry: str | None = None, filename: str = "<string>", **overrides: Any) -> Graph:
    el = Elaborator()
    el.load_text(text, filename)
    return el.build(entry, overrides)


def std_path(name: str) -> Path:
    """Path of a standard-library space, e.g. ``std_path("darts")``."""
    path = std_dir() / (name if name.endswith(".nas") else f"{name}.nas")
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in std_dir().glob("*.nas")))
        raise NasirError(f"no standard space {name!r}", hint=f"available: {names}")
    return path
