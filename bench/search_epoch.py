"""One search epoch of each method, with and without the TopoNAS passes (issue 10).

    python bench/search_epoch.py [--space std/nb201.nas] [-D C=4 -D N=1]
                                 [--methods darts,darts-2nd,pc-darts,gdas,spos] [--repeats 1]
                                 [--data tinyshapes] [--batch-size 64] [--device cpu] [--json out.json]

An *epoch* is one pass over the weight half of the DARTS split of the training set (``--train-portion
0.5``: 1000 TinyShapes images), i.e. ``1000 // batch`` steps of ``nasir.search.darts.SupernetSearch``
and the end-of-epoch validation pass (darts: supernet mode, an architecture step then a weight step;
darts-2nd: the same with the unrolled second-order hypergradient; pc-darts: darts on the supernet of
the ``partial-channel{k=4}`` pass, architecture steps from the first epoch (the method's 15 warm-up
epochs would leave one epoch without them); gdas: sampled mode with the hard Gumbel sampler; spos:
sampled mode with uniform paths, weights only). Every method runs with its published settings
(``SearchConfig.for_method``) except the batch size, which is the same for all. Per method and
pipeline it prints the compile-and-lower time, the epoch time, the time per step and the mean loss
of the epoch, and the process CPU time of the epoch (on a shared machine the figure to compare: it
leaves out the waits for a core; ``--threads 1`` by default so that it counts no spinning); the
pipelines are none and ``topo-simplify,reparam{kernel_norm=true}``. With
``--repeats N`` the configurations run N times, interleaved, and the medians are printed. The data
loading is the one ``nasir search`` uses (``--data``, augmentation of photos, ``--workers``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch

PIPELINES = {"none": "", "topo": "topo-simplify,reparam{kernel_norm=true}"}
#: bench name: (search method, DARTS order)
METHOD_RUNS = {"darts": ("darts", 1), "darts-2nd": ("darts", 2), "pc-darts": ("pc-darts", 1), "gdas": ("gdas", 1),
               "spos": ("spos", 1)}


def one_epoch(space: str, overrides: dict, run: str, pipeline: str, data, batch_size: int, device: str,
              workers: int) -> dict:
    from nasir.data.images import split_portion
    from nasir.frontends.elaborate import parse_file
    from nasir.lowering import lower
    from nasir.passmanager import PassManager
    from nasir.search.darts import SearchConfig, SupernetSearch
    from nasir.search.methods import METHODS

    method, order = METHOD_RUNS[run]
    defaults = METHODS[method]
    passes = ",".join(p for p in (defaults.pipeline, pipeline) if p)
    start = time.perf_counter()
    graph = PassManager.parse(passes, stats=False).run(parse_file(space, **overrides))
    model = lower(graph, defaults.mode, seed=0)
    compiled = time.perf_counter() - start
    train, val = split_portion(data.train, 0.5)
    steps = len(train) // batch_size
    config = SearchConfig.for_method(method, order=order, epochs=1, batch_size=batch_size, warmup_epochs=0,
                                     data=data.spec, augment=data.crop_flip, save_every=steps)
    cpu_start = time.process_time()
    log = SupernetSearch(model, config, device=device, workers=workers).run(train, val, progress=False)
    cpu = time.process_time() - cpu_start
    return {"method": run, "pipeline": passes or "none", "steps": steps, "compile_s": round(compiled, 2),
            "epoch_s": round(log.seconds, 2), "cpu_s": round(cpu, 2), "step_s": round(log.seconds / steps, 3),
            "mean_loss": round(sum(log.losses) / len(log.losses), 4)}


def main() -> None:
    from nasir.data import load_data
    from nasir.data.sources import space_resolution
    from nasir.frontends.elaborate import parse_file, parse_overrides, std_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default=str(std_path("nb201")))
    ap.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--methods", default=",".join(METHOD_RUNS), help=f"names from {list(METHOD_RUNS)}")
    ap.add_argument("--pipelines", default="none,topo", help=f"names from {sorted(PIPELINES)}")
    ap.add_argument("--data", default="tinyshapes")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=1, help="run every configuration N times, interleaved; medians")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.define)
    data = load_data(args.data, space_resolution(parse_file(args.space, **overrides)))
    configs = [(m, name) for m in args.methods.split(",") for name in args.pipelines.split(",")]
    runs: dict[tuple[str, str], list[dict]] = {c: [] for c in configs}
    header = (f"{'method':<9} {'pipeline':<8} {'rep':>3} {'steps':>5} {'compile s':>9} {'epoch s':>8} {'cpu s':>7} "
              f"{'s/step':>7} {'mean loss':>9}")
    print(header)
    for rep in range(args.repeats):
        for method, name in configs:
            torch.manual_seed(0)
            row = one_epoch(args.space, overrides, method, PIPELINES[name], data, args.batch_size, args.device,
                            args.workers)
            row["pipeline"] = name
            runs[(method, name)].append(row)
            print(f"{method:<9} {name:<8} {rep:>3} {row['steps']:>5} {row['compile_s']:>9.2f} {row['epoch_s']:>8.1f} "
                  f"{row['cpu_s']:>7.1f} {row['step_s']:>7.3f} {row['mean_loss']:>9.4f}", flush=True)
    rows = []
    print(f"\nmedians of {args.repeats} interleaved repetitions\n{header}")
    for (method, name), reps in runs.items():
        row = {**reps[0], **{k: statistics.median(r[k] for r in reps) for k in ("compile_s", "epoch_s", "cpu_s", "step_s")},
               "repeats": len(reps)}
        rows.append(row)
        print(f"{method:<9} {name:<8} {'med':>3} {row['steps']:>5} {row['compile_s']:>9.2f} {row['epoch_s']:>8.1f} "
              f"{row['cpu_s']:>7.1f} {row['step_s']:>7.3f} {row['mean_loss']:>9.4f}", flush=True)
    if args.json:
        meta = {"space": args.space, "overrides": overrides, "data": data.spec, "batch_size": args.batch_size,
                "repeats": args.repeats, "device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
                "machine": platform.machine(), "date": datetime.date.today().isoformat()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
