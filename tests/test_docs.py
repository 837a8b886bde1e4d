"""The manual stays true to the code (issue 18): generated pages current, examples that compile and run.

* The reference pages are what ``python -m nasir.docgen`` generates now (else: the command to run).
* Every ```` ```nas ```` block of the docs and the README compiles; every ```` ```python ```` block of
  the manual and the README runs.
* Every ``nasir`` command in the manual's ```` ```bash ```` blocks (commands and ``# ...: nasir ...``
  forms in comments) is accepted by nasir's argument parser; every command has a section in the
  command guide.
* Relative links of the manual and the README lead to files and headings that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nasir.docgen import REGENERATE, stale_pages
from nasir.docgen.cli import argument_error, commands
from nasir.docgen.markdown import code_blocks, nasir_invocations, shell_commands, shell_comments
from nasir.frontends.elaborate import parse_string

ROOT = Path(__file__).resolve().parents[1]
MANUAL = sorted((ROOT / "docs" / "manual").glob("*.md"))
DOCS = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
COMMENTED_COMMAND = re.compile(r":\s*((?:\.venv/bin/)?nasir\s.+)$")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _blocks(paths: list[Path], lang: str) -> list[tuple[str, str]]:
    """(``page:line``, text) of every ``lang`` block of ``paths``."""
    return [(f"{_rel(p)}:{b.line}", b.text) for p in paths for b in code_blocks(p.read_text(encoding="utf-8"), lang)]


def test_reference_pages_are_current():
    stale = stale_pages(ROOT)
    assert not stale, f"{', '.join(stale)} out of date with the code: run `{REGENERATE}` and commit the result"


NAS = _blocks(DOCS, "nas")


@pytest.mark.parametrize("where, text", NAS, ids=[w for w, _ in NAS])
def test_nas_example_compiles(where: str, text: str):
    graph = parse_string(text, filename=where)
    assert graph.search_space_size() >= 1


PYTHON = _blocks(MANUAL + [ROOT / "README.md"], "python")


@pytest.mark.parametrize("where, text", PYTHON, ids=[w for w, _ in PYTHON])
def test_python_example_runs(where: str, text: str):
    exec(compile(text, where, "exec"), {"__name__": "__doc_example__"})


def _documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in MANUAL:
        for block in code_blocks(page.read_text(encoding="utf-8"), "bash"):
            texts = [(c.text, c.line) for c in shell_commands(block)]
            texts += [(m.group(1), line) for text, line in shell_comments(block) if (m := COMMENTED_COMMAND.search(text))]
            found += [(f"{_rel(page)}:{line}", argv) for text, line in texts for argv in nasir_invocations(text)]
    return found


COMMANDS = _documented_commands()


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where: str, argv: list[str]):
    error = argument_error(argv)
    assert error is None, f"{where}: nasir {' '.join(argv)}\n{error}"


def test_every_command_has_a_section_in_the_guide():
    from nasir.cli import build_parser

    guide = (ROOT / "docs" / "manual" / "commands.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (nasir [a-z -]+)$", guide, re.MULTILINE))
    missing = [" ".join(path) for path, _, _ in commands(build_parser()) if " ".join(path) not in headings]
    assert not missing, f"docs/manual/commands.md has no section for {missing}"
    assert len(COMMANDS) >= len(headings), "the guide's bash blocks were not found"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


LINKS = [(f"{_rel(p)}", target) for p in MANUAL + [ROOT / "README.md"]
         for target in re.findall(r"\]\(([^)\s]+)\)", p.read_text(encoding="utf-8"))
         if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page, target", LINKS, ids=[f"{p}->{t}" for p, t in LINKS])
def test_link_resolves(page: str, target: str):
    file, _, anchor = target.partition("#")
    path = (ROOT / page).parent / file if file else ROOT / page
    assert path.exists(), f"{page}: link to {target}: no {path.relative_to(ROOT)}"
    if anchor:
        assert anchor in _anchors(path), f"{page}: link to {target}: no such heading in {path.relative_to(ROOT)}"


def test_readme_lists_every_primitive():
    from nasir.frontends.binding import ALIASES
    from nasir.ir.ops import PRIMITIVES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"^\* primitives: `([^`]+)`", readme, re.MULTILINE)
    assert listed, "README.md has no `* primitives: `...`` line"
    assert sorted(listed.group(1).split()) == sorted([*PRIMITIVES, *ALIASES])
