"""Markdown in and out: tables for the generated pages, fenced code blocks for the tests that run the docs.

The manual's examples are executable: ``code_blocks`` finds the fenced blocks of one language
(```` ```nas ````, ```` ```bash ````, ```` ```python ````) with the line each starts on, so a test can
compile, parse or run each one and point at it when it fails, and ``shell_commands`` splits a shell
block into the commands a user would paste one by one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block: its language tag, text and the 1-based line of its opening fence."""

    lang: str
    text: str
    line: int


@dataclass(frozen=True)
class ShellCommand:
    """One command of a shell block (continuation lines joined) and the line it starts on."""

    text: str
    line: int


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; ``|`` inside cells is escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def code_blocks(text: str, lang: str) -> list[CodeBlock]:
    """The fenced blocks of ``text`` tagged ``lang``, in order."""
    return [CodeBlock(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in _FENCE.finditer(text) if m.group(1) == lang]


def shell_commands(block: CodeBlock) -> list[ShellCommand]:
    """The commands of a shell block: lines ending in ``\\`` joined to the next, comment-only lines left out."""
    commands: list[ShellCommand] = []
    pending: list[str] = []
    start = 0
    for offset, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if not pending:
            start = offset
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        commands.append(ShellCommand(" ".join([*pending, line]).strip(), start))
        pending = []
    if pending:
        raise ValueError(f"line {start}: the command's last line ends in a backslash")
    return commands


def shell_comments(block: CodeBlock) -> list[tuple[str, int]]:
    """The comments of a shell block (text after ``#`` on comment-only lines), with their lines."""
    return [(line.lstrip()[1:].strip(), n) for n, line in enumerate(block.text.splitlines(), start=block.line + 1)
            if line.lstrip().startswith("#")]


def nasir_invocations(command: str) -> list[list[str]]:
    """The argument lists of the ``nasir`` calls in a shell command line (``a && nasir x; nasir y``),
    for checking documented commands against the argument parser without running them."""
    tokens = shlex.split(command, comments=True)
    calls: list[list[str]] = []
    segment: list[str] = []
    for token in [*tokens, "&&"]:
        if token in ("&&", "||", ";", "|"):
            if segment and segment[0].rsplit("/", 1)[-1] == "nasir":
                calls.append(segment[1:])
            segment = []
        else:
            segment.append(token)
    return calls
