"""Architectures: a user's pick of one candidate per architecture parameter, checked against a graph.

Lives in the IR (not in lowering) because passes read architectures too (``fix-arch``), and passes
import only the IR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ir.rewrite import used_arch


def arch_mapping(data: Any) -> Any:
    """The ``{parameter: candidate}`` object of an architecture file: its ``arch`` object when it has
    one (``{"arch": {...}, ...}``, as ``nasir search`` writes), else the file itself, so a plain
    mapping may choose a parameter named ``arch``."""
    return data["arch"] if isinstance(data, dict) and isinstance(data.get("arch"), dict) else data


def resolve_arch(graph: Graph, arch: Mapping[str, int | str]) -> dict[str, int]:
    """Check a user-given architecture and turn candidate names into indices."""
    used = sorted(used_arch(graph.body))
    out: dict[str, int] = {}
    for name, value in arch.items():
        if name not in graph.arch:
            raise NasirError(f"architecture names unknown parameter {name!r}")
        cands = graph.arch[name].candidates
        if isinstance(value, str):
            if value not in cands:
                raise NasirError(f"{name}: no candidate {value!r}", hint=f"candidates: {', '.join(cands)}")
            out[name] = cands.index(value)
        elif isinstance(value, int) and 0 <= value < len(cands):
            out[name] = value
        else:
            raise NasirError(f"{name}: candidate index {value!r} out of range 0..{len(cands) - 1}")
    missing = [u for u in used if u not in out]
    if missing:
        raise NasirError(f"architecture does not choose {len(missing)} parameter(s), e.g. {missing[0]!r}")
    return out
