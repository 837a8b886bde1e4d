"""Does TinyShapes-Hard separate architectures? Stand-alone runs to a plateau, several seeds.

    nice -n 5 python bench/hard_dataset.py --net cnn --seeds 0 1 2 [--images 0] [--max-epochs 30] [--json out.json]
    nice -n 5 python bench/hard_dataset.py --net resnet18 --width 16 --seeds 0 1 2 [--device cuda]

``cnn`` is a small plain network (conv 3x3 at ``--width``, twice and four times that many
channels, each followed by batch norm, ReLU and 2x2 max pooling, then global pooling and a linear
layer); ``resnet18`` is
std/resnet18.nas at ``--width``. Both are compiled from .nas text and lowered by nasir. Training:
``nasir.ranking.train.train_to_plateau`` (SGD, early stopping on a held-out tenth of the training
split, learning-rate drops on plateaus), crop-and-flip augmentation. Prints the test accuracy of
every seed, their mean and spread, and the generation time of the data.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

SMALL_CNN = """network small_cnn(classes = 24, resolution = 32, width = 16) {
  input x: [3, resolution, resolution]
  h = (conv(width, 3) -> bn -> relu -> max_pool(2, 2)
       -> conv(2 * width, 3) -> bn -> relu -> max_pool(2, 2)
       -> conv(4 * width, 3) -> bn -> relu -> max_pool(2, 2)
       -> global_avg_pool -> linear(classes))(x)
  output h
}
"""


def build_graph(net: str, width: int, classes: int, resolution: int):
    from nasir.api import compile_file
    from nasir.frontends.elaborate import parse_string

    if net == "resnet18":
        return compile_file("std/resnet18.nas", width=width, classes=classes, resolution=resolution)
    return parse_string(SMALL_CNN, filename="small_cnn.nas", classes=classes, resolution=resolution, width=width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=["cnn", "resnet18"], default="cnn")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--data", default="tinyshapes-hard")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--images", type=int, default=0, help="training images used (0: all but the held-out tenth)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from nasir.data import load_data
    from nasir.data.images import augmentation_for
    from nasir.lowering import lower
    from nasir.ranking.train import Budget, train_to_plateau

    start = time.perf_counter()
    data = load_data(args.data, args.resolution)
    generated = time.perf_counter() - start
    graph = build_graph(args.net, args.width, data.classes, args.resolution)
    params = sum(p.numel() for p in lower(graph, mode="fixed", seed=0).parameters())
    print(f"{args.data} at {args.resolution}: {len(data.train)} train / {len(data.test)} test images, "
          f"{data.classes} classes, loaded in {generated:.1f} s; {args.net} (width {args.width}) {params:,} parameters")
    budget = Budget(max_epochs=args.max_epochs, patience=args.patience, images=args.images, lr=args.lr)
    augmentation = augmentation_for(data.crop_flip)
    runs = []
    for seed in args.seeds:
        result = train_to_plateau(lambda s: lower(graph, mode="fixed", seed=s), data.train, data.test, seed, budget,
                                  augmentation, args.device, log=lambda line: print(line, flush=True))
        print(f"seed {seed}: test {result.test_accuracy:.4f} (held-out {result.val_accuracy:.4f}, best epoch "
              f"{result.best_epoch} of {result.epochs}, {result.seconds:.0f} s)", flush=True)
        runs.append(result)
    accs = [r.test_accuracy for r in runs]
    spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"{args.net} width {args.width}: test accuracy mean {statistics.mean(accs):.4f}, sd {spread:.4f}, "
          f"range {min(accs):.4f}-{max(accs):.4f} over seeds {args.seeds}")
    if args.json:
        doc = {"net": args.net, "width": args.width, "params": params, "data": args.data, "resolution": args.resolution,
               "budget": budget.__dict__, "runs": [r.to_json() for r in runs], "seeds": args.seeds,
               "generation_seconds": generated, "torch": torch.__version__, "python": platform.python_version(),
               "threads": torch.get_num_threads(), "machine": platform.machine(), "device": args.device}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
