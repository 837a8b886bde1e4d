"""DNA benchmarks: feature-sharing rating (Alg. 1) vs per-path evaluation, and the exact search
(Alg. 2) on the full ~2 x 10^17 MBConv space of std/mbconv.nas.

    python bench/dna_rating.py [--device cpu|cuda] [--samples 256] [--threads 1]

Rating: one MBConv student block (3 cells of 2/3/4 layers, 4 ops per layer: 336 paths) on
32x32 features; both modes produce bit-identical scores (checked here too).
Search: per-path params/FLOPs from the IR cost model at 224x224 (DNA Table 1 space); scores are
synthetic (per-op contributions + noise, seeded) since no ImageNet supernet is trained here.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def bench_rating(device: str, samples: int) -> None:
    from nasir.dna.mbconv import SpaceSpec, student_space
    from nasir.dna.rating import candidate_forwards, rate_block

    torch.manual_seed(0)
    spec = SpaceSpec(cells=[[(1, 16)], [(2, 32), (3, 32), (4, 24)]], strides=[1, 2], kernels=[3, 5], expansions=[3, 6])
    block = student_space(spec, [32, 64]).blocks[1].to(device)
    x = torch.randn(samples, 32, 32, 32)
    g = torch.randn(samples, 64, 16, 16)
    times = {}
    for sharing in (True, False):
        rate_block(block, x[:8], g[:8], feature_sharing=sharing, device=device, costs=False)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        r = rate_block(block, x, g, batch_size=64, feature_sharing=sharing, device=device, costs=False)
        if device == "cuda":
            torch.cuda.synchronize()
        times[sharing] = (time.perf_counter() - start, r.scores)
    assert times[True][1] == times[False][1], "feature sharing changed the scores"
    print(f"rating one block: {block.size} paths, {samples} samples, {device}")
    print(f"  candidate forwards per batch: shared {candidate_forwards(block, True)}, "
          f"per path {candidate_forwards(block, False)}")
    print(f"  feature sharing {times[True][0]:.2f} s, per-path {times[False][0]:.2f} s, "
          f"speed-up {times[False][0] / times[True][0]:.2f}x, scores identical")


def synthetic_scores(graph, tables, seed: int = 0) -> list[list[float]]:
    """Per-op contributions falling with the op's cost, plus noise: structured like real ratings."""
    rng = np.random.default_rng(seed)
    out = []
    for table in tables:
        flops = np.array([f for _, f in table], dtype=np.float64)
        noise = rng.normal(0, 0.02, len(table))
        out.append(list(1.0 / np.sqrt(flops / flops.min()) + noise + rng.uniform(0, 0.1)))
    return out


def bench_search() -> None:
    import nasir
    from nasir.dna.ir_space import ir_path_costs
    from nasir.dna.search import constrained_search, pareto_front, traversal_search
    from nasir.passmanager import PassManager

    graph = PassManager.parse("dna-partition").run(nasir.compile_file("std/mbconv.nas"))
    tables = ir_path_costs(graph)
    scores = synthetic_scores(graph, tables)
    size = int(np.prod([len(t) for t in tables], dtype=object))
    print(f"search: std/mbconv.nas, {size:,} architectures ({[len(t) for t in tables]} paths per block)")
    for kind, col in (("params", 0), ("flops", 1)):
        costs = [[c[col] for c in t] for t in tables]
        lo, hi = sum(min(c) for c in costs), sum(max(c) for c in costs)
        for frac in (0.25, 0.5, 0.75):
            limit = lo + frac * (hi - lo)
            best_t = min(_timed(lambda c=costs, lim=limit: constrained_search(scores, c, lim))[1] for _ in range(3))
            best = constrained_search(scores, costs, limit)
            print(f"  {kind} <= {limit:,.0f}: score {best.score:.4f}, cost {best.cost:,} in {best_t * 1000:.1f} ms")
        front, t = _timed(lambda c=costs: pareto_front(scores, c))
        print(f"  Pareto front of score vs {kind}: {len(front)} points in {t * 1000:.1f} ms")
    # the published traversal on the first three blocks (4.6e8 combinations) for comparison
    costs = [[c[0] for c in t] for t in tables[:3]]
    sub = scores[:3]
    limit = sum(min(c) for c in costs) + 0.5 * (sum(max(c) for c in costs) - sum(min(c) for c in costs))
    ref, t_paper = _timed(lambda: traversal_search(sub, costs, limit))
    ours, t_ours = _timed(lambda: constrained_search(sub, costs, limit))
    assert abs(ref.score - ours.score) < 1e-9
    print(f"  first 3 blocks ({np.prod([len(c) for c in costs]):,} combinations): paper's Alg. 2 traversal "
          f"{t_paper:.2f} s, Pareto merge {t_ours * 1000:.1f} ms, same optimum")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-search", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, python "
          f"{platform.python_version()}" + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""))
    bench_rating(args.device, args.samples)
    if not args.skip_search:
        bench_search()


if __name__ == "__main__":
    main()
