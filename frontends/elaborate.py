"""Elaboration: parse tree -> graph IR.

Parameters, arithmetic, conditionals, loops and templates are evaluated here, once, so the IR holds
only the resulting graph. Modules are built lazily (see ``values.py``) and become nodes when applied
to tensors; node names follow the assignment targets of the DSL (``cells[3] = ...`` gives nodes
``cells3.*``), which in turn name the lowered PyTorch submodules.

This module is the driver: it reads files and imports, collects templates, runs the statements of
networks and cells, and offers the entry points. Expressions are evaluated by ``expressions.py``
(builtins in ``builtins.py``), calls bind in ``binding.py``, and nodes are made by ``emit.py``;
imports resolve in ``imports.py``, and ``limits.py`` bounds the work of one elaboration.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Tree

from nasir.diagnostics import NasirError, NasirWarning, SourceLoc
from nasir.frontends.binding import ALIASES, bind
from nasir.frontends.builtins import BUILTINS
from nasir.frontends.emit import ModuleEmitter, temporarily
from nasir.frontends.expressions import Evaluator
from nasir.frontends.imports import ImportPaths, std_dir
from nasir.frontends.limits import LimitError, check_override, recursion_headroom
from nasir.frontends.parser import parse
from nasir.frontends.values import Builtin, CellMod, Env, Template, Tensor, describe
from nasir.ir.graph import Graph
from nasir.ir.ops import PRIMITIVES
from nasir.ir.verify import verify


@dataclass
class _Body:
    """The body of a network or of an applied cell while its statements run."""

    network: bool
    pending: list[Tensor]  # a cell's input values not yet claimed by its `input` statements
    outputs: list[Tensor] = field(default_factory=list)


class Elaborator:
    """Loads ``.nas`` files into templates and global variables, then builds a network of them into a graph."""

    def __init__(self, imports: ImportPaths | None = None) -> None:
        self.globals = Env()
        for name in (*PRIMITIVES, *ALIASES, *BUILTINS):
            self.globals.set(name, Builtin(name))
        self.ev = Evaluator(self.globals)
        self.imports = imports or ImportPaths()
        self.loaded: set[Path] = set()
        self.defined_at: dict[str, SourceLoc] = {}  # where each global template was defined
        self.main_end: SourceLoc | None = None  # the end of the last main file loaded
        self.networks: list[Template] = []
        self.main_networks: list[Template] = []

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
        if main:
            lines = text.splitlines() or [""]
            self.main_end = SourceLoc(file=filename, line=len(lines), col=len(lines[-1]) + 1)
        with self.ev.in_file(filename), recursion_headroom():
            for item in tree.children:
                self._top_item(item, main)

    def _top_item(self, item: Tree, main: bool) -> None:
        kind = item.data
        if kind == "import_stmt":
            self._import(item)
        elif kind in ("op_def", "cell_def", "network_def"):
            tpl = self._template(item)
            self._define_global(tpl.name, f"{tpl.kind} '{tpl.name}'", tpl.loc, template=True)
            self.globals.set(tpl.name, tpl)
            if tpl.kind == "network":
                self.networks.append(tpl)
                if main:
                    self.main_networks.append(tpl)
        elif kind == "assign":
            name = str(item.children[0].children[0])
            self._define_global(name, f"variable {name!r}", self.ev.loc(item), template=False)
            self._assign(item, self.globals)
        else:  # pragma: no cover - grammar guarantees the kinds above
            raise self.ev.err(item, f"unexpected top-level item {kind}")

    def _define_global(self, name: str, what: str, loc: SourceLoc, template: bool) -> None:
        """Refuse a global named like a builtin; warn when a template is replaced (templates are global to all files)."""
        if isinstance(self.globals.vars.get(name), Builtin):
            raise NasirError(f"{what} would redefine the builtin '{name}' (for every file, the standard library too)",
                             loc, "choose another name")
        before = self.defined_at.pop(name, None)
        if before is not None:
            warnings.warn_explicit(f"{loc}: {what} replaces the template '{name}' defined at {before} (for every file "
                                   "that uses it)", NasirWarning, loc.file, loc.line)
        if template:
            self.defined_at[name] = loc

    def _import(self, item: Tree) -> None:
        try:
            path = self.imports.resolve(item.children[0][1:-1], self.ev.filename)
        except NasirError as e:
            raise self.ev.err(item, e.message, e.hint) from None
        if path not in self.loaded:
            with self.ev.limits.expanding(f"import {path.name!r}", self.ev.loc(item)):
                self.load_file(path, main=False)

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
            raise self.ev.err(item, f"{kind} '{name_tok}' repeats a parameter name")
        return Template(kind, str(name_tok), params, body, self.globals, self.ev.loc(name_tok),
                        shares=shares, filename=self.ev.filename)

    # == building a network ==============================================================
    def build(self, entry: str | None = None, overrides: dict[str, Any] | None = None) -> Graph:
        pool = self.main_networks or self.networks
        if not pool:
            raise NasirError("no `network` definition to compile", self.main_end,
                             hint="define `network name(...) { input x: [3, 32, 32] ... output y }`")
        if entry is None:
            tpl = pool[-1]
        else:
            found = [t for t in self.networks if t.name == entry]
            if not found:
                raise NasirError(f"no network named {entry!r}", hint=f"networks here: {', '.join(t.name for t in self.networks)}")
            tpl = found[-1]
        for name, value in (overrides or {}).items():
            check_override(name, value)
        graph = Graph(name=tpl.name)
        self.ev.emitter = ModuleEmitter(graph, graph.body, limits=self.ev.limits, run_cell=self._run_cell)
        with self.ev.in_file(tpl.filename), recursion_headroom():
            env = bind(self.ev, tpl, [], dict(overrides or {}), tpl.loc)
            for name, value in (overrides or {}).items():
                check_override_type(self.ev, tpl, env, name, value)
            graph.params = {k: v for k, v in env.vars.items() if isinstance(v, (int, float, bool, str))}
            self._run_body(tpl, env, [], network=True)
            verify(graph)
        return graph

    def _run_cell(self, emitter: ModuleEmitter, mod: CellMod, ins: list[Tensor], base: str) -> Tensor:
        """Apply a cell: run its statements with its nodes named under ``base.`` in ``emitter``'s region."""
        tpl = mod.template
        env = Env(parent=tpl.env)
        for k, v in mod.args:
            env.set(k, v)
        with self.ev.in_file(tpl.filename), self.ev.emitting(emitter), self.ev.limits.expanding(tpl.name, mod.loc):
            shares = self._shares(tpl, env)
            with emitter.entering_cell(base, shares), self.ev.naming(""):
                outs = self._run_body(tpl, env, list(ins), network=False)
        if len(outs) != 1:
            raise NasirError(f"cell '{tpl.name}' must have exactly one output to be applied", mod.loc)
        return outs[0]

    def _shares(self, tpl: Template, env: Env) -> str | None:
        """The key under which a cell's architecture parameters are shared (``cell c(...) shares "normal"``)."""
        if tpl.shares is None:
            return None
        key = self.ev.eval(tpl.shares, env)
        if not isinstance(key, str):
            raise self.ev.err(tpl.shares, f"`shares` needs a string, got {describe(key)}")
        return key

    # == statements ======================================================================
    def _run_body(self, tpl: Template, env: Env, inputs: list[Tensor], network: bool) -> list[Tensor]:
        body = _Body(network, list(inputs))
        self._exec(tpl.body, env, body)
        if not body.outputs:
            raise NasirError(f"{tpl.kind} '{tpl.name}' has no `output` statement", tpl.loc)
        if not network and body.pending:
            raise NasirError(f"{tpl.kind} '{tpl.name}' was given {len(inputs)} inputs but declares fewer", tpl.loc)
        return body.outputs

    def _exec(self, stmts: list[Tree], env: Env, body: _Body) -> None:
        limits = self.ev.limits
        for st in stmts:
            run = getattr(self, f"_s_{st.data}", None)
            if run is None:  # pragma: no cover
                raise self.ev.err(st, f"unexpected statement {st.data}")
            limits.enter(self.ev.loc, st)
            try:
                run(st, env, body)
            finally:
                limits.leave()

    def _s_input_stmt(self, st: Tree, env: Env, body: _Body) -> None:
        for decl in st.children:
            name = str(decl.children[0])
            shape_tree = decl.children[1]
            if body.network:
                if shape_tree is None:
                    raise self.ev.err(decl, f"network input {name!r} needs a shape", "write `input x: [3, 32, 32]`")
                shape = self.ev.eval(shape_tree, env)
                if not (isinstance(shape, list) and shape and all(isinstance(s, int) and s > 0 for s in shape)):
                    raise self.ev.err(shape_tree, "an input shape is a list of positive integers, e.g. [3, 32, 32]")
                emitter = self.ev.emitter
                env.set(name, Tensor(emitter.input(emitter.prefix + name, shape, self.ev.loc(decl))))
            else:
                if not body.pending:
                    raise self.ev.err(decl, f"input {name!r} has no value: the cell was applied to too few tensors")
                env.set(name, body.pending.pop(0))

    def _s_assign(self, st: Tree, env: Env, body: _Body) -> None:
        self._assign(st, env)

    def _s_for_stmt(self, st: Tree, env: Env, body: _Body) -> None:
        var, it_tree, *stmts = st.children
        seq = self.ev.eval(it_tree, env)
        if not isinstance(seq, list):
            raise self.ev.err(it_tree, f"`for` needs a list or range, got {describe(seq)}")
        for value in seq:
            self.ev.limits.charge(1, self.ev.loc, st)
            env.set(str(var), value)
            self._exec(stmts, env, body)

    def _s_if_stmt(self, st: Tree, env: Env, body: _Body) -> None:
        cond, *rest = st.children
        else_part = rest[-1] if rest and isinstance(rest[-1], Tree) and rest[-1].data == "else_part" else None
        then = [c for c in rest if c is not else_part and c is not None]
        if self.ev.truth(cond, env):
            self._exec(then, env, body)
        elif else_part is not None:
            self._exec(list(else_part.children), env, body)

    def _s_output_stmt(self, st: Tree, env: Env, body: _Body) -> None:
        for i, expr in enumerate(st.children):
            value = self.ev.eval(expr, env)
            if not isinstance(value, Tensor):
                raise self.ev.err(expr, f"`output` needs a tensor, got {describe(value)}",
                                  "apply a module to an input, e.g. `output head(x)`")
            if body.network:
                self.ev.emitter.output(value.node, i, self.ev.loc(expr))
            body.outputs.append(value)

    def _s_aux_output_stmt(self, st: Tree, env: Env, body: _Body) -> None:
        expr = st.children[0]
        value = self.ev.eval(expr, env)
        if not isinstance(value, Tensor):
            raise self.ev.err(expr, f"`aux_output` needs a tensor, got {describe(value)}",
                              "apply the auxiliary head to a feature map, e.g. `aux_output head(cells[4])`")
        if not body.network:
            raise self.ev.err(st, "`aux_output` belongs in a network, not in a cell",
                              "return the feature map from the cell and apply the head in the network")
        self.ev.emitter.aux_output(value.node, self.ev.loc(expr))

    def _s_block_stmt(self, st: Tree, env: Env, body: _Body) -> None:
        name_tree, *stmts = st.children
        name = self.ev.eval(name_tree, env)
        if not isinstance(name, str):
            raise self.ev.err(name_tree, f"`block` needs a name string, got {describe(name)}")
        with temporarily(self.ev.emitter, block=name):
            self._exec(stmts, env, body)

    def _s_gate_stmt(self, st: Tree, env: Env, body: _Body) -> None:
        budget_tree, *stmts = st.children
        budget = self.ev.eval(budget_tree, env)
        if not isinstance(budget, (int, float)) or not 0 < budget <= 1:
            raise self.ev.err(budget_tree, "`gate` needs a budget fraction in (0, 1]")
        with temporarily(self.ev.emitter, budget=float(budget)):
            self._exec(stmts, env, body)

    def _assign(self, st: Tree, env: Env) -> None:
        target, expr = st.children
        if target.data == "indexed_target":
            name = str(target.children[0])
            idx = self.ev.eval(target.children[1], env)
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise self.ev.err(target, f"index must be an integer, got {describe(idx)}")
            label = f"{name}{idx}"
        else:
            name = str(target.children[0])
            idx = None
            label = name
        prefix = self.ev.emitter.prefix if self.ev.emitter is not None else ""
        with self.ev.naming(prefix + label):
            value = self.ev.eval(expr, env)
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
            raise self.ev.err(target, f"cannot assign {name}[{idx}]: {name!r} is {describe(current)}"
                              + (f" of length {len(current)}" if isinstance(current, list) else ""))


def check_override_type(ev: Evaluator, tpl: Template, env: Env, name: str, value: Any) -> None:
    """An override (``-D NAME=VALUE``) has the type of its parameter's default (an integer where the
    default is one, ...), so that a wrong one is reported against the flag that gave it rather than
    where the space first computes with it. Defaults that are not plain values are not compared."""
    default = dict(tpl.params).get(name)
    if default is None:
        return
    try:
        expected = ev.eval(default, env)
    except NasirError:
        return
    if isinstance(expected, (bool, str, list)):
        fits = type(value) is type(expected)
    elif isinstance(expected, int):
        fits = type(value) is int
    elif isinstance(expected, float):
        fits = type(value) in (int, float)
    else:
        return
    if not fits:
        shown = value if isinstance(value, str) else json.dumps(value)
        default_text = "" if isinstance(expected, list) else f" (default {json.dumps(expected)})"
        raise NasirError(f"-D {name}={str(shown)[:60]}: {tpl.kind} '{tpl.name}' takes {describe(expected)} for "
                         f"{name!r}{default_text}, not {describe(value)}")


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
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as e:
                raise NasirError(f"bad list in override {item!r}: {e.msg}", hint="e.g. -D widths=[16,24,32]") from None
            except RecursionError:
                raise LimitError(f"override {item[:40]!r}... nests lists too deep") from None
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


def parse_file(path: str | Path, entry: str | None = None, *, imports: ImportPaths | None = None,
               **overrides: Any) -> Graph:
    """Parse and elaborate a ``.nas`` file into a verified IR graph."""
    el = Elaborator(imports)
    el.load_file(path)
    return el.build(entry, overrides)


def parse_string(text: str, entry: str | None = None, filename: str = "<string>", *,
                 imports: ImportPaths | None = None, **overrides: Any) -> Graph:
    el = Elaborator(imports)
    el.load_text(text, filename)
    return el.build(entry, overrides)


def std_path(name: str) -> Path:
    """Path of a standard-library space, e.g. ``std_path("darts")``."""
    path = std_dir() / (name if name.endswith(".nas") else f"{name}.nas")
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in std_dir().glob("*.nas")))
        raise NasirError(f"no standard space {name!r}", hint=f"available: {names}")
    return path
