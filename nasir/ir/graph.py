"""The top-level IR object: a region of nodes plus the architecture-parameter table."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nasir.diagnostics import NasirError, SourceLoc
from nasir.io import atomic_write_text, parse_json, read_text
from nasir.ir.nodes import ArchWeighted, MergedConvNode, Node, OpNode, Region, sub_regions
from nasir.ir.rewrite import walk, weighted_nodes

IR_VERSION = 1


class ArchParam(BaseModel):
    """One architecture parameter: a categorical distribution over ``candidates``.

    Several choice nodes may refer to the same parameter (DARTS shares one alpha per edge across
    all normal cells; FMS ties two series choices to one parameter).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    candidates: list[str]
    #: layer: a choice of modules; value: a choice of an attribute value, as separate modules;
    #: width: a choice of output widths sharing one weight (``OpNode.width``).
    kind: Literal["layer", "value", "width"] = "layer"
    loc: SourceLoc | None = None

    @property
    def size(self) -> int:
        return len(self.candidates)


class InputGroup(BaseModel):
    """Input choice of a cell node: keep ``n_chosen`` of the incoming edges when deriving.

    In the supernet all edges are summed; the group only matters for the derived architecture
    (DARTS keeps the top-2 edges per node) and for the search-space size after that rule.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    members: list[str]
    n_chosen: int = Field(ge=1)
    #: Candidate excluded when ranking edges (DARTS ignores 'none').
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _keeps_at_most_its_members(self) -> InputGroup:
        if self.n_chosen > len(self.members):
            raise ValueError(f"n_chosen {self.n_chosen} exceeds the {len(self.members)} members")
        return self


class Graph(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = IR_VERSION
    name: str
    body: Region = Field(default_factory=Region)
    arch: dict[str, ArchParam] = Field(default_factory=dict)
    input_groups: list[InputGroup] = Field(default_factory=list)
    #: Values of the network's parameters at elaboration (C, layers, ...), for summaries.
    params: dict[str, Any] = Field(default_factory=dict)

    # -- traversal -------------------------------------------------------------------------
    def walk(self) -> Iterator[tuple[str, Node, Region]]:
        """Every node at every depth as (full dotted path, node, region holding it); see ``rewrite.walk``."""
        return walk(self.body)

    def arch_users(self, arch: str) -> list[ArchWeighted]:
        return [n for n in weighted_nodes(self.body) if n.arch == arch]

    # -- search space ----------------------------------------------------------------------
    def search_space_size(self, input_rule: bool = False) -> int:
        """Exact number of distinct architectures.

        Choices nested inside a candidate count only when that candidate is picked (a DNA block
        choosing between cells of different depth); choices tied to one parameter (DARTS cells of
        one type, PMS cascades, FMS series choices) count once. With ``input_rule`` each input
        group keeps ``n_chosen`` of its member edges, each kept edge being any architecture of that
        edge whose own choice picks a non-excluded candidate, choices nested in the edge included
        (the DARTS top-2 rule); the dropped edges count nothing.

        A width choice of n widths multiplies the size by n where it is reached, like a choice of n
        candidates; a width parameter already counted in an enclosing region counts once, and one
        reached only through candidates of several different choices counts once per architecture
        that reaches it (see ``_count_with_shared``).
        """
        groups = self.input_groups if input_rule else []
        shared = sorted(_widths_shared_by_choices(self.body).items())
        return _count_with_shared(self.body, _InputRule(self.arch, groups), shared, frozenset(), frozenset())

    def copy_deep(self) -> Graph:
        """An independent copy (through JSON: faster than ``model_copy(deep=True)`` here)."""
        return Graph.model_validate_json(self.model_dump_json())

    # -- serialization ---------------------------------------------------------------------
    def to_json(self, indent: int | None = 1) -> str:
        return self.model_dump_json(indent=indent, exclude_none=True)

    @classmethod
    def from_json(cls, text: str, filename: str = "<json>") -> Graph:
        """Decode and validate IR JSON: size and nesting bounded before decoding, types and ranges
        by the models, references to architecture parameters checked; a ``NasirError`` naming
        ``filename`` and the JSON path of the first problem otherwise."""
        data = parse_json(text, filename, "IR")
        if isinstance(data, dict) and data.get("version") not in (None, IR_VERSION):
            raise NasirError(f"IR version {data.get('version')} is not supported (expected {IR_VERSION})")
        try:
            graph = cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            node, loc = _enclosing_node(data, first["loc"])
            of_node = f" (node {node!r})" if node else ""
            raise NasirError(f"{filename}: invalid IR at {where}{of_node}: {first['msg']}", loc) from None
        for i, group in enumerate(graph.input_groups):
            unknown = [m for m in group.members if m not in graph.arch]
            if unknown:
                raise NasirError(f"{filename}: invalid IR at input_groups.{i}: member {unknown[0]!r} is no "
                                 "architecture parameter")
        return graph

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        return cls.from_json(read_text(path, "IR"), str(path))

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema()


def _enclosing_node(data: Any, path: tuple[int | str, ...]) -> tuple[str | None, SourceLoc | None]:
    """The innermost node on a validation error's path in raw IR JSON: its name and DSL location.

    Path steps that are not keys of the JSON (pydantic's union tags such as ``op`` or ``conv``) are
    skipped; a malformed location is dropped rather than reported.
    """
    name, loc = None, None
    for step in path:
        if isinstance(data, dict) and isinstance(data.get("name"), str) and "kind" in data:
            name = data["name"]
            try:
                loc = SourceLoc.model_validate(data["loc"]) if "loc" in data else None
            except ValidationError:
                loc = None
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
    return name, loc


def _top_weighted(region: Region) -> list[ArchWeighted]:
    """Choice/merged-conv nodes of a region, looking through blocks but not into candidates."""
    found: list[ArchWeighted] = []
    for node in region.nodes:
        if isinstance(node, ArchWeighted):
            found.append(node)
        else:
            for _, sub in sub_regions(node):
                found.extend(_top_weighted(sub))
    return found


def _top_widths(region: Region) -> dict[str, int]:
    """Width parameters of a region's ops (looking through blocks, not into candidates) -> their number of widths."""
    found: dict[str, int] = {}
    for node in region.nodes:
        if isinstance(node, OpNode) and node.width is not None:
            found.setdefault(node.width.arch, len(node.width.widths))
        elif not isinstance(node, ArchWeighted):
            for _, sub in sub_regions(node):
                found.update(_top_widths(sub))
    return found


class _InputRule:
    """The input groups counted by the top-k rule, and the candidates each member edge may keep."""

    def __init__(self, arch: dict[str, ArchParam], groups: list[InputGroup]):
        self.group_of = {m: g for g in groups for m in g.members}
        self.allowed = {m: {i for i, c in enumerate(arch[m].candidates) if c not in g.exclude}
                        for g in groups for m in g.members}


def _widths_shared_by_choices(body: Region) -> dict[str, int]:
    """Width parameters (-> number of widths) used directly in candidates of two or more different
    choices and not at the top of the network: counting each choice on its own would multiply them in
    once per choice whose picked candidate uses them."""
    users: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}

    def visit(region: Region) -> None:
        for node in _top_weighted(region):
            for cand in getattr(node, "candidates", []):
                for arch, n in _top_widths(cand.body).items():
                    users.setdefault(arch, set()).add(node.arch)
                    sizes[arch] = n
                visit(cand.body)

    visit(body)
    top = _top_widths(body)
    return {w: sizes[w] for w, choices in users.items() if len(choices) > 1 and w not in top}


def _count_with_shared(body: Region, rule: _InputRule, shared: list[tuple[str, int]], outer: frozenset[str],
                       banned: frozenset[str]) -> int:
    """Architectures with the shared width parameters counted once each where reached.

    For a shared parameter w of n widths: with w left out of every count (``outer``) the count is the
    number of architectures of everything else, T; with also every candidate that uses w banned it is
    the number U of those that never reach w. Those reach w in n ways, the others in one: U + n (T - U).
    """
    if not shared:
        return _count_region(body, {}, rule, outer, banned)
    (w, n), rest = shared[0], shared[1:]
    everything = _count_with_shared(body, rule, rest, outer | {w}, banned)
    unreached = _count_with_shared(body, rule, rest, outer | {w}, banned | {w})
    return unreached + n * (everything - unreached)


def _count_region(region: Region, allowed: dict[str, set[int]], rule: _InputRule, outer: frozenset[str],
                  banned: frozenset[str] = frozenset()) -> int:
    """Architectures of ``region``; ``outer``: width parameters an enclosing region counted already;
    ``banned``: width parameters whose candidates may not be picked."""
    widths = {a: n for a, n in _top_widths(region).items() if a not in outer}
    total = math.prod(widths.values())
    outer = outer | widths.keys()
    seen: set[str] = set()
    counted: set[tuple[str, ...]] = set()  # input groups (by members), whose members may stand anywhere here
    top = _top_weighted(region)
    for node in top:
        if node.arch in seen:
            continue
        seen.add(node.arch)
        group = rule.group_of.get(node.arch)
        if group is None or node.arch in allowed:  # in allowed: nested in its own edge (PMS group, merged conv)
            total *= _count_node(node, allowed, rule, outer, banned)
        elif tuple(group.members) not in counted:
            counted.add(tuple(group.members))
            total *= _count_group(group, top, allowed, rule, outer, banned)
    return total


def _count_group(group: InputGroup, top: list[ArchWeighted], allowed: dict[str, set[int]], rule: _InputRule,
                 outer: frozenset[str], banned: frozenset[str]) -> int:
    """Sum over the kept ``n_chosen``-subsets of member edges of the product of their sizes."""
    first = {}
    for node in top:
        first.setdefault(node.arch, node)
    sizes = []
    for member in group.members:
        node = first.get(member)
        if node is not None:
            mine = allowed.get(member, set(node.domain)) & rule.allowed[member]
            sizes.append(_count_node(node, {**allowed, member: mine}, rule, outer, banned))
    return _choose_products(sizes, group.n_chosen)


def _uses(region: Region, arch: str) -> bool:
    return any(n.arch == arch for n in _top_weighted(region))


def _count_node(node: ArchWeighted, allowed: dict[str, set[int]], rule: _InputRule, outer: frozenset[str],
                banned: frozenset[str]) -> int:
    mine = allowed.get(node.arch, set(node.domain)) & set(node.domain)
    if isinstance(node, MergedConvNode):
        return len(mine)
    total = 0
    covered: set[int] = set()
    for cand, cover in zip(node.candidates, node.covers):
        picks = set(cover) & mine
        covered |= picks
        if not picks or (banned and banned & _top_widths(cand.body).keys()):
            continue
        if _uses(cand.body, node.arch):
            total += _count_region(cand.body, {**allowed, node.arch: picks}, rule, outer, banned)
        else:
            total += len(picks) * _count_region(cand.body, allowed, rule, outer, banned)
    return total + len(mine - covered)


def _choose_products(sizes: list[int], k: int) -> int:
    """Sum over k-subsets of ``sizes`` of the product of the chosen sizes (elementary symmetric)."""
    e = [1] + [0] * k
    for s in sizes:
        for j in range(k, 0, -1):
            e[j] += e[j - 1] * s
    return e[k] if k <= len(sizes) else 0


def log10_size(n: int) -> float:
    return math.log10(n) if n > 0 else float("-inf")
