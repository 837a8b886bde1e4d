"""Lark front end: text -> parse tree, with located, classified syntax errors.

Syntax errors are classified with ``UnexpectedInput.match_examples`` against small malformed
snippets, so the user reads "missing ')'" rather than a list of expected terminal names.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from lark import Lark, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from nasir.diagnostics import NasirError, SourceLoc, register_source


class NasSyntaxError(NasirError):
    """Base class of DSL syntax errors; subclasses name the kind of mistake."""

    label = "syntax error"


class MissingClosingParen(NasSyntaxError):
    label = "missing ')'"


class MissingClosingBrace(NasSyntaxError):
    label = "missing '}'"


class MissingClosingBracket(NasSyntaxError):
    label = "missing ']'"


class MissingExpression(NasSyntaxError):
    label = "expected an expression"


class BadCandidate(NasSyntaxError):
    label = "a one_of candidate needs a name: `name: module`"


class BadDefinition(NasSyntaxError):
    label = "a definition needs a name and a parameter list, e.g. `op name(C, k = 3) = ...`"


class UnexpectedText(NasSyntaxError):
    label = "unexpected text"


_EXAMPLES: dict[type[NasSyntaxError], list[str]] = {
    MissingClosingParen: [
        "op a(C = conv(C, 3",
        "x = conv(C, 3",
        "op a(C) = conv(C, 3 -> relu",
        "op a(C) = (relu -> conv(C, 1)",
    ],
    MissingClosingBrace: [
        "network n() { input x: [3, 8, 8] output x",
        "cell c() { input x output x",
        "op a() = one_of { x: relu",
        "network n() { for i in 0 .. 2 { x = y }",
    ],
    MissingClosingBracket: [
        "x = [1, 2",
        "network n() { input x: [3, 8, 8 output x }",
        "op a() = one_of [3, 5",
    ],
    MissingExpression: [
        "x =",
        "x = 1 +",
        "op a() =",
        "op a() = relu ->",
        "network n() { y = }",
        "op a() = conv(C, )",
        "x = [1, ]]",
    ],
    BadCandidate: [
        "op a() = one_of { relu }",
        "op a() = one_of { relu -> bn }",
        "op a() = one_of { x: relu bn }",
        "op a() = one_of { }",
    ],
    BadDefinition: [
        "op = relu",
        "op a = relu",
        "cell { }",
        "network { }",
        "cell c { }",
        "network n { }",
    ],
}


@lru_cache(maxsize=1)
def parser(strict: bool = False) -> Lark:
    """The DSL parser. Lark's ``strict`` checks (no conflicts, no colliding terminals) double the
    time to build it, which every command pays at start-up: they run in the grammar tests instead."""
    grammar = resources.files("nasir.grammar").joinpath("nasir.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", strict=strict, propagate_positions=True, maybe_placeholders=True)


def parse(text: str, filename: str = "<string>") -> Tree:
    """Parse DSL text; raise a located ``NasSyntaxError`` subclass on bad input."""
    register_source(filename, text)
    try:
        return parser().parse(text)
    except UnexpectedInput as err:
        raise _classify(err, text, filename) from None


def _classify(err: UnexpectedInput, text: str, filename: str) -> NasSyntaxError:
    line = getattr(err, "line", None) or 1
    col = getattr(err, "column", None) or 1
    at_end = isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END")
    if at_end or line < 1:
        lines = text.rstrip().splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    cls = err.match_examples(parser().parse, _EXAMPLES, use_accepts=True) or (
        UnexpectedText if isinstance(err, UnexpectedCharacters) else _unbalanced(text, line, col, at_end))
    detail = _detail(err)
    hint = None
    if isinstance(err, UnexpectedToken):
        expected = sorted(_pretty_terminal(t) for t in err.accepts or err.expected)
        if expected and len(expected) <= 8:
            hint = "expected one of: " + ", ".join(expected)
    return cls(f"{cls.label}{detail}", SourceLoc(file=filename, line=line, col=col), hint)


def _unbalanced(text: str, line: int, col: int, at_end: bool) -> type[NasSyntaxError]:
    """Fallback classification: the innermost bracket left open before the error position."""
    lines = text.splitlines()
    upto = "\n".join(lines[: line - 1] + [lines[line - 1][: col - 1]] if line - 1 < len(lines) else lines)
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    in_string = in_comment = False
    for ch in upto:
        if in_comment:
            in_comment = ch != "\n"
        elif ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "#":
            in_comment = True
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs and stack and stack[-1] == pairs[ch]:
            stack.pop()
    if stack:
        return {"(": MissingClosingParen, "[": MissingClosingBracket, "{": MissingClosingBrace}[stack[-1]]
    return MissingExpression if at_end else UnexpectedText


def _detail(err: UnexpectedInput) -> str:
    if isinstance(err, UnexpectedCharacters):
        return f" (character {err.char!r} is not part of the language)"
    if isinstance(err, UnexpectedToken):
        if err.token.type == "$END":
            return " (file ended early)"
        return f" (found {err.token.value!r})"
    if isinstance(err, UnexpectedEOF):
        return " (file ended early)"
    return ""


_TERMINAL_NAMES = {
    "RPAR": "')'", "LPAR": "'('", "RBRACE": "'}'", "LBRACE": "'{'", "RSQB": "']'", "LSQB": "'['",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "NAME": "a name", "NUMBER": "a number",
    "STRING": "a string", "__ANON_0": "'->'", "$END": "end of file",
}


def _pretty_terminal(name: str) -> str:
    return _TERMINAL_NAMES.get(name, f"'{name.lower()}'" if name.isupper() else name)


def loc_of(tree_or_token, filename: str) -> SourceLoc:
    meta = getattr(tree_or_token, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return SourceLoc(file=filename, line=meta.line, col=meta.column)
    line = getattr(tree_or_token, "line", None)
    if line is not None:
        return SourceLoc(file=filename, line=line, col=tree_or_token.column)
    return SourceLoc(file=filename, line=1, col=1)
