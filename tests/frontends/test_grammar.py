"""Grammar: every std file parses; malformed inputs give the right error class and location."""

from __future__ import annotations

import pytest

from nasir.frontends import parser as P
from nasir.frontends.elaborate import std_dir


def test_the_grammar_has_no_conflicts_or_colliding_terminals():
    """What Lark's strict mode checks; the parser the commands use skips it to start faster."""
    assert P.parser(strict=True).options.strict


@pytest.mark.parametrize("path", sorted(std_dir().glob("*.nas")), ids=lambda p: p.name)
def test_std_files_parse(path):
    tree = P.parse(path.read_text(), str(path))
    assert tree.children


@pytest.mark.parametrize(
    "text, cls, line, col",
    [
        ("network n() {\n  input x: [3, 8, 8]\n  y = conv(4, 3(x)\n  output y\n}\n", P.MissingClosingParen, 4, 3),
        ("network n() {\n  input x: [3, 8, 8]\n  output x\n", P.MissingClosingBrace, 3, 11),
        ("op a(C) = one_of {\n  x: relu\n  y: conv(C, 1)\n", P.MissingClosingBrace, 3, 16),
        ("x = [1, 2\n", P.MissingClosingBracket, 1, 10),
        ("op a(C) = relu ->\n", P.MissingExpression, 1, 18),
        ("op a() = one_of { relu }\n", P.BadCandidate, 1, 24),
        ("op = relu\n", P.BadDefinition, 1, 4),
        ("op a() = relu $ bn\n", P.UnexpectedText, 1, 15),
    ],
)
def test_malformed_inputs_are_classified_and_located(text, cls, line, col):
    with pytest.raises(P.NasSyntaxError) as info:
        P.parse(text, "bad.nas")
    err = info.value
    assert type(err) is cls, err.render()
    assert (err.loc.line, err.loc.col) == (line, col), err.render()
    rendered = err.render()
    assert rendered.startswith(f"bad.nas:{line}:{col}: error: ")
    assert rendered.splitlines()[-1].strip() == "^" or "hint:" in rendered


def test_rendered_error_has_source_line_and_caret():
    with pytest.raises(P.NasSyntaxError) as info:
        P.parse("op a(C) = conv(C, 3\n", "f.nas")
    lines = info.value.render().splitlines()
    assert lines[1] == "op a(C) = conv(C, 3"
    assert lines[2].index("^") == info.value.loc.col - 1


def test_unknown_character_points_at_it():
    with pytest.raises(P.UnexpectedText) as info:
        P.parse("network n() {\n  input x: [3, 8, 8]\n  y = relu(x) @ x\n  output y\n}\n", "c.nas")
    assert (info.value.loc.line, info.value.loc.col) == (3, 15)
