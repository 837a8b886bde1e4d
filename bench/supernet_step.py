"""Supernet training-step cost before and after the TopoNAS passes (issue 3).

    python bench/supernet_step.py [--spaces darts,exaggerated] [--configs none,pms,fms,pms+fms,all]
                                  [--steps 10] [--warmup 3] [--batch 64] [--json out.json]

One *step* is a first-order DARTS search step: an architecture step (forward + backward on a
validation batch, Adam on the architecture parameters) and a weight step (forward + backward on a
training batch, gradient clipping, SGD with momentum on the weights); data is random, resident on
the device. Per space and pipeline it prints the mean step time (after warm-up steps, which also
let cuDNN autotune) and the peak allocated memory over the timed steps, and both relative to the
space without passes.

Spaces (NNI/TopoNAS variants: no BatchNorm after the pools): ``darts`` is ``std/darts.nas`` with
``pool_bn=false`` (C=16, 8 layers); ``exaggerated`` is ``bench/toponas_exaggerated.nas``, the
15-candidate edge of TopoNAS Table VI. Input 32x32, batch 64.

Pipelines: none; pms; fms; pms+fms (``pms,fms``); all (``topo-simplify,reparam{kernel_norm=true}``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

PIPELINES = {
    "none": "",
    "pms": "pms",
    "fms": "fms",
    "pms+fms": "pms,fms",
    "all": "topo-simplify,reparam{kernel_norm=true}",
}


def _bootstrap() -> None:
    """Map ``nasir.passes`` etc. onto the source folders when the project is not installed (GPU box)."""
    try:
        import nasir.passes  # noqa: F401

        return
    except ImportError:
        pass
    sys.path.insert(0, str(ROOT))
    import nasir

    for sub in ("grammar", "frontends", "kernels", "passes"):
        folder = ROOT / sub
        spec = importlib.util.spec_from_file_location(f"nasir.{sub}", folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"nasir.{sub}"] = module
        spec.loader.exec_module(module)
        setattr(nasir, sub, module)


def build_graph(space: str):
    from nasir.frontends.elaborate import parse_file, std_path

    if space == "darts":
        return parse_file(std_path("darts"), C=16, layers=8, pool_bn=False)
    if space == "exaggerated":
        return parse_file(ROOT / "bench" / "toponas_exaggerated.nas", C=16, layers=8)
    raise SystemExit(f"unknown space {space!r}")


def measure(graph, pipeline: str, device: str, batch: int, steps: int, warmup: int) -> dict:
    from nasir.lowering import lower
    from nasir.passes._topo_stats import edge_counts
    from nasir.passmanager import PassManager

    t0 = time.perf_counter()
    g = PassManager.parse(pipeline).run(graph) if pipeline else graph
    compile_s = time.perf_counter() - t0
    counts = list(edge_counts(g).values())
    model = lower(g, "supernet", seed=0).to(device)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    gen = torch.Generator(device=device).manual_seed(0)
    xs = [torch.randn(batch, 3, 32, 32, device=device, generator=gen) for _ in range(2)]
    ys = [torch.randint(0, 10, (batch,), device=device, generator=gen) for _ in range(2)]
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        a_opt.zero_grad(set_to_none=True)
        loss_fn(model(xs[1]), ys[1]).backward()
        a_opt.step()
        w_opt.zero_grad(set_to_none=True)
        loss_fn(model(xs[0]), ys[0]).backward()
        torch.nn.utils.clip_grad_norm_(model.weight_parameters(), 5.0)
        w_opt.step()

    cuda = device.startswith("cuda")
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    ms = (time.perf_counter() - start) / steps * 1e3
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
    out = {"step_ms": ms, "peak_mib": peak, "compile_s": compile_s,
           # the most common per-edge count: the stride-1 edges (TopoNAS Table II units)
           "edge_modules": Counter(c.total for c in counts).most_common(1)[0][0] if counts else 0,
           "params": sum(p.numel() for p in model.weight_parameters())}
    return out


def saved_activations(graph, pipeline: str, batch: int) -> dict:
    """MiB of distinct tensors autograd keeps for backward during one training forward.

    A device-independent proxy of the activation memory a step needs (CPU is enough); the peak
    on a GPU adds weights, gradients, optimizer state and the allocator's working set.
    """
    from nasir.lowering import lower
    from nasir.passmanager import PassManager

    g = PassManager.parse(pipeline).run(graph) if pipeline else graph
    model = lower(g, "supernet", seed=0)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter) and t.requires_grad is not None:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    x = torch.randn(batch, 3, 32, 32)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).sum()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    total = sum(n for ptr, n in seen.items() if ptr not in params)
    del loss
    return {"saved_mib": total / 2**20}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spaces", default="darts,exaggerated")
    ap.add_argument("--configs", default=",".join(PIPELINES))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--saved", action="store_true",
                    help="only measure the activations saved for backward in one forward (works on CPU)")
    args = ap.parse_args(argv)
    _bootstrap()
    torch.backends.cudnn.benchmark = True
    dev_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"# {datetime.date.today()} device={dev_name} torch={torch.__version__} python={platform.python_version()} "
          f"batch={args.batch} steps={args.steps} warmup={args.warmup} fp32 (TF32 convs: "
          f"{torch.backends.cudnn.allow_tf32})", flush=True)
    results = []
    if args.saved:
        for space in args.spaces.split(","):
            graph = build_graph(space)
            print(f"\n| {space} (batch {args.batch}) | saved for backward MiB | vs none |\n|---|---:|---:|")
            base = None
            for config in args.configs.split(","):
                r = saved_activations(graph, PIPELINES[config], args.batch)
                base = base or r
                print(f"| {config} | {r['saved_mib']:.0f} | {r['saved_mib'] / base['saved_mib'] - 1:+.0%} |", flush=True)
                results.append({"space": space, "config": config, **r})
        return
    for space in args.spaces.split(","):
        graph = build_graph(space)
        base = None
        print(f"\n| {space} | edge modules | step ms | vs none | peak MiB | vs none | weights | passes s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        for config in args.configs.split(","):
            r = measure(graph, PIPELINES[config], args.device, args.batch, args.steps, args.warmup)
            gc.collect()  # the model of the last configuration is gone: start the next one from a clean device
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            base = base or r
            dt = r["step_ms"] / base["step_ms"] - 1
            dm = r["peak_mib"] / base["peak_mib"] - 1 if base["peak_mib"] == base["peak_mib"] else float("nan")
            mem = f"{r['peak_mib']:.0f} | {dm:+.0%}" if dm == dm else "n/a (CPU: see --saved) | "
            print(f"| {config} | {r['edge_modules']} | {r['step_ms']:.1f} | {dt:+.0%} | {mem} "
                  f"| {r['params']:,} | {r['compile_s']:.1f} |", flush=True)
            results.append({"space": space, "config": config, **r})
    if args.json:
        Path(args.json).write_text(json.dumps({"device": dev_name, "torch": torch.__version__, "results": results},
                                              indent=1))


if __name__ == "__main__":
    main()
