"""Start-up time of the quick commands: wall and CPU time of whole ``nasir`` processes.

    python bench/startup.py [--runs 15] [--importtime]

Runs every command ``--runs`` times, interleaved (one run of each in turn, so that a change in the
machine's load hits all of them alike), and prints the median wall time and the median CPU time
(user + system of the child) of each, next to a bare ``python -c pass``. On a shared machine the
CPU time is the steadier figure: wall time also counts the time the process waited for a core.
``--importtime`` adds the modules that cost most to import, from one ``python -X importtime`` run
of each command (cumulative microseconds, top-level imports only).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import date

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "nasir passes": [sys.executable, "-m", "nasir.cli", "passes"],
    "nasir count std/darts.nas": [sys.executable, "-m", "nasir.cli", "count", "std/darts.nas"],
    "nasir show std/darts.nas": [sys.executable, "-m", "nasir.cli", "show", "std/darts.nas"],
}


def timed_run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``, which must succeed."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def top_imports(argv: list[str], count: int = 6) -> list[tuple[str, int]]:
    """The ``count`` top-level imports with the largest cumulative time (microseconds)."""
    err = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], check=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True).stderr
    rows = [m.groups() for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)", err)]
    top = sorted(((name, int(cumulative)) for cumulative, name in rows), key=lambda r: -r[1])
    return top[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--importtime", action="store_true", help="also list the costliest top-level imports")
    args = ap.parse_args()
    import torch  # only for the version line; the measured processes import what they import

    print(f"# {date.today()}, {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"python {platform.python_version()}, torch {torch.__version__}; {args.runs} interleaved runs")
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            wall, cpu = timed_run(argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print("| command | median wall s | median CPU s |")
    print("|---|---:|---:|")
    for name in COMMANDS:
        print(f"| `{name}` | {statistics.median(walls[name]):.3f} | {statistics.median(cpus[name]):.3f} |")
    if args.importtime:
        for name, argv in list(COMMANDS.items())[1:]:
            print(f"{name}: " + ", ".join(f"{mod} {us / 1000:.0f} ms" for mod, us in top_imports(argv)))


if __name__ == "__main__":
    main()
