"""Float64 comparisons of a graph before and after passes, with the same weights on both sides.

An exact pass must leave the lowered function unchanged; checking it numerically needs both
lowerings to compute with the same weights (``carry_weights``), in float64 so that rounding does not
hide a real difference, in training mode (batch statistics) and in eval mode (running statistics,
which a few training forward passes make differ from their initial values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from nasir.ir.graph import Graph
from nasir.lowering import NasirModule, lower
from nasir.passmanager import PassManager
from nasir.testing.weights import carry_weights

#: Makes an architecture parameter's values from its key and size (see ``one_hot_alpha``).
AlphaFn = Callable[[str, int], torch.Tensor]

_LOWERING_MODES = ("supernet", "fixed")
_RUN_MODES = ("eval", "train")  # eval first: training-mode forwards move the running statistics


def run_pipeline(graph: Graph, pipeline: str) -> tuple[Graph, PassManager]:
    """``graph`` after ``pipeline`` (e.g. ``"pms,reparam"``), and the manager that ran it (records, notes)."""
    pm = PassManager.parse(pipeline)
    return pm.run(graph), pm


def one_hot_alpha(index: int, scale: float = 40.0) -> AlphaFn:
    """Arch parameters that put (almost) all probability on original candidate ``index``."""
    def make(key: str, n: int) -> torch.Tensor:
        a = torch.zeros(n, dtype=torch.float64)
        a[index % n] = scale
        return a
    return make


def _lower64(graph: Graph, mode: str, arch: Mapping[str, int | str] | None, seed: int) -> NasirModule:
    return lower(graph, mode, arch=arch, seed=seed).double()


def _set_alpha(module: NasirModule, alpha: AlphaFn | None) -> None:
    if alpha is None or not hasattr(module, "arch"):
        return
    with torch.no_grad():
        for key, p in module.arch.items():
            p.copy_(alpha(key, p.numel()))


def _input(shape: Sequence[int], seed: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def compare(graph: Graph, pipeline: str, x_shape: Sequence[int] = (2, 3, 8, 8), alpha: AlphaFn | None = None,
            train: bool = True) -> tuple[torch.Tensor, torch.Tensor, Graph, PassManager]:
    """Lower ``graph`` before and after ``pipeline`` in float64 with the same weights; run both on one input.

    Returns (output before, output after, graph after, pass manager), for tests that check more
    than equality (e.g. that an approximation does change the output).
    """
    after_graph, pm = run_pipeline(graph, pipeline)
    before = _lower64(graph, "supernet", None, seed=0)
    after = _lower64(after_graph, "supernet", None, seed=1)
    _set_alpha(before, alpha)
    carry_weights(before, after, after_graph)
    before.train(train)
    after.train(train)
    x = _input(x_shape, seed=3)
    return before(x), after(x), after_graph, pm


def assert_equivalent(before_graph: Graph, after_graph: Graph, *, x_shape: Sequence[int], mode: str = "supernet",
                      arch: Mapping[str, int | str] | None = None, alpha: AlphaFn | None = None, steps: int = 0,
                      run_modes: Sequence[str] = _RUN_MODES, rtol: float = 1e-10, atol: float = 1e-10) -> None:
    """Assert that ``after_graph`` computes what ``before_graph`` does, in float64.

    Both are lowered in ``mode`` (``"supernet"``, or ``"fixed"`` at ``arch``; a sampled lowering is
    the fixed one at the sampled architecture); ``alpha`` sets the architecture parameters. Before
    comparing, ``before`` runs ``steps`` training-mode forward passes on random inputs, which moves
    its BatchNorm running statistics away from their initial values; then its weights and statistics
    are carried into ``after`` and both run on one input of shape ``x_shape`` in each of
    ``run_modes`` (``"eval"``, ``"train"``). A difference raises ``AssertionError`` naming the mode.
    """
    if mode not in _LOWERING_MODES:
        raise ValueError(f"mode must be one of {_LOWERING_MODES}, not {mode!r}")
    unknown = set(run_modes) - set(_RUN_MODES)
    if unknown:
        raise ValueError(f"run_modes must be among {_RUN_MODES}, not {sorted(unknown)}")
    before = _lower64(before_graph, mode, arch, seed=0)
    after = _lower64(after_graph, mode, arch, seed=1)
    _set_alpha(before, alpha)
    before.train()
    with torch.no_grad():
        for step in range(steps):
            before(_input(x_shape, seed=100 + step))
    carry_weights(before, after, after_graph)
    x = _input(x_shape, seed=3)
    for run_mode in (m for m in _RUN_MODES if m in run_modes):
        before.train(run_mode == "train")
        after.train(run_mode == "train")
        with torch.no_grad():
            expected, got = before(x), after(x)
        try:
            torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)
        except AssertionError as err:
            raise AssertionError(f"after_graph differs from before_graph in {run_mode} mode "
                                 f"(after {steps} training step(s)):\n{err}") from None


def assert_exact(graph: Graph, pipeline: str, *, x_shape: Sequence[int], steps: int = 2, **kwargs) -> Graph:
    """Run ``pipeline`` on ``graph``, check that it calls itself exact and that it is: the supernet
    lowered before and after computes the same in float64, in eval mode after ``steps`` training
    forward passes and in train mode (``assert_equivalent``; ``kwargs`` go there). Returns the graph after.
    """
    after_graph, pm = run_pipeline(graph, pipeline)
    assert pm.exact, f"pipeline {pipeline!r} declares itself approximate"
    assert_equivalent(graph, after_graph, x_shape=x_shape, steps=steps, **kwargs)
    return after_graph
