"""The Python API in one place: compile a space, lower it, search it.

    >>> import nasir
    >>> graph = nasir.compile_file("std/darts.nas", passes="canonicalize", C=8)
    >>> model = nasir.lower(graph, mode="supernet")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import ImportPaths, parse_file, std_path
from nasir.ir.graph import Graph
from nasir.passmanager import PassManager


def resolve_source(path: str | Path) -> Path:
    """A file path, or a standard-library name such as ``std/darts.nas`` or ``darts``."""
    p = Path(path)
    if p.is_file():
        return p
    text = str(path)
    if text.startswith("std/") or "/" not in text:
        name = text.removeprefix("std/")
        try:
            return std_path(name)
        except NasirError:
            pass
    raise NasirError(f"no such file: {path}", hint="give a path to a .nas file or a standard space such as std/darts.nas")


def load_graph(path: str | Path, entry: str | None = None, *, imports: ImportPaths | None = None,
               **overrides: Any) -> Graph:
    """Parse a ``.nas`` file (or read an IR ``.json`` file) into a verified graph; ``imports``: where imports look."""
    src = resolve_source(path)
    if src.suffix == ".json":
        if overrides:
            raise NasirError("parameter overrides apply to .nas files, not to IR JSON")
        from nasir.ir.verify import verify

        graph = Graph.load(src)
        try:
            verify(graph)
        except NasirError as err:
            raise err.add_context(f"in IR file {src}") from None
        return graph
    return parse_file(src, entry, imports=imports, **overrides)


def compile_file(path: str | Path, passes: str = "", entry: str | None = None, *, imports: ImportPaths | None = None,
                 **overrides: Any) -> Graph:
    """Parse, elaborate and run a pass pipeline; returns the transformed graph."""
    graph = load_graph(path, entry, imports=imports, **overrides)
    if passes:
        graph = PassManager.parse(passes).run(graph)
    return graph
