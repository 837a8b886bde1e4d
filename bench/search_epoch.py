"""One search epoch of each method, with and without the TopoNAS passes (issue 10).

    python bench/search_epoch.py [--space std/nb201.nas] [-D C=4 -D N=1] [--methods darts,gdas,spos]
                                 [--data tinyshapes] [--batch-size 64] [--device cpu] [--json out.json]

An *epoch* is one pass over the weight half of the DARTS split of the training set (``--train-portion
0.5``: 1000 TinyShapes images), i.e. ``1000 // batch`` steps of ``nasir.search.darts.SupernetSearch``
(darts: supernet mode, an architecture step then a weight step; gdas: sampled mode with the hard
Gumbel sampler; spos: sampled mode with uniform paths, weights only). Per method and pipeline it
prints the compile-and-lower time, the epoch time, the time per step and the mean loss of the
epoch; the pipelines are none and ``topo-simplify,reparam{kernel_norm=true}``. The data loading
is the one ``nasir search`` uses (``--data``, augmentation of photos, ``--workers``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import torch

PIPELINES = {"none": "", "topo": "topo-simplify,reparam{kernel_norm=true}"}


def one_epoch(space: str, overrides: dict, method: str, pipeline: str, data, batch_size: int, device: str,
              workers: int) -> dict:
    from nasir.data.images import split_portion
    from nasir.frontends.elaborate import parse_file
    from nasir.lowering import lower
    from nasir.passmanager import PassManager
    from nasir.search.darts import SearchConfig, SupernetSearch

    start = time.perf_counter()
    graph = PassManager.parse(pipeline, stats=False).run(parse_file(space, **overrides))
    model = lower(graph, "supernet" if method == "darts" else "sampled", seed=0)
    compiled = time.perf_counter() - start
    train, val = split_portion(data.train, 0.5)
    steps = len(train) // batch_size
    config = SearchConfig(method=method, steps=steps, batch_size=batch_size, data=data.spec, augment=data.crop_flip,
                          save_every=steps)
    log = SupernetSearch(model, config, device=device, workers=workers).run(train, val, progress=False)
    return {"method": method, "pipeline": pipeline or "none", "steps": steps, "compile_s": round(compiled, 2),
            "epoch_s": round(log.seconds, 2), "step_s": round(log.seconds / steps, 3),
            "mean_loss": round(sum(log.losses) / len(log.losses), 4)}


def main() -> None:
    from nasir.data import load_data
    from nasir.data.sources import space_resolution
    from nasir.frontends.elaborate import parse_file, parse_overrides, std_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default=str(std_path("nb201")))
    ap.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--methods", default="darts,gdas,spos")
    ap.add_argument("--pipelines", default="none,topo", help=f"names from {sorted(PIPELINES)}")
    ap.add_argument("--data", default="tinyshapes")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    overrides = parse_overrides(args.define)
    data = load_data(args.data, space_resolution(parse_file(args.space, **overrides)))
    rows = []
    print(f"{'method':<7} {'pipeline':<8} {'steps':>5} {'compile s':>9} {'epoch s':>8} {'s/step':>7} {'mean loss':>9}")
    for method in args.methods.split(","):
        for name in args.pipelines.split(","):
            torch.manual_seed(0)
            row = one_epoch(args.space, overrides, method, PIPELINES[name], data, args.batch_size, args.device,
                            args.workers)
            row["pipeline"] = name
            rows.append(row)
            print(f"{method:<7} {name:<8} {row['steps']:>5} {row['compile_s']:>9.2f} {row['epoch_s']:>8.1f} "
                  f"{row['step_s']:>7.3f} {row['mean_loss']:>9.4f}", flush=True)
    if args.json:
        meta = {"space": args.space, "overrides": overrides, "data": data.spec, "batch_size": args.batch_size,
                "device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
                "machine": platform.machine(), "date": datetime.date.today().isoformat()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
