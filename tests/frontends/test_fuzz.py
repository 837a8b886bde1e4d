"""Mutated std spaces never crash the front end: every failure is a located ``NasirError``.

Seeded random edits (deletions, inserted tokens, copied spans, integer literals replaced by 0,
-1 or huge values) of the standard library; each mutant either compiles, verifies and lowers, or
fails with a ``NasirError`` (what the CLI prints as ``file:line:col: error: ...``, exit 2).
"""

from __future__ import annotations

import random
import re

import pytest

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_string, std_path
from nasir.ir.verify import verify
from nasir.lowering import lower

TOKENS = list("(){}[]<>=,:;-+*/%\"'.0123456789 \n") + [
    "one_of", "for", "in", "if", "then", "else", "cell", "op", "choice", "network", "input", "output",
    "sum", "concat", "C", "x", "-1", "0", "999999999999", "**", "->"]


def _text_mutant(src: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(src))
        r = rng.random()
        if r < 0.4:
            src = src[:pos] + src[pos + rng.randint(1, 8):]
        elif r < 0.8:
            src = src[:pos] + rng.choice(TOKENS) + src[pos:]
        else:
            j = rng.randrange(len(src))
            src = src[:pos] + src[j:j + rng.randint(1, 20)] + src[pos:]
    return src


def _number_mutant(src: str, rng: random.Random) -> str:
    spans = [m.span() for m in re.finditer(r"(?<![\w.])\d+(?![\w.])", src)]
    for a, b in sorted(rng.sample(spans, rng.randint(1, 2)), reverse=True):
        src = src[:a] + str(rng.choice([0, 0, -1, 1, 2, 3, 7, 100000])) + src[b:]
    return src


def _compile_or_nasir_error(src: str, lower_it: bool) -> None:
    try:
        graph = parse_string(src, "mutant.nas")
        verify(graph)
        if lower_it and sum(1 for _ in graph.walk()) < 2500:
            lower(graph, "supernet" if graph.arch else "fixed", arch=None if graph.arch else {})
    except NasirError:
        pass


@pytest.mark.parametrize("space", ["nb201", "darts", "mbconv", "resnet18", "vgg16"])
def test_text_mutants_fail_cleanly(space):
    src = std_path(space).read_text(encoding="utf-8")
    rng = random.Random(f"text-{space}")
    for _ in range(150):
        _compile_or_nasir_error(_text_mutant(src, rng), lower_it=False)


@pytest.mark.parametrize("space", ["nb201", "resnet18", "vgg16"])
def test_number_mutants_fail_cleanly(space):
    src = std_path(space).read_text(encoding="utf-8")
    rng = random.Random(f"number-{space}")
    for _ in range(25):
        _compile_or_nasir_error(_number_mutant(src, rng), lower_it=True)
