"""Converters between architectures and the text forms of two published spaces.

* DARTS ``Genotype`` text (Liu et al., ``genotypes.py``)::

      Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ...], normal_concat=range(2, 6),
               reduce=[...], reduce_concat=range(2, 6))

  for spaces shaped like ``std/darts.nas``: input groups ``normal.n<i>`` / ``reduce.n<i>`` (one per
  intermediate node) whose member ``j`` is the edge from state ``j`` (0 and 1 the cell inputs, 2 on
  the earlier nodes), exactly the genotype's numbering. The genotype lists the ``n_chosen`` kept
  edges of each node in turn; every other edge takes the group's excluded candidate (``none``).
* NAS-Bench-201 strings (Dong & Yang, ``|op~j|`` per edge, nodes separated by ``+``)::

      |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

  for spaces shaped like ``std/nb201.nas``: one parameter ``<cell>.n<i>_<j>`` per edge j -> i.

Both standard spaces use the papers' operation names unchanged, so no name is translated; the
converters check every name against the space's candidates. Genotype text is parsed by a small
tokenizer and parser, never by ``eval``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NoReturn

from nasir.diagnostics import NasirError
from nasir.ir.arch import Architecture, ArchSource, load_architecture
from nasir.ir.graph import Graph, InputGroup

_DARTS_CELLS = ("normal", "reduce")
_TOKEN = re.compile(r"""\s*(?:(?P<name>[A-Za-z_]\w*)|(?P<int>\d+)|(?P<str>'[^'\\\n]*'|"[^"\\\n]*")|(?P<punct>[()\[\],=]))""")
_EDGE = re.compile(r"(?P<cell>.+)\.n(?P<node>\d+)_(?P<src>\d+)")

Edge = tuple[str, int]  # (operation, input state)

#: The genotypes the DARTS paper reports (``cnn/genotypes.py`` of its repository): first- and
#: second-order DARTS on CIFAR-10; each node's two edges are listed strongest first.
DARTS_V1 = ("Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
            "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
            "reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
            "reduce_concat=[2, 3, 4, 5])")


# -- public API ----------------------------------------------------------------------------------
def from_genotype(text: str, graph: Graph) -> Architecture:
    """The architecture of ``graph`` (a DARTS-like space) that DARTS genotype ``text`` describes."""
    return load_architecture(genotype_picks(text, graph, "genotype"), graph)


def to_genotype(arch: ArchSource, graph: Graph) -> str:
    """DARTS genotype text of an architecture of ``graph``: each node's kept edges in input order."""
    picks = load_architecture(arch, graph).arch
    fields = []
    for kind, groups in _darts_cells(graph).items():
        edges = []
        for group in groups:
            kept = [(picks[m], j) for j, m in enumerate(group.members) if m in picks and picks[m] not in group.exclude]
            if len(kept) != group.n_chosen:
                raise NasirError(f"node {group.name} keeps {len(kept)} edges; a DARTS genotype keeps exactly "
                                 f"{group.n_chosen} per node", hint="derive the architecture with the input groups' rule")
            edges += kept
        concat = _concat(graph, len(groups))
        fields.append(f"{kind}=[{', '.join(f'({op!r}, {j})' for op, j in edges)}], "
                      f"{kind}_concat=range({concat.start}, {concat.stop})")
    return f"Genotype({', '.join(fields)})"


def from_nb201(text: str, graph: Graph) -> Architecture:
    """The architecture of ``graph`` (an NB201-like space) that NAS-Bench-201 string ``text`` describes."""
    return load_architecture(nb201_picks(text, graph, "NB201 string"), graph)


def to_nb201(arch: ArchSource, graph: Graph) -> str:
    """The NAS-Bench-201 string of an architecture of ``graph``."""
    picks = load_architecture(arch, graph).arch
    edges = _nb201_edges(graph)
    nodes = max(i for i, _ in edges)
    return "|" + "|+|".join("|".join(f"{picks[edges[i, j]]}~{j}" for j in range(i)) for i in range(1, nodes + 1)) + "|"


def text_picks(text: str, graph: Graph, where: str) -> dict[str, str]:
    """Picks from genotype text or an NB201 string (``load_architecture`` reads both this way)."""
    if text.lstrip().startswith("|"):
        return nb201_picks(text, graph, where)
    return genotype_picks(text, graph, where)


# -- DARTS genotypes -----------------------------------------------------------------------------
def genotype_picks(text: str, graph: Graph, where: str = "genotype") -> dict[str, str]:
    """Picks (candidate names) of ``graph``'s parameters from DARTS genotype ``text``."""
    fields = _GenotypeParser(text, where).parse()
    cells = _darts_cells(graph, where)
    picks: dict[str, str] = {}
    for kind, groups in cells.items():
        for key in (kind, f"{kind}_concat"):
            if key not in fields:
                raise NasirError(f"{where}: the genotype has no {key!r}; this space has {kind} cells")
        edges = fields[kind]
        if not isinstance(edges, list) or not all(isinstance(e, tuple) for e in edges):
            raise NasirError(f"{where}: {kind} is a list of (operation, input) pairs")
        want = sum(g.n_chosen for g in groups)
        if len(edges) != want:
            raise NasirError(f"{where}: {kind} lists {len(edges)} edges; this space's {kind} cell has {len(groups)} "
                             f"nodes keeping {want} edges in all", hint=f"network {graph.name!r}")
        concat = _concat(graph, len(groups))
        if fields[f"{kind}_concat"] != list(concat):
            raise NasirError(f"{where}: {kind}_concat is {fields[f'{kind}_concat']}; this space concatenates "
                             f"states {list(concat)}")
        start = 0
        for group in groups:
            picks.update(_node_picks(group, edges[start:start + group.n_chosen], graph, where))
            start += group.n_chosen
    return picks


def _node_picks(group: InputGroup, edges: list[Edge], graph: Graph, where: str) -> dict[str, str]:
    dropped = next((c for c in group.exclude if c in graph.arch[group.members[0]].candidates), None)
    if dropped is None:
        raise NasirError(f"{where}: node {group.name} excludes no candidate, so its unlisted edges cannot be dropped")
    picks = dict.fromkeys(group.members, dropped)
    seen: set[int] = set()
    for op, j in edges:
        if not 0 <= j < len(group.members):
            raise NasirError(f"{where}: node {group.name} reads state {j}; it may read states 0..{len(group.members) - 1}")
        if j in seen:
            raise NasirError(f"{where}: node {group.name} lists input {j} twice; a node has one edge per input")
        seen.add(j)
        picks[group.members[j]] = op
    return picks


def _darts_cells(graph: Graph, where: str = "genotype") -> dict[str, list[InputGroup]]:
    """The space's input groups per DARTS cell type, in node order."""
    cells: dict[str, list[InputGroup]] = {}
    for group in graph.input_groups:
        kind, _, node = group.name.rpartition(".")
        if kind in _DARTS_CELLS and re.fullmatch(r"n\d+", node):
            cells.setdefault(kind, []).append(group)
    if not cells:
        raise NasirError(f"{where}: network {graph.name!r} is not a DARTS-like space",
                         hint="a genotype needs input groups normal.n<i> and reduce.n<i> (input_choice in cells "
                              "that share \"normal\"/\"reduce\", as in std/darts.nas)")
    return {kind: cells[kind] for kind in _DARTS_CELLS if kind in cells}


def _concat(graph: Graph, nodes: int) -> range:
    """The states a cell concatenates: its last ``multiplier`` nodes (states 2.. are the nodes)."""
    multiplier = graph.params.get("multiplier", nodes)
    return range(2 + nodes - multiplier, 2 + nodes)


class _GenotypeParser:
    """``Genotype(field=value, ...)`` where a value is a list of ``('op', int)`` pairs, a list of
    integers, or ``range(int, int)``."""

    def __init__(self, text: str, where: str):
        self.where = where
        self.tokens = list(self._tokenize(text))
        self.pos = 0

    def _tokenize(self, text: str) -> Iterator[tuple[str, str, int]]:
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise NasirError(f"{self.where}: unexpected {text[pos:pos + 12].strip()!r} in genotype text at "
                                 f"character {pos + 1}")
            kind = m.lastgroup
            yield kind, m.group(kind), m.start(kind)
            pos = m.end()

    def parse(self) -> dict[str, list[Edge] | list[int]]:
        self.expect("name", "Genotype")
        self.expect("punct", "(")
        fields: dict[str, list[Edge] | list[int]] = {}
        while not self.accept(")"):
            name = self.expect("name")
            if name in fields:
                self.fail(f"field {name!r} given twice")
            self.expect("punct", "=")
            fields[name] = self.value()
            if not self.accept(","):
                self.expect("punct", ")")
                break
        if self.pos != len(self.tokens):
            self.fail("text after the genotype")
        unknown = sorted(set(fields) - {f"{k}{s}" for k in _DARTS_CELLS for s in ("", "_concat")})
        if unknown:
            self.fail(f"unknown field {unknown[0]!r} (a genotype has normal, normal_concat, reduce, reduce_concat)")
        return fields

    def value(self) -> list[Edge] | list[int]:
        if self.accept("range"):
            self.expect("punct", "(")
            start = int(self.expect("int"))
            self.expect("punct", ",")
            stop = int(self.expect("int"))
            self.expect("punct", ")")
            return list(range(start, stop))
        self.expect("punct", "[")
        items: list = []
        while not self.accept("]"):
            if self.accept("("):
                op = self.expect("str")[1:-1]
                self.expect("punct", ",")
                items.append((op, int(self.expect("int"))))
                self.expect("punct", ")")
            else:
                items.append(int(self.expect("int")))
            if not self.accept(","):
                self.expect("punct", "]")
                break
        if len({type(i) for i in items}) > 1:
            self.fail("a list mixes edges and integers")
        return items

    def accept(self, text: str) -> bool:
        if self.pos < len(self.tokens) and self.tokens[self.pos][1] == text:
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            self.fail(f"the text ends where {text or kind!r} was expected")
        got_kind, got, _ = self.tokens[self.pos]
        if got_kind != kind or (text is not None and got != text):
            self.fail(f"expected {text or kind!r}, found {got!r}")
        self.pos += 1
        return got

    def fail(self, message: str) -> NoReturn:
        at = self.tokens[min(self.pos, len(self.tokens) - 1)][2] + 1 if self.tokens else 1
        raise NasirError(f"{self.where}: not a DARTS genotype: {message} (character {at})",
                         hint="Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...], "
                              "reduce_concat=range(2, 6))")


# -- NAS-Bench-201 strings -----------------------------------------------------------------------
def nb201_picks(text: str, graph: Graph, where: str = "NB201 string") -> dict[str, str]:
    """Picks (candidate names) of ``graph``'s parameters from a NAS-Bench-201 architecture string."""
    edges = _nb201_edges(graph, where)
    nodes = max(i for i, _ in edges)
    text = text.strip()
    parts = text.split("+")
    if len(parts) != nodes:
        raise NasirError(f"{where}: the string has {len(parts)} node(s); this space's cell has {nodes}",
                         hint="|op~0|+|op~0|op~1|+|op~0|op~1|op~2| (one |op~j| per edge j -> node)")
    picks: dict[str, str] = {}
    for i, part in enumerate(parts, start=1):
        if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
            raise NasirError(f"{where}: node {i} is {part!r}, not |op~j|...|")
        for item in part[1:-1].split("|"):
            op, _, src = item.partition("~")
            if not (op and src.isascii() and src.isdigit()):
                raise NasirError(f"{where}: node {i}: {item!r} is not op~input")
            j = int(src)
            if not 0 <= j < i:
                raise NasirError(f"{where}: node {i} reads node {j}; it may read nodes 0..{i - 1}")
            if edges[i, j] in picks:
                raise NasirError(f"{where}: node {i} lists input {j} twice")
            picks[edges[i, j]] = op
        missing = [j for j in range(i) if edges[i, j] not in picks]
        if missing:
            raise NasirError(f"{where}: node {i} has no edge from node {missing[0]}; an NB201 string lists every edge")
    return picks


def _nb201_edges(graph: Graph, where: str = "NB201 string") -> dict[tuple[int, int], str]:
    """(node, input) -> parameter of the space's one cell, checked to be the full NB201 DAG."""
    found = {name: _EDGE.fullmatch(name) for name in graph.arch}
    cells = {m["cell"] for m in found.values() if m}
    edges = {(int(m["node"]), int(m["src"])): name for name, m in found.items() if m}
    nodes = max((i for i, _ in edges), default=0)
    if None in found.values() or len(cells) != 1 or set(edges) != {(i, j) for i in range(1, nodes + 1) for j in range(i)}:
        raise NasirError(f"{where}: network {graph.name!r} is not an NB201-like space",
                         hint="an NB201 string needs one cell whose parameters are <cell>.n<i>_<j>, one per edge "
                              "j -> i of a complete DAG (std/nb201.nas)")
    return edges
