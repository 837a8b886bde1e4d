"""Limits instead of crashes: each kind the fuzzing campaign found, minimized, is a located ``NasirError``.

Before, each of these ended in a Python exception (``OverflowError``, ``MemoryError``, ``ValueError``,
``TypeError``, ``ZeroDivisionError``, ``RecursionError``) or a hang.
"""

from __future__ import annotations

import warnings

import pytest

from nasir.diagnostics import NasirError, NasirWarning
from nasir.frontends import limits
from nasir.frontends.elaborate import parse_file, parse_overrides, parse_string
from nasir.frontends.limits import LimitError


def net(body: str, before: str = "") -> str:
    """``body`` on line 4 of a network (after ``before`` on line 1)."""
    return f"{before}\nnetwork n(C = 4) {{\n  input x: [3, 8, 8]\n  {body}\n  output x\n}}\n"


def fails(text: str, *, line: int = 4, **overrides) -> NasirError:
    with pytest.raises(NasirError) as info:
        parse_string(text, filename="l.nas", **overrides)
    error = info.value
    assert error.loc is not None and error.loc.file == "l.nas" and error.loc.line == line, error.render()
    return error


@pytest.mark.parametrize("expr, message", [
    ("10 ** 10 ** 10", "10 ** 10000000000 is out of range"),  # was a hang
    ("10.0 ** 400", "10.0 ** 400 is out of range (overflows a 64-bit float)"),  # OverflowError
    ("1e400", "number out of range"),
    ("1e308 * 10", "number out of range"),
    ("0 .. 2 ** 64", "2 ** 64 is out of range"),  # OverflowError
    ("len(0 .. 10 ** 10)", "a range of 10,000,000,000 items is longer than the limit"),  # MemoryError
    ("range(2 ** 40)", "a range of 1,099,511,627,776 items"),
    ("9" * 5000, "integer out of range"),  # ValueError: over 4,300 digits
    ("2 ** 62 * 4", "integer out of range"),
    ("(-8) ** 0.5", "is not a real number"),  # a complex number leaked into the program
    ("0.0 ** -1", "zero to a negative power"),  # ZeroDivisionError
    ("min([])", "min of nothing"),  # ValueError
    ("max([])", "max of nothing"),
])
def test_arithmetic_out_of_range(expr, message):
    assert message in fails(net(f"a = {expr}")).message


def test_lists_and_strings_have_a_length_limit():
    assert "a string of 131,072 items" in fails(net('s = "ab" for i in 0 .. 20 { s = s + s }')).message
    assert "a list of 131,072 items" in fails(net("l = [1] for i in 0 .. 20 { l = l + l }")).message


def test_repeat_and_loops_have_limits(monkeypatch):
    assert "a repeat of 1,000,000 items" in fails(net("h = repeat(1000000, relu)(x)")).message  # was a hang
    monkeypatch.setattr(limits, "MAX_STEPS", 10_000)
    assert "more than 10,000 steps" in fails(net("for i in 0 .. 1000 { for j in 0 .. 1000 { } }")).message


def test_graph_size_limit(monkeypatch):
    monkeypatch.setattr(limits, "MAX_NODES", 50)
    assert "more than 50 nodes" in fails(net("h = x for i in 0 .. 100 { h = relu(h) }")).message


def test_value_choice_explosion_is_refused():
    values = "one_of[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
    call = f"conv({values}, {values}, stride = {values}, padding = {values}, dilation = {values}, groups = {values})"
    error = fails(net(f"h = {call}(x)"))  # was a hang: a million candidates
    # out_channels is a width choice (one weight sliced per width), the other five expand into candidates
    assert "'conv' takes 5 value choices: 100,000 combinations" in error.message


@pytest.mark.parametrize("before, body, hint", [
    ("op a() = a", "h = a(x)", "(a -> a)"),
    ("op a() = b op b() = a", "h = a(x)", "(b -> a -> b)"),
    ("op a(n) = relu -> a(n - 1)", "h = a(3)(x)", "(a -> a)"),
    ("cell c() { input y z = c()(y) output z }", "h = c()(x)", "(c -> c)"),
])
def test_templates_that_expand_to_themselves(before, body, hint):
    error = fails(net(body, before), line=1)  # was RecursionError
    assert "nesting deeper than 200 levels" in error.message and hint in error.hint


def test_recursion_with_a_base_case_still_works():
    g = parse_string(net("h = tower(20)(x)", "op tower(n) = if n == 0 then relu else relu -> tower(n - 1)"))
    assert sum(1 for n in g.body.nodes if n.kind == "op") == 21


@pytest.mark.parametrize("body", [
    "h = (" + " -> ".join(["relu"] * 1000) + ")(x)",  # a chain 1,000 deep
    "a = " + " + ".join(["1"] * 1000),  # an expression 1,000 deep
    "if true { " * 1000 + "a = 1" + " }" * 1000,  # statements 1,000 deep
    "m = relu for i in 0 .. 1000 { m = sum(m, relu) } h = m(x)",  # a module built 1,000 deep in a loop
])
def test_deep_nesting(body):
    assert "nesting deeper than 200 levels" in fails(net(body)).message  # was RecursionError


def test_nested_choices_have_a_limit():
    body = "h = " + "one_of { a: " * 40 + "relu" + " }" * 40 + "(x)"
    assert "choices nested more than 32 deep" in fails(net(body)).message  # IR JSON could not be written


def test_values_too_deep_to_compare():
    body = "m = relu for i in 0 .. 5000 { m = sum(m, relu) } k = m for i in 0 .. 1 { b = m == sum(k, relu) }"
    assert "values nested too deeply" in fails(net(body)).message


@pytest.mark.parametrize("op", ["conv(4, 3, stride = 0)", "max_pool(3, stride = 0)", "conv(4, 3, groups = 0)"])
def test_zero_divisors_are_located(op):
    fails(net(f"h = {op}(x)"))  # was ZeroDivisionError


def test_mistyped_input_choice_exclude_and_list_index():
    choices = "a = one_of { p: relu q: bn }(x) b = one_of { p: relu q: bn }(x) "
    assert "`exclude` is a list" in fails(net(choices + "h = input_choice(1, [a, b], exclude = 3)")).message
    assert "index must be an integer, got a list" in fails(net("d[0] = 1 a = d[[1]]")).message  # unhashable


def test_a_file_without_a_network_names_file_and_line():
    error = fails("op a() = relu\n\nop b() = bn\n", line=3)
    assert "no `network` definition" in error.message


def test_templates_named_like_builtins_are_refused():
    error = fails("network relu() {\n  input x: [3, 8, 8]\n  output relu(x)\n}\n", line=1)  # was RecursionError
    assert "would redefine the builtin 'relu'" in error.message
    assert "would redefine the builtin 'sum'" in fails("sum = 3\n" + net("a = 1"), line=1).message


def test_builtin_redefined_by_an_import_and_colliding_templates(tmp_path):
    (tmp_path / "evil.nas").write_text("op relu() = bn\n")
    (tmp_path / "main.nas").write_text('import "evil.nas"\n' + net("h = relu(x)"))
    with pytest.raises(NasirError) as info:
        parse_file(tmp_path / "main.nas")
    assert info.value.loc.file.endswith("evil.nas") and "builtin 'relu'" in info.value.message

    (tmp_path / "a.nas").write_text("op block() = relu\n")
    (tmp_path / "b.nas").write_text('import "a.nas"\nop block() = bn\n' + net("h = block(x)"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parse_file(tmp_path / "b.nas")
    [warning] = [w for w in caught if issubclass(w.category, NasirWarning)]
    assert "b.nas:2:4" in str(warning.message) and "a.nas:1:4" in str(warning.message)


def test_overrides_are_range_checked():
    with pytest.raises(LimitError, match="override 'C'"):
        parse_string(net("a = 1"), C=10**100)
    with pytest.raises(LimitError, match="override 'C'"):
        parse_string(net("a = 1"), C=float("inf"))
    with pytest.raises(NasirError, match="not a DSL value"):
        parse_string(net("a = 1"), C=[None])
    with pytest.raises(LimitError, match="nests lists too deep"):
        parse_overrides(["C=" + "[" * 100_000])


def test_a_name_reassigned_in_a_loop_compiles_in_linear_time():
    g = parse_string("network n() {\n input x: [3, 8, 8]\n h = x\n for i in 0 .. 2000 { h = relu(h) }\n output h\n}\n")
    assert g.body.nodes[-2].name == "h_1999"
