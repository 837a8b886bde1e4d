"""Mutants of every standard-library space: a graph or a located ``NasirError``, never a crash or a hang.

Text edits (deleted spans, inserted tokens, copied spans), token edits (deleted, repeated, swapped or
replaced tokens, so that more mutants parse and reach the elaborator), byte edits (invalid UTF-8, NUL,
control bytes, read through a file like the CLI reads one) and number edits (literals replaced by 0,
-1, huge or extreme values; small results are also lowered to torch.fx).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasir.frontends.elaborate import std_dir

from ._harness import compile_cleanly, examples

SPACES = sorted(p.stem for p in std_dir().glob("*.nas"))
TOKENS = list("(){}[]<>=,:;-+*/%\"'.0123456789 \n") + [
    "one_of", "for", "in", "if", "then", "else", "cell", "op", "choice", "network", "input", "output", "import",
    "block", "gate", "shares", "sum", "concat", "repeat", "input_choice", "len", "min", "max", "range", "choose",
    "C", "x", "-1", "0", "999999999999", "**", "->", "..", "relu", "conv", "10 ** 10 ** 10", "10.0 ** 400",
    "0 .. 2 ** 64", "9" * 5000, "1e400", "stride = 0", "groups = 0", '"std/darts.nas"', "#"]
NUMBERS = ["0", "0", "-1", "1", "2", "3", "7", "100000", "1000000", "10 ** 10", "2 ** 64", "1e400", "0.5", "-0.0",
           "9" * 30]
#: Smaller defaults, so that a mutant which still compiles takes a fraction of a second (same structure).
SMALLER = {"darts": ("layers = 8", "layers = 2"), "nb201": ("N = 5", "N = 1")}
SOURCES = {space: (std_dir() / f"{space}.nas").read_text(encoding="utf-8").replace(*SMALLER.get(space, ("", "")))
           for space in SPACES}
_TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|[A-Za-z_]\w*|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\*\*|->|\.\.|//|[=!<>]=|.')

# an edit: (kind, where as a fraction of the text, a piece of text or a second position, a length)
edits = st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1), st.sampled_from(TOKENS), st.integers(1, 20)),
                 min_size=1, max_size=4)


def _text_mutant(src: str, changes: list) -> str:
    for kind, where, token, length in changes:
        pos = int(where * len(src))
        if kind == 0:
            src = src[:pos] + src[pos + length:]
        elif kind == 1:
            src = src[:pos] + token + src[pos:]
        else:
            start = (pos * 7919 + length) % max(len(src), 1)
            src = src[:pos] + src[start:start + length] + src[pos:]
    return src


@pytest.mark.parametrize("space", SPACES)
@examples(ci=150, long=5_000)
@given(changes=edits)
def test_text_mutants(space, changes):
    compile_cleanly(_text_mutant(SOURCES[space], changes), f"{space}.nas")


@pytest.mark.parametrize("space", SPACES)
@examples(ci=40, long=3_000)
@given(changes=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1), st.floats(0, 1), st.sampled_from(TOKENS)),
                        min_size=1, max_size=3))
def test_token_mutants(space, changes):
    tokens = _TOKEN.findall(SOURCES[space])
    words = [i for i, t in enumerate(tokens) if not t.isspace()]
    for kind, where, other, replacement in changes:
        i, j = words[int(where * (len(words) - 1))], words[int(other * (len(words) - 1))]
        if kind == 0:
            tokens[i] = ""
        elif kind == 1:
            tokens[i] = tokens[i] + " " + tokens[j] if tokens[i] else tokens[j]
        elif kind == 2:
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = replacement
    compile_cleanly("".join(tokens), f"{space}.nas")


@pytest.mark.parametrize("space", SPACES)
@examples(ci=25, long=1_000)
@given(changes=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(NUMBERS)), min_size=1, max_size=2))
def test_number_mutants(space, changes):
    src = SOURCES[space]
    spans = [m.span() for m in re.finditer(r"(?<![\w.])\d+(?![\w.])", src)]
    for where, number in sorted(changes, reverse=True):
        a, b = spans[int(where * (len(spans) - 1))]
        src = src[:a] + number + src[b:]
        spans = [s for s in spans if s[1] <= a]
        if not spans:
            break
    compile_cleanly(src, f"{space}.nas")


@pytest.fixture(scope="module")
def mutant_path(tmp_path_factory):
    return tmp_path_factory.mktemp("mutants") / "mutant.nas"


@pytest.mark.parametrize("space", SPACES)
@examples(ci=20, long=1_000)
@given(changes=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=0, max_size=4), st.integers(0, 4)),
                        min_size=1, max_size=4))
def test_byte_mutants(space, changes, mutant_path):
    data = SOURCES[space].encode()
    for where, inserted, deleted in changes:
        pos = int(where * len(data))
        data = data[:pos] + inserted + data[pos + deleted:]
    mutant_path.write_bytes(data)
    compile_cleanly("", path=mutant_path)
