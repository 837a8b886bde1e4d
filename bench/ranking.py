"""Ranking harness: do predictors order a space's architectures as stand-alone training does?

    nice -n 5 python bench/ranking.py SPACE.nas [-D name=value ...] [--archs 12] [--arch-seed 0]
        [--data tinyshapes-hard] [--seeds 0 1 2] [--max-epochs 30] [--patience 3] [--images 0]
        [--spos-steps 0] [--dna RATINGS.json] [--predictor FILE.json ...] [--resamples 2000] [--json out.json]

Samples ``--archs`` distinct architectures uniformly, trains each with every seed to a plateau
(``nasir.ranking.train``: early stopping on a held-out tenth of the training split, test
accuracy of the best held-out weights), then reports the ground truth's split-half reliability
and, for every predictor, Kendall tau and Spearman rho with bootstrap intervals (architectures and
seeds resampled). Predictors: parameter count and FLOPs (IR cost model) always; an SPOS supernet
trained for ``--spos-steps`` (evaluated per path on the held-out split); DNA ratings from
``nasir dna rate`` on the same space (``--dna``); any other scores, e.g. DANCE's, as predictor
files (``--predictor``, format ``nasir/schema/predictor.schema.json``, keyed by the labels this
command prints with ``--list``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("space")
    ap.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--arch-seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="print the sampled architectures' labels and stop")
    ap.add_argument("--data", default="tinyshapes-hard")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--images", type=int, default=0, help="training images used (0: all but the held-out tenth)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--spos-steps", type=int, default=0, help="train an SPOS supernet this long as a predictor (0: none)")
    ap.add_argument("--dna", default=None, metavar="RATINGS", help="a `nasir dna rate` file of this space")
    ap.add_argument("--predictor", action="append", default=[], metavar="FILE", help="a predictor file (repeatable)")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch

    from nasir.api import load_graph
    from nasir.data import load_data
    from nasir.data.images import augmentation_for
    from nasir.data.sources import check_classes, space_resolution
    from nasir.diagnostics import NasirError
    from nasir.frontends.elaborate import parse_overrides
    from nasir.io import atomic_write_text
    from nasir.ranking.predictors import arch_label, cost_scores, dna_scores, file_scores, sample_architectures, spos_scores
    from nasir.ranking.study import Study, run_ground_truth
    from nasir.ranking.train import Budget, holdout_split

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        graph = load_graph(args.space, **parse_overrides(args.defines))
        archs = sample_architectures(graph, args.archs, args.arch_seed)
        labels = [arch_label(graph, a) for a in archs]
        if args.list:
            print("\n".join(labels))
            return 0
        budget = Budget(max_epochs=args.max_epochs, patience=args.patience, images=args.images, lr=args.lr,
                        batch_size=args.batch_size)
        budget.check()
        data = load_data(args.data, space_resolution(graph))
        check_classes(graph, data)
        predictors: dict[str, list[float]] = cost_scores(graph, archs)
        if args.dna:
            predictors["dna"] = dna_scores(graph, archs, args.dna)
        for path in args.predictor:
            name, scores = file_scores(graph, archs, path)
            predictors[name] = scores
        start = time.perf_counter()
        if args.spos_steps:
            fit, held = holdout_split(data.train, budget.holdout, budget.images)
            predictors["spos"] = spos_scores(graph, archs, fit, held, args.spos_steps, args.arch_seed,
                                             device=args.device, log=print)
        spos_seconds = time.perf_counter() - start
        runs = run_ground_truth(graph, archs, data.train, data.test, args.seeds, budget,
                                augmentation_for(data.crop_flip), args.device, log=lambda s: print(s, flush=True))
    except NasirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    study = Study(labels, [[r.test_accuracy for r in row] for row in runs], predictors)
    print("\n".join(study.report(args.resamples)))
    if args.json:
        doc = {"space": args.space, "defines": args.defines, "data": args.data, "seeds": args.seeds,
               "budget": budget.__dict__, "spos_steps": args.spos_steps, "spos_seconds": spos_seconds,
               "runs": [[r.to_json() for r in row] for row in runs], **study.to_json(args.resamples),
               "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
               "device": args.device}
        atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
