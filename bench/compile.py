"""Compile-time benchmark: elaboration, passes and lowering of the standard spaces.

    python bench/compile.py [--repeat 3] [--passes canonicalize,dead-code] [--stats]

Prints the best-of-N wall time of each stage per space (after one warm-up that pays for imports
and the grammar build). Target (issue 2): the DARTS space end to end under 1 s. Passes run
verified, as ``nasir compile`` runs them; ``--stats`` also measures the graph before and after
every pass (what ``nasir compile --stats`` prints), which costs about as much as the passes.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from nasir.cli import stats_instruments
from nasir.frontends.elaborate import parse_file, std_path
from nasir.lowering import lower
from nasir.passmanager import PassManager

SPACES = {
    "darts": {},
    "nb201": {},
    "mbconv": {"resolution": 32},
    "resnet18": {},
    "vgg16": {},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--passes", default="canonicalize,dead-code")
    ap.add_argument("--stats", action="store_true", help="per-pass statistics, as `nasir compile --stats`")
    args = ap.parse_args()
    print(f"# python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads; passes: {args.passes}; stats: {args.stats}")
    print(f"{'space':<10}{'nodes':>7}{'elaborate ms':>14}{'passes ms':>11}{'lower ms':>10}{'total ms':>10}")
    parse_file(std_path("nb201"), N=1)  # warm-up: imports, grammar
    for name, overrides in SPACES.items():
        t_parse = t_pass = t_lower = float("inf")
        for _ in range(args.repeat):  # the `nasir compile` path: a fresh graph, passes in place
            start = time.perf_counter()
            graph = parse_file(std_path(name), **overrides)
            t1 = time.perf_counter()
            nodes = sum(1 for _ in graph.walk())
            t2 = time.perf_counter()
            instruments = stats_instruments() if args.stats else []
            graph = PassManager.parse(args.passes, stats=args.stats, copy_input=False, instruments=instruments).run(graph)
            t3 = time.perf_counter()
            mode = "supernet" if graph.arch else "fixed"
            lower(graph, mode, arch={} if mode == "fixed" else None)
            t4 = time.perf_counter()
            t_parse, t_pass, t_lower = min(t_parse, t1 - start), min(t_pass, t3 - t2), min(t_lower, t4 - t3)
        total = t_parse + t_pass + t_lower
        print(f"{name:<10}{nodes:>7}{t_parse * 1e3:>14.1f}{t_pass * 1e3:>11.1f}{t_lower * 1e3:>10.1f}{total * 1e3:>10.1f}")

if __name__ == "__main__":
    main()
