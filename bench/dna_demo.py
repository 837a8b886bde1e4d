"""End-to-end DNA demo on the bundled TinyShapes dataset (GPU: a few minutes).

    python bench/dna_demo.py [--device cuda] [--out DIR] [--quick]
    python bench/dna_demo.py --device cpu --small --resolution 16 --standalone-images 600 --seeds 2 \
        --teacher-steps 400 --distill-steps 300 --standalone-steps 150       # CPU, 2 cores

1. train a small MBConv teacher (3 blocks) on TinyShapes;
2. cache its block features, distill a student supernet block by block (Eq. 6);
3. rate every path of every block with feature sharing (Alg. 1, Eq. 7) on held-out images;
4. search the best student under two parameter constraints (Alg. 2, exact) and one FLOPs one;
5. train a random sample of students stand-alone from scratch and report Kendall tau / Spearman
   rho / Pearson R between their summed block scores and their test accuracy.

Results go to stdout and ``DIR/dna_demo.json``. ``--quick`` shrinks every step (CPU smoke run).

Stand-alone accuracies must differ between students for a rank correlation to mean anything: at
32x32 with 2000 images and long training every student reaches 99-100% on TinyShapes (first GPU
run). ``--resolution`` (smaller pictures make the striped/dotted classes harder),
``--standalone-images`` (fewer training images) and ``--seeds`` (accuracy averaged over several
initializations, less noise per student) make the comparison informative; the spread of the
stand-alone accuracies is printed next to the correlations, and with ``--seeds 2`` or more the rank
agreement of two training seeds of the same students: the ground truth's own reliability, an upper
bound on what any rating can reach.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import torch

from nasir.data.tinyshapes import load_tiny
from nasir.dna.distill import DistillConfig, train_blocks
from nasir.dna.mbconv import BlockSpec, ChainNet, NetSpec, SpaceSpec, arch_to_spec, student_space
from nasir.dna.metrics import rank_report
from nasir.dna.rating import rate_block, save_ratings
from nasir.dna.search import constrained_search, pareto_front
from nasir.dna.teacher import TeacherBlocks, compute_features
from nasir.dna.train import accuracy, resize, test_loss, train_classifier

TEACHER = NetSpec([BlockSpec([(3, 6), (5, 6)], 32, 32, 1), BlockSpec([(3, 6), (5, 6)], 64, 64, 2),
                   BlockSpec([(3, 6), (5, 6)], 96, 96, 2)], stem=16, classes=10)
SPACE = SpaceSpec(cells=[[(1, 16), (2, 16)], [(1, 32), (2, 32), (3, 24)], [(2, 48), (3, 48)]], strides=[1, 2, 2],
                  kernels=[3, 5], expansions=[3, 6], stem=16)
# --small (CPU): the same structure at about half the width
SMALL_TEACHER = NetSpec([BlockSpec([(3, 4), (5, 4)], 16, 16, 1), BlockSpec([(3, 4), (5, 4)], 32, 32, 2),
                         BlockSpec([(3, 4), (5, 4)], 48, 48, 2)], stem=8, classes=10)
SMALL_SPACE = SpaceSpec(cells=[[(1, 8), (2, 8)], [(1, 16), (2, 16), (3, 12)], [(2, 24), (3, 24)]], strides=[1, 2, 2],
                        kernels=[3, 5], expansions=[2, 4], stem=8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="runs/dna_demo")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sample", type=int, default=12, help="stand-alone trained students for Kendall tau")
    ap.add_argument("--standalone-steps", type=int, default=120,
                    help="short stand-alone training: at 600 steps every student reaches 99.4-100%% on TinyShapes "
                         "and the ranking is noise (first GPU run)")
    ap.add_argument("--standalone-images", type=int, default=2000, help="training images for stand-alone students")
    ap.add_argument("--seeds", type=int, default=1, help="stand-alone trainings per student (accuracy averaged)")
    ap.add_argument("--resolution", type=int, default=32, help="image side for every step (TinyShapes is 32)")
    ap.add_argument("--teacher-steps", type=int, default=1500)
    ap.add_argument("--distill-steps", type=int, default=800)
    ap.add_argument("--small", action="store_true", help="half-width teacher and space (CPU runs)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    q = args.quick
    teacher_spec, space_spec = (SMALL_TEACHER, SMALL_SPACE) if args.small else (TEACHER, SPACE)
    dev = args.device
    torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log: dict = {"device": torch.cuda.get_device_name() if dev == "cuda" else platform.machine(),
                 "torch": torch.__version__}
    images, labels = load_tiny("train")
    test_x, test_y = load_tiny("test")
    images, test_x = resize(images, args.resolution), resize(test_x, args.resolution)
    test = (test_x, test_y)
    log["resolution"] = args.resolution
    log["small"] = args.small
    rate_x = images[1500:]  # held out from distillation, used for rating

    # 1. teacher
    torch.manual_seed(0)
    teacher = ChainNet(teacher_spec)
    t = time.perf_counter()
    train_classifier(teacher, images, labels, steps=30 if q else args.teacher_steps, batch_size=128, lr=0.1, device=dev)
    log["teacher"] = {"params": sum(p.numel() for p in teacher.parameters()),
                      "test_accuracy": accuracy(teacher, *test, device=dev), "seconds": time.perf_counter() - t}
    print(f"teacher: {log['teacher']['params']:,} params, test accuracy {log['teacher']['test_accuracy']:.1%} "
          f"({log['teacher']['seconds']:.0f} s)")

    # 2. features + block-wise distillation
    tb = TeacherBlocks(teacher, teacher.boundaries)
    feats = compute_features(tb, images, device=dev)
    widths = [int(f.shape[1]) for f in feats[1:]]
    torch.manual_seed(0)
    space = student_space(space_spec, widths)
    print(f"student space: {space.size:,} architectures, paths per block {[b.size for b in space.blocks]}")
    t = time.perf_counter()
    cfg = DistillConfig(steps=20 if q else args.distill_steps, batch_size=64, lr=3e-3)
    logs = train_blocks(list(space.blocks), [f[:1500] for f in feats], cfg, out / "blocks", device=dev)
    log["distill"] = {"steps": cfg.steps, "final_losses": [lg.losses[-1] if lg.losses else None for lg in logs],
                      "seconds": time.perf_counter() - t}
    print(f"distilled {len(logs)} blocks x {cfg.steps} steps in {log['distill']['seconds']:.0f} s, "
          f"final MSE {[round(x, 4) for x in log['distill']['final_losses'] if x is not None]}")

    # 3. rating with feature sharing on held-out images
    t = time.perf_counter()
    ratings = [rate_block(b, feats[k][1500:], feats[k + 1][1500:], device=dev, name=f"block{k + 1}")
               for k, b in enumerate(space.blocks)]
    save_ratings(out / "ratings.json", ratings)
    log["rating_seconds"] = time.perf_counter() - t
    print(f"rated {sum(len(r.scores) for r in ratings)} paths on {rate_x.shape[0]} images in {log['rating_seconds']:.1f} s")

    # 4. search under constraints
    scores = [r.scores for r in ratings]
    params = [r.params for r in ratings]
    flops = [r.flops for r in ratings]
    lo, hi = sum(min(p) for p in params), sum(max(p) for p in params)
    searched = []
    f_lo, f_hi = sum(min(f) for f in flops), sum(max(f) for f in flops)
    for name, costs, limit in (("params<=30%", params, lo + 0.3 * (hi - lo)), ("params<=70%", params, lo + 0.7 * (hi - lo)),
                               ("flops<=50%", flops, f_lo + 0.5 * (f_hi - f_lo))):
        t = time.perf_counter()
        best = constrained_search(scores, costs, limit)
        arch = [r.paths[i] for r, i in zip(ratings, best.indices)]
        searched.append((name, arch, best))
        print(f"search {name} (limit {limit:,.0f}): score {best.score:.4f}, cost {best.cost:,}, "
              f"{(time.perf_counter() - t) * 1000:.1f} ms; arch {arch}")
    log["pareto_params"] = len(pareto_front(scores, params))

    # 5. stand-alone training of a random sample (+ the searched students) vs their ratings
    rng = random.Random(0)
    sample = [[rng.choice(list(b.paths())) for b in space.blocks] for _ in range(args.sample)]
    steps = 30 if q else args.standalone_steps
    t = time.perf_counter()
    rows = []
    for tag, arch in [(f"random{i}", a) for i, a in enumerate(sample)] + [(n, a) for n, a, _ in searched]:
        spec = arch_to_spec(space_spec, widths, arch)
        accs, losses = [], []
        for seed in range(args.seeds):
            torch.manual_seed(1 + seed)
            net = ChainNet(spec)
            train_classifier(net, images[:args.standalone_images], labels[:args.standalone_images], steps=steps,
                             batch_size=128, lr=0.1, seed=seed, device=dev)
            accs.append(accuracy(net, *test, device=dev))
            losses.append(test_loss(net, *test, device=dev))
        acc = sum(accs) / len(accs)
        score = sum(r.scores[space.blocks[k].path_index(p)] for k, (r, p) in enumerate(zip(ratings, arch)))
        n_params = sum(p.numel() for p in net.parameters())
        rows.append({"name": tag, "arch": [[c, list(o)] for c, o in arch], "score": score, "params": n_params,
                     "test_accuracy": acc, "test_accuracy_per_seed": accs, "test_loss": sum(losses) / len(losses),
                     "test_loss_per_seed": losses})
        print(f"  {tag:<12} score {score:.4f}  params {n_params:>8,}  test accuracy {acc:.1%}")
        (out / "dna_demo.json").write_text(json.dumps({**log, "standalone": rows}, indent=1) + "\n")  # partial
    rand = [r for r in rows if r["name"].startswith("random")]
    # searched students last: the ranking needs only the random sample
    report = rank_report([-r["score"] for r in rand], [r["test_accuracy"] for r in rand])
    # the same correlations against parameter count: does the rating know more than "bigger is better"?
    by_size = rank_report([r["params"] for r in rand], [r["test_accuracy"] for r in rand])
    accs = [r["test_accuracy"] for r in rand]
    log.update(standalone=rows, standalone_steps=steps, standalone_images=args.standalone_images, seeds=args.seeds,
               standalone_seconds=time.perf_counter() - t, ranking=report, ranking_by_params=by_size)
    print(f"stand-alone accuracies of the {len(rand)} random students: {min(accs):.1%} .. {max(accs):.1%}")
    # the test loss as a second, less quantized ground truth (lower is better)
    by_loss = rank_report([-r["score"] for r in rand], [-r["test_loss"] for r in rand])
    log["ranking_by_test_loss"] = by_loss
    if args.seeds >= 2:
        # is the ground truth itself reproducible? the same students, seeds split in two halves
        half = args.seeds // 2

        def split(key: str, part: slice) -> list[float]:
            return [sum(r[key][part]) / len(r[key][part]) for r in rand]

        for key in ("test_accuracy_per_seed", "test_loss_per_seed"):
            agree = rank_report(split(key, slice(0, half)), split(key, slice(half, None)))
            log[f"seed_agreement_{key.removesuffix('_per_seed')}"] = agree
            print(f"ground-truth reliability, {key.removesuffix('_per_seed')} of seeds [0, {half}) vs "
                  f"[{half}, {args.seeds}): Kendall tau {agree['kendall_tau']:.3f}, Spearman rho {agree['spearman_rho']:.3f}")
    print(f"ranking against test loss: Kendall tau {by_loss['kendall_tau']:.3f}, Spearman rho {by_loss['spearman_rho']:.3f}")
    print(f"ranking on {len(rand)} random students: Kendall tau {report['kendall_tau']:.3f}, "
          f"Spearman rho {report['spearman_rho']:.3f}, Pearson R {report['pearson_r']:.3f}")
    print(f"baseline, params as the predictor: Kendall tau {by_size['kendall_tau']:.3f}, "
          f"Spearman rho {by_size['spearman_rho']:.3f}")
    log["total_seconds"] = time.perf_counter() - t0
    (out / "dna_demo.json").write_text(json.dumps(log, indent=1) + "\n")
    print(f"total {log['total_seconds']:.0f} s -> {out / 'dna_demo.json'}")


if __name__ == "__main__":
    main()
