"""FileCheck-style matching of printed IR (after LLVM's FileCheck, reduced to substrings).

A pass test states the lines it expects in ``print_graph``'s output instead of comparing the whole
text, so it keeps passing when unrelated parts of the printout change. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasir.ir.graph import Graph
from nasir.ir.printer import print_graph

#: Longer prefixes first: "CHECK-NEXT:" also starts with "CHECK".
_DIRECTIVES = ("CHECK-NEXT:", "CHECK-NOT:", "CHECK:")


@dataclass(frozen=True)
class _Check:
    kind: str  # "CHECK", "CHECK-NEXT" or "CHECK-NOT"
    pattern: str
    line: int  # 1-based line in the checks text, for messages

    def describe(self) -> str:
        return f"{self.kind} {self.pattern!r} (checks line {self.line})"


def _parse(checks: str) -> list[_Check]:
    out = []
    for number, raw in enumerate(checks.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        directive = next((d for d in _DIRECTIVES if line.startswith(d)), None)
        if directive is None:
            out.append(_Check("CHECK", line, number))
        else:
            out.append(_Check(directive[:-1], line[len(directive):].strip(), number))
    return out


def _excerpt(lines: list[str], start: int, stop: int) -> str:
    """Text lines ``start..stop`` (0-based, clipped), numbered from 1 as an editor shows them."""
    start, stop = max(0, start), min(len(lines), stop)
    return "\n".join(f"{i + 1:5} | {lines[i]}" for i in range(start, stop)) or "      (end of text)"


def _assert_absent(forbidden: list[_Check], lines: list[str], start: int, stop: int) -> None:
    for check in forbidden:
        hit = next((i for i in range(start, stop) if check.pattern in lines[i]), None)
        if hit is not None:
            raise AssertionError(f"filecheck: {check.describe()} matched text line {hit + 1}:\n"
                                 f"{_excerpt(lines, hit - 2, hit + 3)}")


def filecheck(text: str, checks: str) -> None:
    """Assert that ``text`` matches ``checks``, one directive per non-blank line.

    * ``pattern`` or ``CHECK: pattern``: the pattern occurs (as a substring) in a line after the
      previous match;
    * ``CHECK-NEXT: pattern``: the pattern occurs in the line right after the previous match;
    * ``CHECK-NOT: pattern``: the pattern occurs in no line between the neighbouring matches
      (between the last match and the end of the text when nothing follows).

    Leading and trailing blanks of each checks line are ignored, so the checks can be indented
    with the test. A failure names the directive and shows the text where the search stood.
    """
    lines = text.splitlines()
    pos = 0  # first text line the next directive may match
    matched = False
    forbidden: list[_Check] = []
    for check in _parse(checks):
        if check.kind == "CHECK-NOT":
            forbidden.append(check)
            continue
        if check.kind == "CHECK-NEXT":
            if not matched:
                raise ValueError(f"filecheck: {check.describe()} has no previous match to follow")
            if forbidden:
                raise ValueError(f"filecheck: {forbidden[0].describe()} before a CHECK-NEXT checks nothing")
            found = pos if pos < len(lines) and check.pattern in lines[pos] else None
            where = f"on text line {pos + 1}, right after the previous match"
        else:
            found = next((i for i in range(pos, len(lines)) if check.pattern in lines[i]), None)
            where = f"from text line {pos + 1} on"
        if found is None:
            raise AssertionError(f"filecheck: {check.describe()} not found {where}:\n"
                                 f"{_excerpt(lines, pos - 2, pos + 12)}")
        _assert_absent(forbidden, lines, pos, found)
        forbidden = []
        pos = found + 1
        matched = True
    _assert_absent(forbidden, lines, pos, len(lines))


def edge_text(graph: Graph, edge: str) -> str:
    """The printed IR of node ``%edge`` (with its nested regions), for a FileCheck focused on it."""
    lines = print_graph(graph).splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith(f"%{edge} = ")), None)
    if start is None:
        raise ValueError(f"no node %{edge} in the printed graph")
    if not lines[start].endswith("{"):
        return lines[start]
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == " " * indent + "}")
    return "\n".join(lines[start:end + 1])
