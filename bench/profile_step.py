"""Where one supernet forward + backward spends its time, per ATen / nasir op (torch.profiler).

    python bench/profile_step.py [--space darts] [--pipelines "pms,fms;topo-simplify,reparam{kernel_norm=true}"]
                                 [--batch 8] [--threads 1] [--rows 14]

Pipelines are separated by ``;`` (a pipeline itself contains commas). Spaces as in
``bench/supernet_step.py``: ``darts`` (std/darts.nas, pool_bn=false, C=16, 8 layers) or
``exaggerated`` (TopoNAS Table VI edge).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from supernet_step import build_graph  # noqa: E402

from nasir.lowering import lower  # noqa: E402
from nasir.passmanager import PassManager  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="darts")
    ap.add_argument("--pipelines", default="pms,fms;topo-simplify,reparam{kernel_norm=true}")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=14)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    graph = build_graph(args.space)
    for pipeline in args.pipelines.split(";"):
        g = PassManager.parse(pipeline, stats=False).run(graph) if pipeline else graph
        model = lower(g, "supernet", seed=0).to(args.device)
        x = torch.randn(args.batch, 3, 32, 32, device=args.device)
        model(x).sum().backward()  # warm-up
        with torch.profiler.profile() as prof:
            model(x).sum().backward()
        print(f"===== {args.space}: {pipeline or '(no passes)'}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))


if __name__ == "__main__":
    main()
