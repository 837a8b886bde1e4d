"""Limits on one elaboration: how deep, how long and how large a program may get before it is refused.

A search space is a small program, and a mistaken or hostile one (a template that uses itself,
``10 ** 10 ** 10``, ``for i in 0 .. 10 ** 9``, six 10-way value choices in one op) would otherwise end
in a Python ``RecursionError``, ``MemoryError``, ``OverflowError`` or a hang. Each limit is far above
what real spaces need (the standard library stays under a quarter of every one) and crossing it is a
``LimitError`` located at the DSL text that crossed it.

``Limits`` counts the work of one elaboration: nesting (expressions, statements, template expansions
and module applications inside each other), steps (evaluations, loop iterations, list items made)
and graph nodes. The value checks (``in_range``, ``check_length``, ``int_power``) bound what a
single value may be.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nasir.diagnostics import NasirError, SourceLoc

#: Expressions, statements, template expansions and module applications nested inside each other.
MAX_NESTING = 200
#: Python frames one level of nesting takes at most (a choice applied inside a choice takes five).
_FRAMES_PER_LEVEL = 8
#: Evaluations, statements, loop iterations, module applications and list items made in one elaboration.
MAX_STEPS = 1_000_000
#: Choices nested in candidates of choices: IR JSON (pydantic) serializes about 50 levels.
MAX_CHOICE_NESTING = 32
#: Nodes of the graph being built (every region together).
MAX_NODES = 100_000
#: Items of a list or range, characters of a string, copies of a ``repeat``.
MAX_ITEMS = 100_000
#: Candidates of one value choice (the product of the values of all value-choice arguments of a call).
MAX_CANDIDATES = 1_000
#: Integers stay within a signed 64-bit word, which every attribute and shape fits in.
MAX_INT = 2**63 - 1


class LimitError(NasirError):
    """The program crossed one of the limits of ``nasir.frontends.limits``."""


Locate = Callable[[Any], "SourceLoc | None"]


class Limits:
    """The work one elaboration has done so far; ``enter``/``leave`` bracket a nested evaluation.

    ``enter`` and ``charge`` take a ``locate`` function and the ``where`` it applies to (a tree, a
    module), so that a location is only computed for an error.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.steps = 0
        self.nodes = 0
        self.templates: list[str] = []  # templates being expanded, innermost last

    def enter(self, locate: Locate, where: Any) -> None:
        """One step one level deeper; pair with ``leave`` (in a ``finally``)."""
        self.charge(1, locate, where)
        if self.depth >= MAX_NESTING:
            raise self._too_deep(locate(where))
        self.depth += 1

    def leave(self) -> None:
        self.depth -= 1

    def charge(self, steps: int, locate: Locate, where: Any) -> None:
        """Count ``steps`` units of work (one per loop iteration, list item, ``repeat`` copy...)."""
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise LimitError(f"elaboration takes more than {MAX_STEPS:,} steps", locate(where),
                             "a loop, comprehension, range or repeat too large, or nested too deep?")

    def add_node(self, loc: SourceLoc | None) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitError(f"the graph would have more than {MAX_NODES:,} nodes", loc)

    @contextmanager
    def expanding(self, template: str, loc: SourceLoc | None) -> Iterator[None]:
        """One level deeper for expanding ``template`` at ``loc``; its name goes in the hint of a nesting error."""
        self.enter(lambda _: loc, None)
        self.templates.append(template)
        try:
            yield
        finally:
            self.templates.pop()
            self.leave()

    def _too_deep(self, loc: SourceLoc | None) -> LimitError:
        hint = "split the expression or loop, or build the value step by step in a `for` loop"
        if self.templates:
            innermost = self.templates[-1]
            if self.templates.count(innermost) > 1:
                start = len(self.templates) - 2 - self.templates[-2::-1].index(innermost)
                cycle = " -> ".join(self.templates[start:])
                hint = f"templates expand to themselves without end ({cycle}); a recursion needs a base case"
            else:
                hint = "templates being expanded, innermost last: " + " -> ".join(self.templates[-8:])
        return LimitError(f"nesting deeper than {MAX_NESTING} levels (expressions, statements, templates, cells)",
                          loc, hint)


@contextmanager
def recursion_headroom() -> Iterator[None]:
    """Python's recursion limit raised, for the duration, to what ``MAX_NESTING`` levels can take.

    The default limit (1,000 frames) is below what 200 nested choices take, and the nesting limit
    must be what stops a deep program, never a ``RecursionError``.
    """
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, depth + _FRAMES_PER_LEVEL * MAX_NESTING + 500))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def in_range(value: Any) -> bool:
    """Numbers the DSL computes with: integers within ``MAX_INT``, finite floats (other values pass)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_INT <= value <= MAX_INT
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def out_of_range(value: Any, loc: SourceLoc | None) -> LimitError:
    """The error for a number that is not ``in_range``."""
    if isinstance(value, int):
        return LimitError(f"integer out of range (more than {MAX_INT.bit_length()} bits)", loc,
                          f"integers lie within +-{MAX_INT:,}")
    return LimitError("number out of range (overflows a 64-bit float)", loc)


def check_length(length: int, what: str, loc: SourceLoc | None) -> None:
    if length > MAX_ITEMS:
        raise LimitError(f"{what} of {length:,} items is longer than the limit of {MAX_ITEMS:,}", loc)


def power_text(base: Any, exponent: Any) -> str:
    """``base ** exponent`` as DSL text, for messages: ``(-8) ** 0.5``."""
    return f"({base}) ** {exponent}" if base < 0 else f"{base} ** {exponent}"


def int_power(base: int, exponent: int, loc: SourceLoc | None) -> int:
    """``base ** exponent`` for a non-negative exponent, refused before computing a result out of range."""
    if abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > MAX_INT.bit_length():
        raise LimitError(f"{power_text(base, exponent)} is out of range (more than {MAX_INT.bit_length()} bits)", loc)
    value = base**exponent
    if not in_range(value):
        raise out_of_range(value, loc)
    return value


def check_override(name: str, value: Any) -> None:
    """A parameter override (``-D NAME=VALUE`` or a keyword of ``parse_file``) is a DSL value in range."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise LimitError(f"override {name!r} nests lists deeper than {MAX_NESTING} levels")
        if isinstance(item, list):
            check_length(len(item), f"override {name!r}: a list", None)
            stack.extend((x, depth + 1) for x in item)
        elif isinstance(item, str):
            check_length(len(item), f"override {name!r}: a string", None)
        elif isinstance(item, (bool, int, float)):
            if not in_range(item):
                error = out_of_range(item, None)
                raise LimitError(f"override {name!r}: {error.message}", hint=error.hint)
        else:
            raise NasirError(f"override {name!r}: {type(item).__name__} is not a DSL value",
                             hint="overrides are numbers, booleans, strings or lists of them")
