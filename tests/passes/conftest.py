"""Helpers for the TopoNAS pass tests: FileCheck-style IR checks and before/after comparisons.

Weights are carried from the supernet lowered before the passes into the one lowered after them
with ``nasir.passes._topo_weights.carry_weights``, which maps every rewritten module back to the
original module it came from (see that module's docstring), so both compute with the same weights.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nasir.ir.printer import print_graph
from nasir.lowering import lower
from nasir.passes._topo_weights import carry_weights
from nasir.passmanager import PassManager


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Every test here uses tiny tensors: one thread (see ``single_thread`` in tests/conftest.py)."""


def filecheck(text: str, checks: str) -> None:
    """Every non-empty line of ``checks`` must occur, in order, as a substring of some line of ``text``.

    ``CHECK-NOT: pattern`` lines assert the pattern does not occur between the neighbouring matches.
    """
    lines = text.splitlines()
    pos = 0
    pending_not: list[str] = []
    for raw in checks.strip().splitlines():
        pattern = raw.strip()
        if not pattern:
            continue
        if pattern.startswith("CHECK-NOT:"):
            pending_not.append(pattern[len("CHECK-NOT:"):].strip())
            continue
        for i in range(pos, len(lines)):
            if pattern in lines[i]:
                for bad in pending_not:
                    hit = [ln for ln in lines[pos:i] if bad in ln]
                    assert not hit, f"CHECK-NOT {bad!r} matched {hit[0]!r}"
                pending_not = []
                pos = i + 1
                break
        else:
            context = "\n".join(lines[max(0, pos - 3):pos + 12])
            raise AssertionError(f"pattern not found after line {pos}: {pattern!r}\n--- near ---\n{context}")
    for bad in pending_not:
        hit = [ln for ln in lines[pos:] if bad in ln]
        assert not hit, f"CHECK-NOT {bad!r} matched {hit[0]!r}"


def edge_text(graph, edge: str) -> str:
    """The printed IR of one node (with its nested regions), for focused FileChecks."""
    lines = print_graph(graph).splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(f"%{edge} = "))
    if not lines[start].endswith("{"):
        return lines[start]
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == " " * indent + "}")
    return "\n".join(lines[start:end + 1])


def run_pipeline(graph, pipeline: str):
    pm = PassManager.parse(pipeline)
    return pm.run(graph), pm


def compare(graph, pipeline: str, x_shape=(2, 3, 8, 8), alpha=None, train: bool = True):
    """Lower before and after ``pipeline`` in float64 with the same weights; return both outputs."""
    after_graph, pm = run_pipeline(graph, pipeline)
    before = lower(graph, "supernet", seed=0).double()
    after = lower(after_graph, "supernet", seed=1).double()
    if alpha is not None:
        with torch.no_grad():
            for key, p in before.arch.items():
                p.copy_(alpha(key, p.numel()))
    carry_weights(before, after, after_graph)
    before.train(train)
    after.train(train)
    x = torch.randn(*x_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return before(x), after(x), after_graph, pm


def one_hot_alpha(index: int, scale: float = 40.0):
    """Arch parameters that put (almost) all probability on original candidate ``index``."""
    def make(key, n):
        a = torch.zeros(n, dtype=torch.float64)
        a[index % n] = scale
        return a
    return make


@pytest.fixture
def topo():
    """The helpers above, as one fixture (test modules cannot import conftest under importlib mode)."""
    return SimpleNamespace(filecheck=filecheck, edge_text=edge_text, run=run_pipeline, compare=compare,
                           one_hot_alpha=one_hot_alpha)
