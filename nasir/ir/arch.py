"""Architectures: a user's pick of one candidate per architecture parameter, checked against a graph.

Lives in the IR (not in lowering) because passes read architectures too (``fix-arch``), and passes
import only the IR.

An architecture file is JSON in one of two forms: ``{"arch": {parameter: pick}}`` (what
``nasir search --arch-out`` writes) or the bare mapping ``{parameter: pick}``; a pick is a
candidate name or a candidate index (an integer: ``true`` is not an index). A top-level ``"arch"``
whose value is an object means the first form, so a bare mapping may still choose a parameter
named ``arch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, TypeAdapter, ValidationError

from nasir.diagnostics import NasirError
from nasir.io import read_json
from nasir.ir.graph import Graph
from nasir.ir.rewrite import used_arch

Pick = StrictInt | StrictStr


class ArchFile(BaseModel):
    """The wrapped form ``{"arch": {parameter: pick}}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    arch: dict[str, Pick]


def parse_arch(data: Any, source: str = "architecture") -> dict[str, int | str]:
    """The picks of a decoded architecture file (either form); a ``NasirError`` naming ``source``
    and the offending entry for anything else."""
    if isinstance(data, dict) and isinstance(data.get("arch"), dict):
        return _validated(ArchFile, data, source).arch
    return _validated(dict[str, Pick], data, source)


def _validated(schema: Any, data: Any, source: str) -> Any:
    try:
        return TypeAdapter(schema).validate_python(data, strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        loc, message = first["loc"], first["msg"]
        if first["type"] in ("int_type", "string_type") and len(loc) >= 2:  # a pick matching neither union member
            loc, message = loc[:-1], f"a candidate is a name or an integer index, not a JSON {_json_type(first['input'])}"
        form = 'an architecture is a JSON object {parameter: candidate name or index}, or {"arch": {...}}'
        if not loc:
            raise NasirError(f"{source}: {form}, not a JSON {_json_type(data)}") from None
        where = ".".join(str(p) for p in loc)
        raise NasirError(f"{source}: invalid architecture at {where}: {message}", hint=form) from None


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_arch(path: str | Path) -> dict[str, int | str]:
    """Read and validate an architecture file (see the module docstring for its forms)."""
    return parse_arch(read_json(path, "architecture"), str(path))


def resolve_arch(graph: Graph, arch: Mapping[str, int | str]) -> dict[str, int]:
    """Check a user-given architecture and turn candidate names into indices."""
    picks = _validated(dict[str, Pick], dict(arch) if isinstance(arch, Mapping) else arch, "architecture")
    used = sorted(used_arch(graph.body))
    out: dict[str, int] = {}
    for name, value in picks.items():
        if name not in graph.arch:
            raise NasirError(f"architecture names unknown parameter {name!r}")
        cands = graph.arch[name].candidates
        if isinstance(value, str):
            if value not in cands:
                raise NasirError(f"{name}: no candidate {value!r}", hint=f"candidates: {', '.join(cands)}")
            out[name] = cands.index(value)
        elif 0 <= value < len(cands):
            out[name] = value
        else:
            raise NasirError(f"{name}: candidate index {value!r} out of range 0..{len(cands) - 1}")
    missing = [u for u in used if u not in out]
    if missing:
        raise NasirError(f"architecture does not choose {len(missing)} parameter(s), e.g. {missing[0]!r}")
    return out
