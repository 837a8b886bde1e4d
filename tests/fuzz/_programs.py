"""Grammar-aware random ``.nas`` programs: hypothesis strategies for the fuzzing campaign.

Programs are drawn as text from the DSL's grammar with typed holes (numbers, lists, conditions,
modules, tensors), so most of them parse and many elaborate; what they exercise is the elaborator:
templates (recursive, mutually recursive, named like builtins), loops, conditionals, layer and value
choices, extreme arithmetic (``10 ** 10 ** 10``, ``10.0 ** 400``, ``0 .. 2 ** 64``), large loops and
repeats, shape mismatches and nesting far past the limits.
"""

from __future__ import annotations

from hypothesis import strategies as st

INTS = ["0", "1", "2", "3", "4", "7", "8", "16", "-1", "-3", "1000", "100000", "10000000000", "9223372036854775807",
        "9223372036854775808", "99999999999999999999999999", "9" * 5000, "0" * 30 + "1"]
FLOATS = ["0.5", "1.0", "0.0", "2.5e3", "1e308", "1e400", "1e-400", "10.0"]
EXTREME = ["10 ** 10 ** 10", "10.0 ** 400", "2 ** 64", "2 ** 63 - 1", "-(2 ** 63)", "2 ** 62 * 4", "len(0 .. 10 ** 10)",
           "len(0 .. 2 ** 64)", "(-8) ** 0.5", "0.0 ** -1", "0 ** -1", "1 // 0", "5 % 0", "1.0 // 0.0",
           "min([])", "max([])", "sum([])", "1e308 * 10", "-1e308 - 1e308", "1e308 // 1e-308", "len([])",
           "2.0 ** 1024", "3 ** 40", "(-2) ** 63", "(-2) ** 64"]
PRIMITIVE_NAMES = ["relu", "relu6", "sigmoid", "identity", "bn", "flatten", "global_avg_pool", "zero", "max_pool",
                   "avg_pool", "conv", "dwconv", "linear", "pwconv", "factorized_reduce"]
BUILTIN_NAMES = ["sum", "concat", "len", "min", "max", "range", "repeat", "str", "choose", "input_choice"]
EXCLUDES = ['["none"]', "3", '"none"', "[1]", "[]"]
#: Op calls that type-check on a [C, H, W] map; the first keep its shape.
SHAPE_KEEPING = ["relu", "bn", "identity", "zero", "max_pool(3, 1)", "avg_pool(3, 1)", "dwconv(3)", "dwconv(5)",
                 "relu6", "bn(affine = false)", "conv(C, 3)", "conv(C, one_of[1, 3, 5])", "dwconv(one_of[3, 5])"]
SHAPE_CHANGING = ["conv(4, 3)", "conv(C, 3, stride = 2)", "conv(8, 1)", "max_pool(2, 2)", "factorized_reduce(C)",
                  "global_avg_pool", "flatten", "linear(10)", "global_avg_pool -> flatten -> linear(10)"]
#: Imports: the standard library (its templates become usable; darts and nb201 both define relu_conv_bn),
#: and files that do not exist or may not be read.
IMPORTS = {
    "std/darts.nas": [("sep_conv", "op", 2), ("dil_conv", "op", 2), ("relu_conv_bn", "op", 2), ("edge", "op", 2)],
    "std/nb201.nas": [("nb201_edge", "op", 1), ("relu_conv_bn", "op", 2), ("reduction_block", "op", 1)],
    "std/mbconv.nas": [("mbconv", "op", 2)],
    "nope.nas": [], "../up.nas": [], "/etc/passwd": [], "/proc/self/environ": [], "std/": [], "": [],
}
ATTRIBUTES = ["stride", "padding", "dilation", "groups", "bias", "affine", "track_running_stats", "kernel", "out_channels", "eps",
              "count_include_pad", "momentum", "nonsense"]


class _Writer:
    """Draws the pieces of one program; ``templates`` are the op/cell names defined so far (name, kind, arity)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.templates: list[tuple[str, str, int]] = []
        self.numbers = ["C"]  # number variables in scope
        self.tensors = ["x"]  # tensor variables in scope
        self.fresh = 0

    def pick(self, options: list[str]) -> str:
        return self.draw(st.sampled_from(options))

    def percent(self, p: int) -> bool:
        return self.draw(st.integers(0, 99)) < p

    def name(self, prefix: str) -> str:
        self.fresh += 1
        return f"{prefix}{self.fresh}"

    # -- values ----------------------------------------------------------------------------
    def number(self, depth: int) -> str:
        if depth <= 0 or self.percent(35):
            kind = self.draw(st.integers(0, 19))
            if kind <= 7:
                return self.pick(INTS[:9])
            if kind == 8:
                return self.pick(INTS)
            if kind == 9:
                return self.pick(FLOATS)
            if kind == 10:
                return self.pick(EXTREME)
            return self.pick(self.numbers)
        d = depth - 1
        form = self.draw(st.integers(0, 11))
        if form <= 3:
            return f"({self.number(d)} {self.pick(['+', '-', '*', '//', '%', '**'])} {self.number(d)})"
        if form == 4:
            return f"-{self.number(d)}"
        if form == 5:
            return f"({self.number(d)})"
        if form == 6:
            return f"{self.pick(['len', 'min', 'max', 'sum'])}({self.list(d)})"
        if form == 7:
            return f"(if {self.condition(d)} then {self.number(d)} else {self.number(d)})"
        if form == 8:
            return f"{self.list(d)}[{self.number(d)}]"
        if form == 9:
            return f"{self.pick(['min', 'max'])}({self.number(d)}, {self.number(d)})"
        if form == 10:
            return f"str({self.number(d)})"  # a string where a number is expected
        return self.pick(EXTREME)

    def list(self, depth: int) -> str:
        d = depth - 1
        form = self.draw(st.integers(0, 7))
        if form == 0 or depth <= 0:
            return f"[{', '.join(self.number(d) for _ in range(self.draw(st.integers(0, 4))))}]"
        if form in (1, 2):
            return f"({self.number(d)} .. {self.number(d)})"
        if form == 3:
            return f"range({self.number(d)})"
        if form == 4:
            var = self.name("i")
            self.numbers.append(var)
            body = self.number(d)
            self.numbers.pop()
            return f"[{body} for {var} in {self.list(d)}]"
        if form == 5:
            return f"({self.list(d)} + {self.list(d)})"
        if form == 6:
            return "[]"
        return f"[{self.list(d)}]"

    def condition(self, depth: int) -> str:
        d = depth - 1
        form = self.draw(st.integers(0, 5))
        if form == 0 or depth <= 0:
            return self.pick(["true", "false"])
        if form in (1, 2):
            return f"({self.number(d)} {self.pick(['<', '>', '<=', '>=', '==', '!='])} {self.number(d)})"
        if form == 3:
            return f"(not {self.condition(d)})"
        if form == 4:
            return f"({self.condition(d)} {self.pick(['and', 'or'])} {self.condition(d)})"
        return f"({self.list(d)} == {self.list(d)})"

    def argument(self, depth: int) -> str:
        """A number, or now and then a value choice, a list, a module or a string where a number belongs."""
        form = self.draw(st.integers(0, 11))
        if form == 0:
            values = ", ".join(self.number(0) for _ in range(self.draw(st.integers(1, 4))))
            return f"one_of[{values}]"
        if form == 1:
            return f"one_of({self.list(depth - 1)})"
        if form == 2:
            return self.pick(['"text"', "true", "[1, 2]", "relu", "x"])
        if form <= 6:
            return self.pick(["1", "2", "3", "4", "8", "C"])
        return self.number(depth)

    # -- modules ---------------------------------------------------------------------------
    def primitive(self, depth: int) -> str:
        if self.percent(75):
            return self.pick(SHAPE_KEEPING if self.percent(75) else SHAPE_CHANGING)
        op = self.pick(PRIMITIVE_NAMES)
        if self.percent(30):
            return op
        args = [self.argument(depth) for _ in range(self.draw(st.integers(0, 3)))]
        for _ in range(self.draw(st.integers(0, 2))):
            args.append(f"{self.pick(ATTRIBUTES)} = {self.argument(depth)}")
        return f"{op}({', '.join(args)})"

    def module(self, depth: int) -> str:
        if depth <= 0 or self.percent(30):
            return self.primitive(depth)
        d = depth - 1
        form = self.draw(st.integers(0, 10))
        if form <= 1:
            return f"({self.module(d)} -> {self.module(d)})"
        if form == 2:
            cands = " ".join(f"{self.name('c')}: {self.module(d)}" for _ in range(self.draw(st.integers(1, 3))))
            return f"one_of {{ {cands} }}"
        if form == 3:
            count = self.pick(["100000", "1000000", "0", "-1"]) if self.percent(10) else self.pick(["1", "2", "3"])
            return f"repeat({count}, {self.module(d)})"
        if form == 4:
            return f"{self.pick(['sum', 'concat'])}({self.module(d)}, {self.module(d)})"
        if form == 5:
            return f'choose([["a", {self.module(d)}], ["b", {self.module(d)}]])'
        if form == 6:
            return f"(if {self.condition(d)} then {self.module(d)} else {self.module(d)})"
        if form == 7:
            return f"({self.module(d)})"
        if form <= 9 and self.templates:
            name, _, arity = self.draw(st.sampled_from(self.templates))
            args = ", ".join(self.argument(d) for _ in range(self.draw(st.integers(max(arity - 1, 0), arity + 1))))
            return f"{name}({args})" if args or self.percent(50) else name
        return self.primitive(depth)

    # -- statements ------------------------------------------------------------------------
    def tensor(self) -> str:
        return self.pick(self.tensors)

    def statement(self, depth: int, indent: str) -> str:
        d = depth - 1
        form = self.draw(st.integers(0, 14))
        target = self.name("v")
        if form <= 5 or depth <= 0:
            line = f"{target} = ({self.module(d)})({self.tensor()})"
            self.tensors.append(target)
            return indent + line
        if form == 6:
            line = f"{target} = {self.pick(['sum', 'concat'])}([{self.tensor()}, {self.tensor()}])"
            self.tensors.append(target)
            return indent + line
        if form == 14:
            return indent + f"{target} = {self.number(d)}"
        if form == 7:
            var = self.name("i")
            self.numbers.append(var)
            body = self.block(d, indent)
            self.numbers.pop()
            return indent + f"for {var} in {self.list(d)} {body}"
        if form == 8:
            return indent + f"if {self.condition(d)} {self.block(d, indent)} else {self.block(d, indent)}"
        if form == 9:
            return indent + f'block "{self.name("b")}" {self.block(d, indent)}'
        if form == 10:
            budget = self.pick(['0.5', '1', '0', '2', '-1', '1e400']) if self.percent(20) else "0.5"
            return indent + f"gate {budget} {self.block(d, indent)}"
        if form == 11:
            line = f"{target}[{self.number(d)}] = ({self.module(d)})({self.tensor()})"
            return indent + line
        if form == 12:
            a, b = self.name("e"), self.name("e")
            lines = [f"{a} = one_of {{ none: zero p: {self.primitive(d)} }}({self.tensor()})",
                     f"{b} = one_of {{ none: zero q: {self.primitive(d)} }}({self.tensor()})",
                     f"{target} = input_choice({self.pick(['1', '1', '2', '0', '3'])}, [{a}, {b}]"
                     + (f", exclude = {self.pick(EXCLUDES)})" if self.percent(50) else ")")]
            self.tensors.append(target)
            return "\n".join(indent + line for line in lines)
        if form == 13 and self.percent(20):
            return indent + f"{target} = {self.pick(['h', 'x'])} {self.pick(['+', '->', '=='])} {self.tensor()}"
        return indent + f"h = {self.tensor()}"

    def block(self, depth: int, indent: str) -> str:
        saved = list(self.tensors)
        body = "\n".join(self.statement(depth, indent + "    ") for _ in range(self.draw(st.integers(0, 3))))
        self.tensors = saved  # tensors assigned in a branch may not exist after it
        return "{\n" + body + "\n" + indent + "}"

    # -- definitions -----------------------------------------------------------------------
    def op_template(self) -> str:
        kind = self.draw(st.integers(0, 19))
        name = self.pick(BUILTIN_NAMES + PRIMITIVE_NAMES) if kind == 10 else self.name("t")
        params = ["n"] if kind == 1 else ["n", "C"][: self.draw(st.integers(0, 2))]
        self.templates.append((name, "op", len(params)))
        if kind == 1:  # recursion with a base case (or not, when n never reaches 0)
            body = f"if n <= 0 then relu else {name}(n - {self.pick(['1', '0', '-1'])}) -> relu"
        elif kind == 2:
            body = name  # recursion without a base case
        else:
            saved, self.numbers = self.numbers, params or ["1"]
            body = self.module(3)
            self.numbers = saved
        return f"op {name}({', '.join(params)}) = {body}"

    def cell_template(self) -> str:
        name = self.name("cell")
        self.templates.append((name, "cell", 1))
        saved_tensors, saved_numbers = self.tensors, self.numbers
        self.tensors, self.numbers = ["y"], ["C"]
        recursive = f"    z = (if C > 0 then {name}(C - 1) else relu)(y)\n" if self.percent(30) else ""
        body = "\n".join(self.statement(2, "    ") for _ in range(self.draw(st.integers(0, 3))))
        out = self.tensor() if not recursive else "z"
        self.tensors, self.numbers = saved_tensors, saved_numbers
        return f"cell {name}(C) {{\n    input y\n{recursive}{body}\n    output {out}\n}}"

    def program(self) -> str:
        parts = []
        if self.percent(15):
            name = self.pick(sorted(IMPORTS))
            parts.append(f'import "{name}"')
            self.templates += IMPORTS[name]
        for _ in range(self.draw(st.integers(0, 3))):
            parts.append(self.op_template() if self.percent(70) else self.cell_template())
        if self.percent(10):  # mutual recursion
            parts.append("op even(n) = if n == 0 then relu else odd(n - 1)\nop odd(n) = even(n - 1) -> relu")
            self.templates += [("even", "op", 1), ("odd", "op", 1)]
        if self.percent(10):
            parts.append(f"{self.pick(['C', 'width', 'relu', 'sum'])} = {self.number(2)}")
        shape = "[3, 8, 8]" if self.percent(95) else self.pick(
            ["[4, 5, 5]", "[10]", "[3, 0, 8]", "[3, -1, 8]", "[]", "[3, 100000, 100000]", "3", f"[{self.number(1)}, 8, 8]"])
        c = "3" if self.percent(70) else self.pick(["4", "8", "0", "-2", "1000000", "one_of[2, 4]"])
        body = "\n".join(self.statement(3, "    ") for _ in range(self.draw(st.integers(1, 6))))
        output = self.tensor()
        if self.percent(97):
            network = f"network net(C = {c}) {{\n    input x: {shape}\n    h = x\n{body}\n    output {output}\n}}"
        else:
            network = ""  # a file without a network
        return "\n".join(parts + [network]) + "\n"


@st.composite
def programs(draw: st.DrawFn) -> str:
    """A random program of templates and one network (sometimes none)."""
    return _Writer(draw).program()


def _nested(unit: tuple[str, str], depth: int, core: str) -> str:
    return unit[0] * depth + core + unit[1] * depth


DEEP_FORMS = {
    "parentheses": lambda d: f"a = {_nested(('(', ')'), d, '1')}",
    "sum": lambda d: "a = " + " + ".join(["1"] * d),
    "power": lambda d: "a = " + " ** ".join(["1"] * d),
    "negation": lambda d: "a = " + "-" * d + "1",
    "not": lambda d: "a = " + "not " * d + "true",
    "chain": lambda d: "h = (" + " -> ".join(["relu"] * d) + ")(x)",
    "lists": lambda d: f"a = {_nested(('[', ']'), d, '1')}",
    "list index": lambda d: "a = " + _nested(("[", "]"), d, "1") + "[0]" * d,
    "if-expr": lambda d: "a = " + "if true then " * d + "1" + " else 2" * d,
    "comprehension": lambda d: "a = " + "[" * d + "1" + " for i in [1]]" * d,
    "choices": lambda d: "h = " + "one_of { a: " * d + "relu" + " }" * d + "(x)",
    "sums of modules": lambda d: "h = " + "sum(relu, " * d + "relu" + ")" * d + "(x)",
    "if statements": lambda d: "if true { " * d + "a = 1" + " }" * d,
    "for statements": lambda d: "for i in [1] { " * d + "a = 1" + " }" * d,
    "blocks": lambda d: 'block "b" { ' * d + "h = relu(x)" + " }" * d,
    "loop-built choices": lambda d: f"m = relu for i in 0 .. {d} {{ m = one_of {{ a: m b: relu }} }} h = m(x)",
    "loop-built sums": lambda d: f"m = relu for i in 0 .. {d} {{ m = sum(m, relu) }} h = m(x)",
    "loop-built lists": lambda d: f"l = [1] for i in 0 .. {d} {{ l = [l] }} b = l == [l] c = one_of[l, 1]",
    "loop-built sum compare": lambda d: f"m = relu for i in 0 .. {d} {{ m = sum(m, relu) }} b = m == relu",
    "reassigned in a loop": lambda d: f"h = x for i in 0 .. {d} {{ h = relu(h) }}",
}
DEEP_TEMPLATES = {
    "self-recursive op": "op deep(n) = if n == 0 then relu else deep(n - 1) -> relu\n",
    "self-recursive default": "op deep(n, m = deep(n - 1)) = relu\n",
    "self-recursive cell": "cell deep(n) { input y z = (if n > 0 then deep(n - 1) else relu)(y) output z }\n",
    "choices in recursion": "op deep(n) = if n == 0 then relu else one_of { a: deep(n - 1) b: relu }\n",
    "value choices in recursion": "op deep(n) = if n == 0 then relu else conv(3, one_of[1, 3]) -> deep(n - 1)\n",
}


@st.composite
def deep_programs(draw: st.DrawFn) -> str:
    """Nesting around and far past the nesting limit: expressions, statements, templates, built values."""
    depth = draw(st.sampled_from([1, 10, 60, 150, 199, 200, 201, 400, 1000, 3000]))
    if draw(st.booleans()):
        body = DEEP_FORMS[draw(st.sampled_from(sorted(DEEP_FORMS)))](depth)
        return f"network n() {{\n input x: [3, 8, 8]\n h = x\n {body}\n output h\n}}\n"
    template = DEEP_TEMPLATES[draw(st.sampled_from(sorted(DEEP_TEMPLATES)))]
    return template + f"network n() {{\n input x: [3, 8, 8]\n output deep({depth})(x)\n}}\n"
