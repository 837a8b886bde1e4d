"""fix-arch: replace every choice by the candidate a given architecture picks (exact for that path).

``fix-arch{arch=arch.json}`` reads an architecture file (``nasir.ir.arch``: what ``nasir search
--arch-out`` and ``nasir dna search -o`` write, a legacy form, a DARTS genotype or an NB201 string)
and inlines the chosen candidate of every choice, keeping the candidate's path as a name prefix so
that weights keep their supernet names; every width choice becomes a plain width (its weights are
the first channels of the supernet's, as in fixed lowering). The result is a plain network:
lowering it in any mode equals lowering the supernet in ``fixed`` mode with that architecture.
Follow it with ``canonicalize,dead-code`` to drop edges that became zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasir.diagnostics import NasirError
from nasir.ir.arch import resolve_arch
from nasir.ir.graph import Graph
from nasir.ir.nodes import ChoiceNode, MergedConvNode, Region, sub_regions
from nasir.ir.rewrite import inline_region
from nasir.ir.width import fix_widths
from nasir.passmanager import Exactness, Pass, PassResult, register


@register
@dataclass
class FixArch(Pass):
    name = "fix-arch"
    summary = "inline the candidates an architecture file picks; the graph keeps no choices"

    arch: str = ""

    def exactness(self) -> Exactness:
        return "exact"

    def run(self, graph: Graph) -> PassResult:
        if not self.arch:
            raise NasirError("fix-arch needs an architecture file: fix-arch{arch=path/to/arch.json}")
        picks = resolve_arch(graph, self.arch)
        result = PassResult()
        _fix_region(graph.body, picks, result)
        widths = fix_widths(graph, picks)
        if widths:
            result.count("widths-fixed", widths)
        graph.arch = {}
        graph.input_groups = []
        return result


def _fix_region(region: Region, picks: dict[str, int], result: PassResult) -> None:
    for node in list(region.nodes):
        if isinstance(node, MergedConvNode):
            raise NasirError("fix-arch runs before reparam: a merged_conv has no single chosen kernel to inline", node.loc)
        if isinstance(node, ChoiceNode):
            pick = picks[node.arch]
            chosen = [c for c, cover in zip(node.candidates, node.covers) if pick in cover]
            if not chosen:
                raise NasirError(f"choice {node.name!r}: candidate {pick} of {node.arch!r} is not among its candidates",
                                 node.loc)
            cand = chosen[0]
            _fix_region(cand.body, picks, result)
            inline_region(region, node.name, cand.body, f"{node.name}.{cand.name}.")
            result.count("choices-fixed")
        else:
            for _, sub in sub_regions(node):
                _fix_region(sub, picks, result)
