"""Fresh names: the one rule every pass, frontend and driver uses to pick an unused name.

``base`` itself if it is free, else ``base_k`` with the smallest k >= 1 that is free. IR node
names become module paths and state-dict keys, so this rule is part of the output format: changing
it renames trained weights. ``nasir.ir.rewrite`` exports it with the other rewriting helpers; it
lives apart only because ``Region.fresh_name`` (in ``nodes``) uses it too.
"""

from __future__ import annotations

from collections.abc import Container


class FreshNames:
    """Fresh names against a collection of taken names that only grows (names are added, never removed).

    Remembers the suffix it last gave each base: while names are only added, every smaller suffix
    stays taken, so probing resumes there. Naming n values ``x, x_1, ..., x_n`` (a value reassigned
    in a loop) then costs O(n) in total instead of O(n^2). Make a new one when names are removed.
    """

    def __init__(self, taken: Container[str]) -> None:
        self.taken = taken
        self._next_suffix: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        if base not in self.taken:
            return base
        k = self._next_suffix.get(base, 1)
        while f"{base}_{k}" in self.taken:
            k += 1
        self._next_suffix[base] = k
        return f"{base}_{k}"


def fresh_name(base: str, taken: Container[str]) -> str:
    """``base`` if it is not in ``taken``, else ``base_k`` with the smallest free k >= 1."""
    return FreshNames(taken)(base)
