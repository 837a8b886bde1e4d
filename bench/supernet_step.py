"""Supernet training-step cost before and after the TopoNAS passes (issues 3 and 17).

    python bench/supernet_step.py [--spaces darts,exaggerated] [--configs none,pms,fms,pms+fms,all]
                                  [--steps 10] [--warmup 3] [--repeat 3] [--batch 64] [--ops]
                                  [--compile-backend inductor] [--json out.json]

One *step* is a first-order DARTS search step: an architecture step (forward + backward on a
validation batch, Adam on the architecture parameters) and a weight step (forward + backward on a
training batch, gradient clipping, SGD with momentum on the weights); data is random, resident on
the device. All configurations of a space are built first and warmed up (which also lets cuDNN
autotune); then ``--repeat`` timed runs of ``--steps`` steps each go round the configurations,
interleaved, in an order rotated every repetition, so that a change of the machine's load hits
every configuration alike. Per configuration it prints the medians over the runs of the wall time
and of the process CPU time per step (the CPU time is what a shared CPU box measures reliably with
one thread: other processes' load does not enter it; the range of the runs is in brackets), the
CPU time relative to the first configuration, on CUDA the peak memory a step allocates above what
was allocated before it, and with ``--ops`` the ATen calls of one step.

Spaces (NNI/TopoNAS variants: no BatchNorm after the pools): ``darts`` is ``std/darts.nas`` with
``pool_bn=false`` (C=16, 8 layers); ``exaggerated`` is ``bench/toponas_exaggerated.nas``, the
15-candidate edge of TopoNAS Table VI. Input 32x32, batch 64.

Pipelines: none; pms; fms; pms+fms (``pms,fms``); topo (``topo-simplify``: PMS and FMS to a
fixpoint); all (``topo-simplify,reparam{kernel_norm=true}``, merged convs in the form the cost model
picks); a configuration ``NAME+compile`` is NAME with the supernet under ``torch.compile``
(``--compile-backend``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import platform
import statistics
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
    "topo": "topo-simplify",
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


class Runner:
    """One configuration of one space: its lowered supernet, optimizers, data and training step."""

    def __init__(self, graph, config: str, device: str, batch: int, backend: str):
        from nasir.lowering import lower
        from nasir.passes._topo_stats import edge_counts
        from nasir.passmanager import PassManager

        pipeline = PIPELINES[config.removesuffix("+compile")]
        t0 = time.perf_counter()
        g = PassManager.parse(pipeline, stats=False).run(graph) if pipeline else graph
        self.compile_s = time.perf_counter() - t0
        counts = list(edge_counts(g).values())
        # the most common per-edge count: the stride-1 edges (TopoNAS Table II units)
        self.edge_modules = Counter(c.total for c in counts).most_common(1)[0][0] if counts else 0
        self.model = lower(g, "supernet", seed=0).to(device)
        self.forward = torch.compile(self.model, backend=backend) if config.endswith("+compile") else self.model
        self.params = sum(p.numel() for p in self.model.weight_parameters())
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        self.a_opt = torch.optim.Adam(self.model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        gen = torch.Generator(device=device).manual_seed(0)
        self.xs = [torch.randn(batch, 3, 32, 32, device=device, generator=gen) for _ in range(2)]
        self.ys = [torch.randint(0, 10, (batch,), device=device, generator=gen) for _ in range(2)]
        self.cuda = device.startswith("cuda")

    def step(self) -> None:
        loss_fn = torch.nn.functional.cross_entropy
        self.a_opt.zero_grad(set_to_none=True)
        loss_fn(self.forward(self.xs[1]), self.ys[1]).backward()
        self.a_opt.step()
        self.w_opt.zero_grad(set_to_none=True)
        loss_fn(self.forward(self.xs[0]), self.ys[0]).backward()
        torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), 5.0)
        self.w_opt.step()

    def timed(self, steps: int) -> tuple[float, float, float]:
        """(wall ms, process CPU ms, peak MiB above what was allocated before) per step over ``steps``."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            resident = torch.cuda.memory_allocated()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.step()
        if self.cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = (torch.cuda.max_memory_allocated() - resident) / 2**20 if self.cuda else float("nan")
        return wall / steps * 1e3, cpu / steps * 1e3, peak

    def aten_calls(self) -> tuple[int, int]:
        """ATen calls of one step: as dispatched below autograd (TorchDispatchMode; a custom op counts
        once), and every aten:: event torch.profiler records (ops called inside ops too)."""
        from torch.utils._python_dispatch import TorchDispatchMode

        class Count(TorchDispatchMode):
            calls = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                Count.calls += 1
                return func(*args, **(kwargs or {}))

        with Count():
            self.step()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            self.step()
        return Count.calls, sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


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
    ap.add_argument("--steps", type=int, default=10, help="steps per timed run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per configuration, interleaved")
    ap.add_argument("--ops", action="store_true", help="also count the ATen calls of one step")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the NAME+compile configs")
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
        configs = args.configs.split(",")
        runners = {c: Runner(graph, c, args.device, args.batch, args.compile_backend) for c in configs}
        for runner in runners.values():
            for _ in range(args.warmup):
                runner.step()
        runs: dict[str, list[tuple[float, float, float]]] = {c: [] for c in configs}
        for rep in range(args.repeat):  # interleaved, the order rotated every repetition
            for c in configs[rep % len(configs):] + configs[: rep % len(configs)]:
                runs[c].append(runners[c].timed(args.steps))
        ops = {c: runners[c].aten_calls() for c in configs} if args.ops else {}
        print(f"\n| {space} | edge modules | step ms (wall) | CPU ms | vs {configs[0]} (CPU) | peak MiB | weights "
              f"| passes s |{' aten calls (dispatch / profiler) |' if ops else ''}")
        print(f"|---|---:|---:|---:|---:|---:|---:|---:|{'---:|' if ops else ''}", flush=True)
        base = statistics.median(r[1] for r in runs[configs[0]])
        for c in configs:
            wall, cpu = (statistics.median(r[k] for r in runs[c]) for k in (0, 1))
            peak = max(r[2] for r in runs[c])
            spread = f"{min(r[1] for r in runs[c]):,.0f}-{max(r[1] for r in runs[c]):,.0f}"
            row = (f"| {c} | {runners[c].edge_modules} | {wall:,.0f} | {cpu:,.0f} ({spread}) | {cpu / base - 1:+.0%} "
                   f"| {'n/a' if peak != peak else f'{peak:,.0f}'} | {runners[c].params:,} | {runners[c].compile_s:.1f} |")
            if ops:
                row += f" {ops[c][0]:,} / {ops[c][1]:,} |"
            print(row, flush=True)
            results.append({"space": space, "config": c, "runs": runs[c], "aten_calls": ops.get(c),
                            "edge_modules": runners[c].edge_modules})
        del runners
        gc.collect()
    if args.json:
        Path(args.json).write_text(json.dumps({"device": dev_name, "torch": torch.__version__, "results": results},
                                              indent=1))


if __name__ == "__main__":
    main()
