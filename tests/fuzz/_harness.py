"""What every fuzz case must end in: success or a located ``NasirError``, within a time and memory limit.

``bounded`` runs one case under a CPU-time limit, a (longer) wall-clock limit and an address-space
limit, so a hang or an allocation explosion fails the case (with the input in hypothesis' report)
instead of stalling CI or the machine. CPU time is what counts, so that the long profile, run nice'd
on a busy machine, is not cut short; the wall-clock limit catches a case blocked without computing.

``compile_cleanly`` is the oracle for ``.nas`` text: the front end either builds a verified graph,
which the rest of the compiler then summarizes, serializes and (when small) lowers, or raises a
``NasirError`` with a location. Any other exception fails the test: nothing
here catches ``Exception``.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import settings

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import Elaborator
from nasir.ir.cost import graph_cost
from nasir.ir.graph import Graph
from nasir.summary import summary

#: A case computing longer (CPU time) has hung: the slowest limit hit (a million elaboration steps) takes ~4 s.
CASE_SECONDS = 60
#: A case that takes this many times longer in wall-clock time is blocked (reading a FIFO, say).
WALL_FACTOR = 20
#: Memory a case may allocate beyond what the process holds when it starts.
CASE_MEMORY = 3 << 30
#: Graphs up to this size go through IR JSON and back (half a second for the 5,000 nodes of DARTS).
ROUND_TRIP_MAX_NODES = 2_000
#: Graphs up to this size are also lowered to torch.fx (lowering allocates every weight).
LOWER_MAX_NODES = 2_500
LOWER_MAX_PARAMS = 30_000_000


def examples(ci: int, long: int) -> settings:
    """Settings with ``ci`` examples in CI and ``long`` under ``NASIR_FUZZ=long`` (profiles in conftest.py)."""
    return settings(max_examples=long if os.environ.get("NASIR_FUZZ") == "long" else ci)


class CaseTimeout(BaseException):
    """A case ran past ``CASE_SECONDS``; a BaseException so that no ``except Exception`` swallows it."""


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


_TIMERS = {signal.SIGPROF: signal.ITIMER_PROF, signal.SIGALRM: signal.ITIMER_REAL}


@contextmanager
def bounded(seconds: float = CASE_SECONDS, memory: int = CASE_MEMORY) -> Iterator[None]:
    """Run the ``with`` body under ``seconds`` of CPU time (``WALL_FACTOR`` times that of wall-clock time)
    and ``memory`` bytes more address space."""

    def on_limit(signum: int, frame: object) -> None:
        signal.setitimer(_TIMERS[signum], 1.0)  # again in a second, should this one land in a __del__
        clock = "CPU" if signum == signal.SIGPROF else "wall-clock"
        raise CaseTimeout(f"the case ran longer than its {clock} time limit")

    previous = {signum: signal.signal(signum, on_limit) for signum in _TIMERS}
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * WALL_FACTOR)
    try:
        yield
    finally:
        for signum, timer in _TIMERS.items():
            signal.setitimer(timer, 0)
            signal.signal(signum, previous[signum])
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check_located(error: NasirError) -> None:
    """A front-end error names a file and line, and renders without failing."""
    assert error.loc is not None, f"unlocated error: {error.message}"
    assert error.loc.line >= 1 and error.loc.col >= 1, error.loc
    error.render()


def exercise(graph: Graph) -> None:
    """What the CLI does with a compiled graph: count, summarize, serialize, and lower it if it is small."""
    graph.search_space_size()
    graph.search_space_size(input_rule=True)
    summary(graph, max_choices=12)
    nodes = sum(1 for _ in graph.walk())
    if nodes <= ROUND_TRIP_MAX_NODES:
        Graph.from_json(graph.to_json())
    if nodes <= LOWER_MAX_NODES and graph_cost(graph).params <= LOWER_MAX_PARAMS:
        from nasir.lowering import lower

        try:
            lower(graph, "supernet" if graph.arch else "fixed", arch=None if graph.arch else {})
        except NasirError:
            pass  # lowering refuses some graphs (with a message); it must not crash on them


def compile_cleanly(text: str, filename: str = "fuzz.nas", path: Path | None = None) -> Graph | None:
    """Compile ``text`` (or the file ``path``): a graph, exercised downstream, or ``None`` after a located error."""
    with bounded():
        try:
            elaborator = Elaborator()
            if path is not None:
                elaborator.load_file(path)
            else:
                elaborator.load_text(text, filename)
            graph = elaborator.build()
        except NasirError as error:
            if path is None or "cannot read" not in error.message:
                check_located(error)
            return None
        exercise(graph)
        return graph
