"""Several seeds of ``bench/dance_demo.py`` in one table: means, spreads and DANCE's paired margins.

    python bench/dance_seeds.py RUN.json [RUN.json ...] [--column acc_direct|acc_finetuned]

Each RUN.json is what ``dance_demo.py --out`` wrote for one seed (same budgets and methods). For every
budget it prints, per method, the mean accuracy over the seeds with its range, then DANCE's margin over
each other method: the mean over seeds of the paired difference (same seed, same supernet) with a 95%
t interval (n - 1 degrees of freedom), and how many seeds DANCE won.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

#: Two-sided 95% quantiles of Student's t for 1..9 degrees of freedom.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of a 95% t interval; the interval is the mean itself for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = _T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def table(runs: list[dict], column: str) -> str:
    methods = list(dict.fromkeys(r["method"] for r in runs[0]["rows"]))
    budgets = sorted({r["budget"] for r in runs[0]["rows"]})
    acc = {(r["budget"], r["method"]): [] for r in runs[0]["rows"]}
    for run in runs:
        for r in run["rows"]:
            acc[(r["budget"], r["method"])].append(100 * r[column])
    others = [m for m in methods if m != "dance"]
    head = "| budget | " + " | ".join(f"{m} (mean, range)" for m in methods)
    head += "".join(f" | dance - {m} (95% t, wins)" for m in others if "dance" in methods) + " |"
    lines = [head, "|---:|" + "---:|" * (len(methods) + (len(others) if "dance" in methods else 0))]
    for b in budgets:
        cells = [f"{statistics.fmean(acc[(b, m)]):.1f} ({min(acc[(b, m)]):.1f}-{max(acc[(b, m)]):.1f})" for m in methods]
        if "dance" in methods:
            for m in others:
                diffs = [d - o for d, o in zip(acc[(b, "dance")], acc[(b, m)])]
                mean, lo, hi = t_interval(diffs)
                cells.append(f"{mean:+.1f} [{lo:+.1f}, {hi:+.1f}], {sum(d > 0 for d in diffs)}/{len(diffs)}")
        lines.append(f"| {b:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--column", choices=("acc_direct", "acc_finetuned"), default="acc_direct")
    args = ap.parse_args(argv)
    runs = [json.loads(Path(p).read_text()) for p in args.runs]
    seeds = [r["args"]["seed"] for r in runs]
    full = [100 * r["full_acc"] for r in runs]
    print(f"seeds {seeds}; gates open: {statistics.fmean(full):.1f}% ({min(full):.1f}-{max(full):.1f}); "
          f"accuracy column {args.column} (%)\n")
    print(table(runs, args.column))
    return 0


if __name__ == "__main__":
    sys.exit(main())
