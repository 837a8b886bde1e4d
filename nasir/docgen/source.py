"""What the reference pages are generated from: docstrings and ``#:`` comments, as Markdown.

The reference documents what the code declares, so every fact has one home: a class's own
docstring, the ``#:`` comment above an attribute or constant (the Sphinx convention the code
already follows) and the declarations themselves. A missing docstring is an error here rather
than a silent gap in the manual.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

_ASSIGNED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]*)?=")
_ANNOTATED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")


class UndocumentedError(ValueError):
    """Something the reference must describe has no docstring."""


def markdown(text: str) -> str:
    """reStructuredText literals (````x````) as Markdown code spans; paragraphs kept, lines joined."""
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p.replace("``", "`") for p in paragraphs if p)


def own_doc(obj: Any, what: str) -> str:
    """``obj``'s own docstring (a class's, not one inherited from a base), as Markdown."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc or not doc.strip():
        raise UndocumentedError(f"{what} has no docstring, which the generated reference needs")
    return markdown(inspect.cleandoc(doc))


def first_paragraph(text: str) -> str:
    return text.split("\n\n", 1)[0]


def attribute_comments(obj: Any) -> dict[str, str]:
    """The ``#:`` comment above each attribute or constant in ``obj``'s source (a class or a module)."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(obj).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _ASSIGNED.match(line) or _ANNOTATED.match(line)
        if pending and match:
            comments[match.group(1)] = markdown(" ".join(pending))
        pending = []
    return comments

