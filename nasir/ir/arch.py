"""Architectures: one pick of a candidate per architecture parameter, in one file format.

Lives in the IR (not in lowering) because passes read architectures too (``fix-arch``), and passes
import only the IR.

Everything nasir writes is an ``Architecture`` (JSON Schema: ``nasir/schema/arch.schema.json``)::

    {"format": "nasir-arch", "version": 1, "network": "darts", "method": "darts",
     "arch": {"normal.n0_0": "sep_conv_3x3", ...}, "metrics": {...}, "options": {...}}

with candidates named, never numbered. Reading is tolerant, so older files still load: the legacy
``{"arch": {parameter: pick}}`` (what ``nasir search --arch-out`` wrote before) and the bare mapping
``{parameter: pick}``, where a pick is a candidate name or a candidate index (an integer: ``true``
is not an index). A top-level ``"arch"`` whose value is an object means the wrapped legacy form, so
a bare mapping may still choose a parameter named ``arch``; a ``"format"`` key means the current
form. ``load_architecture`` also reads DARTS genotype text and NAS-Bench-201 strings
(``nasir.ir.genotype``). Every form is validated as data before anything uses it.

Only the parameters that matter need a pick: a choice nested in a candidate that is not picked (a
DNA cell that was not chosen) is not asked for. Width choices always need one (their layers are
resolved for the whole graph at once).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError

from nasir.diagnostics import NasirError
from nasir.io import atomic_write_text, parse_json, read_json, read_text
from nasir.ir.graph import Graph
from nasir.ir.nodes import ArchWeighted, ChoiceNode, Region, sub_regions
from nasir.ir.rewrite import width_ops

FORMAT = "nasir-arch"
VERSION = 1

Pick = StrictInt | StrictStr
#: The start of DARTS genotype text (``Genotype(``) or of an NB201 string (``|``).
_ARCH_TEXT = re.compile(r"\s*(Genotype\s*\(|\|)")
#: How pydantic tags the members of the unions above in the locations of its errors.
_UNION_MEMBERS = ("int", "float", "str", "bool", "none")
Option = StrictStr | StrictInt | StrictFloat | StrictBool | None


class Alternative(BaseModel):
    """Another architecture a method kept besides its choice (a point of DNA's Pareto front)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    arch: dict[str, StrictStr]
    metrics: dict[str, int | float] | None = None


class Architecture(BaseModel):
    """A chosen architecture of one network: a candidate name for each architecture parameter,
    with optional provenance (how it was found, what it scored, the method's settings)."""

    # format and version have defaults in Python, but a file must state them (``parse_arch``)
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"required": ["format", "version", "network", "arch"]})

    format: Literal["nasir-arch"] = FORMAT
    version: Literal[1] = VERSION
    #: The network (``Graph.name``) whose parameters ``arch`` names.
    network: StrictStr
    #: How it was found: ``darts``, ``gdas``, ``spos``, ``dna``, ... (absent when unknown).
    method: StrictStr | None = None
    arch: dict[str, StrictStr]
    #: What the method measured for it (``score``, ``params``, ``loss``, ...).
    metrics: dict[str, int | float] | None = None
    #: The method's settings (steps, seed, cost limit, ...).
    options: dict[str, Option] | None = None
    alternatives: list[Alternative] | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=1, exclude_none=True) + "\n"

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema()


class ArchFile(BaseModel):
    """The wrapped legacy form ``{"arch": {parameter: pick}}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    arch: dict[str, Pick]


#: What ``load_architecture`` accepts: an ``Architecture``, a decoded file of any form (a mapping),
#: or a path to a file (``str`` or ``Path``); a ``str`` may also be DARTS genotype or NB201 text.
ArchSource = Architecture | Mapping[str, Any] | str | Path

_FORMS = (f'an architecture is a JSON object {{"format": "{FORMAT}", "version": {VERSION}, "network": ..., '
          '"arch": {parameter: candidate name}}, or (legacy) {parameter: candidate name or index} or {"arch": {...}}')


def parse_arch(data: Any, source: str = "architecture") -> Architecture | dict[str, int | str]:
    """A decoded architecture file: an ``Architecture`` (current form) or the picks of a legacy
    form; a ``NasirError`` naming ``source`` and the offending entry for anything else."""
    if isinstance(data, dict) and "format" in data:
        _check_format(data, source)
        return _validated(Architecture, data, source)
    if isinstance(data, dict) and isinstance(data.get("arch"), dict):
        return _validated(ArchFile, data, source).arch
    if isinstance(data, dict) and isinstance(data.get("arch"), list) and data["arch"] and \
            all(isinstance(p, dict) and "ops" in p for p in data["arch"]):
        raise NasirError(f"{source}: a DNA search result of an older nasir: it numbers paths of the chain space "
                         "instead of naming the space's parameters",
                         hint="rerun `nasir dna rate` and `nasir dna search -o` to write the architecture format")
    return _validated(dict[str, Pick], data, source)


def _check_format(data: dict, source: str) -> None:
    if data["format"] != FORMAT:
        raise NasirError(f"{source}: not a nasir architecture (format {data['format']!r}, expected {FORMAT!r})")
    version = data.get("version")
    if type(version) is not int or version != VERSION:
        raise NasirError(f"{source}: architecture format version {version!r} is not supported "
                         f"(this nasir reads version {VERSION})")


def _validated(schema: Any, data: Any, source: str) -> Any:
    try:
        return TypeAdapter(schema).validate_python(data, strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        loc, message = first["loc"], first["msg"]
        given = f"not a JSON {_json_type(first['input'])}"
        if schema is Architecture:
            if loc and loc[-1] in _UNION_MEMBERS:  # a value matching no member of a union: name the union
                loc = loc[:-1]
                message = f"a metric is a number, {given}" if "metrics" in loc else \
                    f"an option is a string, a number, a boolean or null, {given}"
            elif first["type"] == "string_type" and "arch" in loc:
                message = f"a candidate is named in format {FORMAT!r}, {given}"
        elif first["type"] in ("int_type", "string_type") and len(loc) >= 2:  # a pick matching neither union member
            loc, message = loc[:-1], f"a candidate is a name or an integer index, {given}"
        if not loc:
            raise NasirError(f"{source}: {_FORMS}, not a JSON {_json_type(data)}") from None
        where = ".".join(str(p) for p in loc)
        raise NasirError(f"{source}: invalid architecture at {where}: {message}", hint=_FORMS) from None


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_arch(path: str | Path) -> Architecture | dict[str, int | str]:
    """Read and validate an architecture JSON file (any form; see the module docstring)."""
    return parse_arch(read_json(path, "architecture"), str(path))


def is_arch_text(text: str) -> bool:
    """Whether ``text`` is DARTS genotype text or an NB201 string rather than JSON or a path."""
    return _ARCH_TEXT.match(text) is not None


def load_architecture(source: ArchSource, graph: Graph) -> Architecture:
    """``source`` (an ``Architecture``, a mapping of any file form, a path to a file of any form, or
    DARTS genotype / NB201 text) checked against ``graph``, with every candidate named.

    Raises a ``NasirError`` for a file of another network, an unknown parameter or candidate, an
    index out of range, or a parameter that matters but has no pick.
    """
    where = "architecture"
    if isinstance(source, str) and is_arch_text(source):
        arch: Architecture | Mapping[str, Any] = _text_picks(source, graph, where)
    elif isinstance(source, (str, Path)):
        where = str(source)
        text = read_text(source, "architecture")
        arch = _text_picks(text, graph, where) if is_arch_text(text) else \
            parse_arch(parse_json(text, where, "architecture"), where)
    elif isinstance(source, Architecture):
        arch = source
    elif isinstance(source, Mapping):
        arch = parse_arch(dict(source), where)
    else:
        raise NasirError(f"an architecture is an Architecture, a mapping or a path to a file, not {type(source).__name__}")
    if isinstance(arch, Architecture):
        if arch.network != graph.name:
            raise NasirError(f"{where}: the architecture is for network {arch.network!r}, not {graph.name!r}",
                             hint="derive or search an architecture of this network")
        return arch.model_copy(update={"arch": _named_picks(graph, arch.arch)})
    return Architecture(network=graph.name, arch=_named_picks(graph, arch))


def _text_picks(text: str, graph: Graph, where: str) -> dict[str, str]:
    from nasir.ir.genotype import text_picks  # the converters build on this module

    return text_picks(text, graph, where)


def resolve_arch(graph: Graph, arch: ArchSource) -> dict[str, int]:
    """``load_architecture`` as candidate indices: what lowering and ``fix-arch`` select with."""
    named = load_architecture(arch, graph).arch
    return {name: graph.arch[name].candidates.index(pick) for name, pick in named.items()}


def _named_picks(graph: Graph, picks: Mapping[str, int | str]) -> dict[str, str]:
    picks = _validated(dict[str, Pick], dict(picks), "architecture")
    out: dict[str, str] = {}
    for name, value in picks.items():
        if name not in graph.arch:
            raise NasirError(f"architecture names unknown parameter {name!r}")
        cands = graph.arch[name].candidates
        if isinstance(value, str):
            if value not in cands:
                raise NasirError(f"{name}: no candidate {value!r}", hint=f"candidates: {', '.join(cands)}")
            out[name] = value
        elif 0 <= value < len(cands):
            out[name] = cands[value]
        else:
            raise NasirError(f"{name}: candidate index {value!r} out of range 0..{len(cands) - 1}")
    # width choices are resolved for the whole graph at once (``nasir.ir.width``), so each needs a pick
    widths = {op.width.arch for op in width_ops(graph.body)}
    missing = sorted(_unpicked(graph.body, {n: graph.arch[n].candidates.index(v) for n, v in out.items()})
                     | (widths - out.keys()))
    if missing:
        raise NasirError(f"architecture does not choose {len(missing)} parameter(s), e.g. {missing[0]!r}")
    return out


def _unpicked(region: Region, picks: dict[str, int]) -> set[str]:
    """Parameters of ``region`` that the picks leave open, looking only inside picked candidates."""
    missing: set[str] = set()
    for node in region.nodes:
        if isinstance(node, ArchWeighted):
            pick = picks.get(node.arch)
            if pick is None:
                missing.add(node.arch)
            elif isinstance(node, ChoiceNode):
                for cand, cover in zip(node.candidates, node.covers):
                    if pick in cover:
                        missing |= _unpicked(cand.body, picks)
        else:
            for _, sub in sub_regions(node):
                missing |= _unpicked(sub, picks)
    return missing


def derive_architecture(graph: Graph, weights: Mapping[str, Sequence[float]],
                        edge_weights: Mapping[str, Sequence[float]] | None = None) -> Architecture:
    """The architecture a search ends with, from each parameter's candidate weights (softmax
    probabilities), DARTS-style.

    A parameter outside input groups takes its heaviest candidate. An input group (a DARTS node)
    keeps its ``n_chosen`` member edges whose best non-excluded weight is largest (ties: the earlier
    member); a kept edge takes its heaviest non-excluded candidate, a dropped edge the group's
    excluded candidate ('none'), or its heaviest one if the group excludes nothing. Parameters
    without weights (unused by the lowered graph) get no pick. ``edge_weights`` (PC-DARTS edge
    normalization: per group, one weight per member) multiply the members' weights when edges are
    ranked, as the PC-DARTS genotype does.
    """
    def best(name: str, allowed: list[int]) -> int:
        w = weights[name]
        return max(allowed, key=lambda i: (w[i], -i))  # the first of equal weights, as argmax

    picks: dict[str, str] = {}
    for group in graph.input_groups:
        scored = []
        scale = (edge_weights or {}).get(group.name) or [1.0] * len(group.members)
        for j, member in enumerate(group.members):
            if member not in weights:
                continue
            cands = graph.arch[member].candidates
            allowed = [i for i, c in enumerate(cands) if c not in group.exclude] or list(range(len(cands)))
            i = best(member, allowed)
            scored.append((weights[member][i] * scale[j], member, cands[i]))
        ranked = sorted(scored, key=lambda s: -s[0])
        for rank, (_, member, cand) in enumerate(ranked):
            dropped = next((c for c in group.exclude if c in graph.arch[member].candidates), None)
            picks[member] = cand if rank < group.n_chosen or dropped is None else dropped
    for name in weights:
        if name not in picks:
            picks[name] = graph.arch[name].candidates[best(name, list(range(len(weights[name]))))]
    return Architecture(network=graph.name, arch=picks)
