"""fix-arch: replace every choice by the candidate a given architecture picks (exact for that path).

``fix-arch{arch=arch.json}`` reads an architecture file (``nasir.ir.arch``: what ``nasir search
--arch-out`` and ``nasir dna search -o`` write, a legacy form, a DARTS genotype or an NB201 string)
and inlines the chosen candidate of every choice, keeping the candidate's path as a name prefix so
that weights keep their supernet names; every width choice becomes a plain width (its weights are
the first channels of the supernet's, as in fixed lowering), and a merged convolution (after
``reparam``) the plain op its chosen kernel stands for (``nasir.ir.fix``). The result is a plain
network: lowering it in any mode equals lowering the graph in ``fixed`` mode with that architecture,
with the fixed lowering's weights (``sliced_state_dict`` folds normalized kernels). Follow it with
``canonicalize,dead-code`` to drop edges that became zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasir.diagnostics import NasirError
from nasir.ir.arch import resolve_arch
from nasir.ir.fix import fix_architecture
from nasir.ir.graph import Graph
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
        for what, n in sorted(fix_architecture(graph, picks).items()):
            result.count(what, n)
        return result
