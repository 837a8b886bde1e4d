"""Reference pages of the manual, generated from the code so that they cannot drift from it.

``python -m nasir.docgen`` rewrites them; ``python -m nasir.docgen --check`` (and the test suite)
fails when a committed page differs from what the code generates. Each page is a function
returning its Markdown text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasir.docgen.cli import cli_reference
from nasir.docgen.dsl import dsl_reference

#: Generated page (relative to the repository root) -> its generator.
PAGES: dict[str, Callable[[], str]] = {
    "docs/manual/dsl-reference.md": dsl_reference,
    "docs/manual/cli-reference.md": cli_reference,
}

#: What to run when a page is stale.
REGENERATE = "python -m nasir.docgen"


def repository_root() -> Path:
    """The checkout this package lives in (the pages are part of the repository, not of the package)."""
    return Path(__file__).resolve().parents[2]


def stale_pages(root: Path) -> list[str]:
    """The generated pages under ``root`` whose text differs from what the code generates now."""
    stale = []
    for rel, generate in PAGES.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != generate():
            stale.append(rel)
    return stale
