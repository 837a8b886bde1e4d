"""Training throughput of the DARTS_V2 evaluation network, eager against ``torch.compile`` (issue 11).

    python bench/train_throughput.py [-D C=36 -D layers=20 -D eval=true] [--batch-size 32] [--steps 3]
                                     [--reps 5] [--backend inductor] [--device cpu] [--amp bf16] [--json out.json]

Two copies of the network (``std/darts.nas`` at the published DARTS_V2 genotype, the same initial
weights) train with ``nasir.train.trainer.Trainer`` and the DARTS recipe (SGD, clip 5, the
auxiliary loss, drop path at a fixed 0.1: a compiled graph holds the probability as a constant,
so it is fixed for the measurement), one in eager mode and one with ``compile``. After a warm-up
(the compilation, and the first steps of both), the two alternate, ``--steps`` training steps at
a time, for ``--reps`` repetitions, so that load from other jobs on a shared machine hits both
alike; the result is the median images per second of each, and their ratio. Batches are random
tensors of the network's input shape (the data pipeline is not measured).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch


def build(overrides: dict, seed: int):
    from nasir.frontends.elaborate import parse_file, std_path
    from nasir.ir.genotype import DARTS_V2
    from nasir.lowering import lower

    graph = parse_file(std_path("darts"), **overrides)
    return graph, lower(graph, "fixed", arch=DARTS_V2, seed=seed)


def main() -> None:
    from nasir.frontends.elaborate import parse_overrides
    from nasir.runtime import set_drop_path
    from nasir.train.trainer import TrainConfig, Trainer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-D", "--define", action="append", default=None, metavar="NAME=VALUE",
                    help="network parameters (default: C=36, layers=20, eval=true: the DARTS paper's CIFAR network)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="training steps per timed repetition")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="", choices=("", "bf16", "fp16"))
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    defines = args.define if args.define is not None else ["C=36", "layers=20", "eval=true"]
    overrides = parse_overrides(defines)
    graph, _ = build(overrides, 0)
    shape = graph.body.inputs[0].shape
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(args.batch_size, *shape, generator=g), torch.randint(0, 10, (args.batch_size,), generator=g))
    trainers = {}
    for mode in ("eager", "compiled"):
        model = build(overrides, 0)[1]
        config = TrainConfig.for_recipe("darts", steps=1, batch_size=args.batch_size, amp=args.amp,
                                        channels_last=args.channels_last,
                                        compile=args.backend if mode == "compiled" else "")
        trainer = Trainer(model, config, device=args.device)
        set_drop_path(model, 0.1)
        trainers[mode] = trainer
    params = sum(p.numel() for p in trainers["eager"].model.parameters())
    print(f"# {' '.join(f'-D {d}' for d in defines)}: {params:,} parameters (auxiliary head included); batch "
          f"{args.batch_size}, device {args.device}, amp {args.amp or 'fp32'}, channels-last {args.channels_last}, "
          f"backend {args.backend}")
    print(f"# python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}, "
          f"{torch.get_num_threads()} threads, {datetime.date.today()}")

    def steps(trainer: Trainer, n: int) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            trainer.train_step(batch)  # returns floats: every step ends synchronized
        return time.perf_counter() - start

    warm = {mode: steps(trainer, 2) for mode, trainer in trainers.items()}
    print(f"warm-up (2 steps; compiled: compilation included): eager {warm['eager']:.1f} s, "
          f"compiled {warm['compiled']:.1f} s")
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    for rep in range(args.reps):
        order = ("eager", "compiled") if rep % 2 == 0 else ("compiled", "eager")
        for mode in order:
            rates[mode].append(args.steps * args.batch_size / steps(trainers[mode], args.steps))
        print(f"rep {rep + 1}: " + ", ".join(f"{m} {rates[m][-1]:.2f} img/s" for m in ("eager", "compiled")), flush=True)
    medians = {m: statistics.median(r) for m, r in rates.items()}
    print(f"median images/s: eager {medians['eager']:.2f}, compiled {medians['compiled']:.2f}, "
          f"speed-up {medians['compiled'] / medians['eager']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"defines": defines, "parameters": params, "batch_size": args.batch_size, "device": args.device,
                       "amp": args.amp, "backend": args.backend, "torch": torch.__version__, "rates": rates,
                       "medians": medians, "warmup_s": warm}, f, indent=2)


if __name__ == "__main__":
    main()
