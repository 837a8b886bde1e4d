"""DANCE demo: accuracy vs kept parameters, DANCE against score-only pruning and random selection.

The paper's Fig. 3 comparison on bundled data (TinyShapes by default, ``--data`` as elsewhere): one ResNet-18 (std/resnet18.nas)
gets DANCE gates (dance-gates pass), is trained through stages 1 and 2 once (stage 2 with a random
global budget per batch from --train-range, so one supernet serves every budget), and then, for
every budget, each method picks channels from the *same* supernet at the *same* per-group counts:

* dance: the select gates' architecture for the data (``GatedNetwork.generate``, one call);
* score: the top channels of the importance score alone (the paper's Score-based Pruning);
* random: uniformly random channels;
* magnitude: largest BatchNorm |gamma| (a classical reference, not in the paper).

Each pick is extracted to a physically smaller network, its BatchNorm statistics recalibrated on
training images, and evaluated ("direct", the paper's Stage 2 column) and again after
--finetune steps of fine-tuning (the "Retrained" column). Prints a Markdown table and writes JSON.

    python bench/dance_demo.py --device cuda --out dance_demo.json
    python bench/dance_demo.py --quick            # a CPU smoke run of the whole script
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

try:  # an installed nasir (package-dir mapping: nasir.frontends lives in frontends/)
    import nasir.frontends  # noqa: F401
except ImportError:  # pragma: no cover - a bare checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nasir.api import compile_file  # noqa: E402
from nasir.dance.baselines import masks_for  # noqa: E402
from nasir.dance.gated import GatedNetwork, count_parameters  # noqa: E402
from nasir.dance.train import DanceConfig, DanceTrainer, accuracy, finetune, recalibrate_bn  # noqa: E402
from nasir.data import DEFAULT, load_data  # noqa: E402
from nasir.ir.stats import graph_stats  # noqa: E402
from nasir.passmanager import PassManager  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--stage1", type=int, default=600)
    ap.add_argument("--stage2", type=int, default=400)
    ap.add_argument("--finetune", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=2, help="T architectures per batch in stage 2")
    ap.add_argument("--train-range", default="0.4,0.95")
    ap.add_argument("--budgets", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--methods", default="dance,score,random,magnitude")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=DEFAULT, help="what --data names elsewhere, at 32x32 (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--out", help="write results as JSON here")
    ap.add_argument("--quick", action="store_true", help="tiny CPU smoke run")
    args = ap.parse_args()
    if args.quick:
        args.width, args.stage1, args.stage2, args.finetune, args.batch_size = 8, 4, 3, 2, 16
        args.budgets = "0.5,0.9"

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    lo, hi = (float(v) for v in args.train_range.split(","))
    data = load_data(args.data, 32)
    train, test = data.train, data.test
    space = compile_file("std/resnet18.nas", width=args.width, classes=data.classes)
    graph = PassManager.parse("dance-gates{budget=0.5}").run(space)
    net = GatedNetwork(graph, seed=args.seed)
    config = DanceConfig(stage1_steps=args.stage1, stage2_steps=args.stage2, batch_size=args.batch_size,
                         samples=args.samples, budget_range=(lo, hi), seed=args.seed)
    trainer = DanceTrainer(net, config, device=device, progress=False)

    start = time.perf_counter()
    trainer.train(train)
    train_s = time.perf_counter() - start
    net.set_mode("off")
    full_params = count_parameters(net.backbone)
    full_flops = graph_stats(graph).flops
    calib = train.normalized(1024)[0]
    recalibrate_bn(net, calib, device=device)  # stage 2 ran BN over sampled subnets; measure the full one fairly
    full_acc = accuracy(net, test, device=device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu'}), "
          f"torch {torch.__version__}")
    print(f"ResNet-18 width {args.width}: {full_params:,} params, {full_flops / 1e6:.1f} M MACs; "
          f"{len(net.groups)} gate groups; stages 1+2 ({args.stage1}+{args.stage2} steps, T={args.samples}) "
          f"in {train_s:.1f} s; gates open (BN recalibrated): test accuracy {full_acc:.1%}")

    rows = []
    for budget in (float(b) for b in args.budgets.split(",")):
        for method in args.methods.split(","):
            t0 = time.perf_counter()
            masks = masks_for(method, net, budget, data=train.normalized(512)[0],
                              generator=torch.Generator().manual_seed(args.seed))
            pick_ms = (time.perf_counter() - t0) * 1e3
            small_graph, small = net.extract(masks)
            recalibrate_bn(small, calib, device=device)
            direct = accuracy(small, test, device=device)
            tuned = direct
            if args.finetune > 0:
                small = finetune(small, train, args.finetune, config, device, progress=False)
                tuned = accuracy(small, test, device=device)
            stats = graph_stats(small_graph)
            rows.append({"budget": budget, "method": method, "params": count_parameters(small), "macs": stats.flops,
                         "kept_params": count_parameters(small) / full_params, "acc_direct": direct,
                         "acc_finetuned": tuned, "pick_ms": pick_ms})
            r = rows[-1]
            print(f"  budget {budget:.1f} {method:<9} params {r['params']:>10,} ({r['kept_params']:.1%}) "
                  f"MACs {r['macs'] / 1e6:7.1f} M  direct {direct:6.1%}  fine-tuned {tuned:6.1%}  pick {pick_ms:.0f} ms",
                  flush=True)

    print("\n| budget | kept params | MACs (M) | " + " | ".join(
        f"{m} direct / fine-tuned" for m in args.methods.split(",")) + " |")
    print("|---:|---:|---:|" + "---:|" * len(args.methods.split(",")))
    for budget in sorted({r["budget"] for r in rows}):
        sel = [r for r in rows if r["budget"] == budget]
        cells = " | ".join(f"{r['acc_direct']:.1%} / {r['acc_finetuned']:.1%}" for r in sel)
        print(f"| {budget:.1f} | {sel[0]['params']:,} ({sel[0]['kept_params']:.0%}) | {sel[0]['macs'] / 1e6:.1f} | {cells} |")
    total = time.perf_counter() - start
    print(f"\ntotal {total:.1f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "args": vars(args), "device": str(device), "torch": torch.__version__, "full_params": full_params,
            "full_macs": full_flops, "full_acc": full_acc, "train_seconds": train_s, "total_seconds": total, "rows": rows,
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
