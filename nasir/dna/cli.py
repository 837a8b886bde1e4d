"""``nasir dna partition|train|rate|search|plus``: the DNA family from the command line.

``register(subparsers)`` adds the ``dna`` command to the ``nasir`` CLI. Bad input raises
``DNAError`` (a ``NasirError``), which ``nasir`` prints without a traceback, exiting with status 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from nasir.dna.errors import DNAError


def register(subparsers) -> None:
    from nasir.cli import output_option
    from nasir.cli_options import checkpoint_options, device_option, integer, number
    from nasir.data import add_data_option

    p = subparsers.add_parser("dna", help="DNA block-wise distillation NAS: partition, train, rate, search, plus")
    sub = p.add_subparsers(dest="dna_command", required=True, metavar="STEP")

    def space_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("file", help="a .nas search space with DNA blocks (or std/mbconv.nas)")
        q.add_argument("-D", "--define", action="append", metavar="NAME=VALUE", default=[])
        q.add_argument("--entry")
        q.add_argument("--auto", action="store_true", help="partition at stage boundaries, ignoring annotations")
        q.add_argument("--blocks", type=integer(0), default=0, help="number of blocks (align with an N-block teacher)")

    q = sub.add_parser("partition", help="split a space into DNA blocks and report each block's space")
    space_args(q)
    output_option(q, "--json", metavar="FILE", help="also write the block table as JSON")
    q.set_defaults(func=cmd_partition)

    q = sub.add_parser("train", help="train a teacher (if none), cache its features, distill every block")
    space_args(q)
    output_option(q, "--workdir", directory=True, required=True, help="teacher, features and block checkpoints live here")
    q.add_argument("--teacher-steps", type=integer(0), default=300)
    q.add_argument("--images", type=integer(0), default=0, help="use the first N training images (0: all 2000)")
    q.add_argument("--steps", type=integer(0), default=200, help="training steps per block")
    q.add_argument("--batch-size", type=integer(2), default=32)
    q.add_argument("--lr", type=number(above=0), default=2e-3)
    q.add_argument("--loss", choices=("mse", "ssl"), default="mse", help="mse: DNA (Eq. 6); ssl: DNA++ (Eq. 10-11)")
    q.add_argument("--workers", type=integer(1), default=1, help="train blocks in this many processes")
    q.add_argument("--seed", type=int, default=0)
    device_option(q)
    checkpoint_options(q, every_steps=50)
    add_data_option(q)
    q.set_defaults(func=cmd_train)

    q = sub.add_parser("rate", help="score every path of every block with feature sharing (Alg. 1)")
    space_args(q)
    output_option(q, "--workdir", directory=True, required=True)
    q.add_argument("--samples", type=integer(1), default=256, help="held-out images to rate on")
    q.add_argument("--no-sharing", action="store_true", help="evaluate each path separately (reference)")
    q.add_argument("--top", type=integer(0), default=5, help="paths per block to print")
    device_option(q)
    add_data_option(q, default=None)
    q.set_defaults(func=cmd_rate)

    q = sub.add_parser("search", help="best architecture under a params/FLOPs constraint (Alg. 2, exact)")
    q.add_argument("ratings", help="ratings.json from `nasir dna rate`")
    q.add_argument("--cost", choices=("params", "flops"), default="params")
    q.add_argument("--limit", type=number(above=0), help="maximum summed cost of the blocks (none: unconstrained)")
    q.add_argument("--pareto", action="store_true", help="print the Pareto front of score vs cost")
    output_option(q, "-o", "--output", metavar="FILE", help="write the architecture (and front) as JSON")
    q.set_defaults(func=cmd_search)

    q = sub.add_parser("plus", help="DNA+ generations on the bundled dataset (MBConv student space)")
    output_option(q, "--workdir", directory=True, required=True)
    q.add_argument("--space", metavar="JSON", help="student SpaceSpec as JSON (default: a small 3-block space)")
    q.add_argument("--generations", type=integer(1), default=2)
    q.add_argument("--depth", type=number(above=0), default=1.2)
    q.add_argument("--width", type=number(above=0), default=1.1)
    q.add_argument("--resolution", type=number(above=0), default=1.0)
    q.add_argument("--cost", choices=("params", "flops"), default="params")
    q.add_argument("--limit", type=number(above=0))
    q.add_argument("--steps", type=integer(0), default=100, help="distillation steps per block")
    q.add_argument("--loss", choices=("mse", "ssl"), default="mse", help="block loss: mse (DNA) or ssl (DNA++)")
    q.add_argument("--images", type=integer(0), default=0, help="use the first N training images (0: all 2000)")
    q.add_argument("--teacher-steps", type=integer(0), default=300)
    device_option(q)
    checkpoint_options(q, every_steps=50)
    add_data_option(q)
    q.set_defaults(func=cmd_plus)


# -- helpers -------------------------------------------------------------------------------------
def _partitioned(args: argparse.Namespace):
    from nasir.api import load_graph
    from nasir.frontends.elaborate import parse_overrides
    from nasir.passmanager import PassManager

    graph = load_graph(args.file, args.entry, **parse_overrides(args.define))
    opts = []
    if args.auto:
        opts.append("auto=true")
    if args.blocks:
        opts.append(f"blocks={args.blocks}")
    pipeline = "dna-partition" + ("{" + ",".join(opts) + "}" if opts else "")
    pm = PassManager.parse(pipeline)
    return pm.run(graph), pm


def _space_words(args: argparse.Namespace) -> list[str]:
    """The space arguments as ``args`` gave them, for the "next:" commands."""
    from nasir.cli_options import space_arguments

    return space_arguments(args) + (["--auto"] if args.auto else []) + (["--blocks", str(args.blocks)] if args.blocks else [])


def _train_command(args: argparse.Namespace, config, data: str, images: int, *extra: str) -> list[str]:
    """``nasir dna train`` in ``args.workdir`` with the distillation options of ``config`` (a
    ``DistillConfig``) on the first ``images`` images (0: all) of ``data``: the command that trains,
    or finishes training, those blocks."""
    words = ["dna", "train", *_space_words(args), "--workdir", args.workdir, "--data", data]
    words += ["--images", str(images)] if images else []
    return words + ["--steps", str(config.steps), "--batch-size", str(config.batch_size), "--lr", repr(config.lr),
                    "--loss", config.loss, "--seed", str(config.seed), *extra]


def _first_images(images, labels, n: int, batch_size: int):
    """``--images N``: the first N training images, checked before any training starts."""
    if n < 0 or (n and n < batch_size):
        raise DNAError(f"--images {n}: need at least one distillation batch ({batch_size} images), or 0 for all")
    return (images[:n], labels[:n]) if n else (images, labels)


def _data(spec: str, graph=None):
    """``--data`` as normalized tensors (DNA caches features of fixed inputs: no augmentation), at
    the space's input resolution when it has one; returns spec, train images, labels, test set."""
    from nasir.data import load_data
    from nasir.data.sources import check_classes, space_resolution

    data = load_data(spec, space_resolution(graph) if graph is not None else None)
    if graph is not None:
        check_classes(graph, data)
    images, labels = data.train.normalized()
    return data.spec, images, labels, data.test.normalized()


def _data_spec(text: str) -> str:
    from nasir.data import parse_data_spec

    return str(parse_data_spec(text))


def _space_for(graph, workdir: Path):
    from nasir.dna.ir_space import space_from_graph

    space, head, names = space_from_graph(graph)
    return space, names


# -- commands ------------------------------------------------------------------------------------
def cmd_partition(args: argparse.Namespace) -> int:
    from nasir.dna.blocks import block_infos

    graph, _ = _partitioned(args)
    infos = block_infos(graph)
    print(f"{graph.name}: {len(infos)} blocks")
    for info in infos:
        print("  " + info.line())
    print(f"whole space: {graph.search_space_size()} architectures")
    if args.json:
        from nasir.io import atomic_write_text

        doc = {"network": graph.name, "size": str(graph.search_space_size()), "blocks": [i.to_json() for i in infos]}
        atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")
    from nasir.cli_options import next_step

    next_step(["dna", "train", *_space_words(args), "--workdir", "dna-work"],
              note="add --teacher-steps 20 --steps 20 --images 256 for a quick first run")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from nasir.distributed import processes

    with processes(args.device) as procs:  # one, or every process torchrun started (nasir.distributed)
        return _train(args, procs)


def _train(args: argparse.Namespace, procs) -> int:
    """``nasir dna train``; under torchrun process 0 trains the teacher and caches its features, the
    others read them from the work directory, and every process distills its share of the blocks
    (``nasir.dna.distill.rank_share``) on its own device."""
    import torch

    from nasir.cli_options import next_step
    from nasir.dna.distill import DistillConfig, block_checkpoint, read_block_checkpoint, train_blocks
    from nasir.dna.pipeline import get_teacher
    from nasir.dna.teacher import TeacherBlocks, cached_features

    start = time.perf_counter()
    workdir = Path(args.workdir)
    graph, _ = _partitioned(args)
    spec, images, labels, test = _data(args.data, graph)
    images, labels = _first_images(images, labels, args.images, args.batch_size)
    workdir.mkdir(parents=True, exist_ok=True)
    device = str(procs.device)

    def teacher_features() -> list[torch.Tensor]:
        teacher = get_teacher(workdir, graph, images, labels, test, args.teacher_steps, device,
                              batch_size=min(64, images.shape[0]), checkpoint_every=args.checkpoint_every,
                              checkpoint_minutes=args.checkpoint_minutes)
        tb = TeacherBlocks(teacher, teacher.boundaries)
        return cached_features(tb, images, workdir / "features.safetensors", device=device, data=spec)

    feats = teacher_features() if procs.main else None
    procs.barrier()
    feats = feats if feats is not None else teacher_features()  # process 0's files
    torch.manual_seed(args.seed)
    space, names = _space_for(graph, workdir)
    config = DistillConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, loss=args.loss,
                           checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes)
    rerun = _train_command(args, config, args.data, args.images, "--teacher-steps", str(args.teacher_steps),
                           "--workers", str(args.workers), "--device", args.device)
    args.interrupted_hint = (f"next: nasir {shlex.join(rerun)}  # the same command: finished blocks are kept, "
                             "unfinished ones continue from their last checkpoint")
    logs = train_blocks(list(space.blocks), feats, config, workdir / "blocks", workers=args.workers,
                        device=device, progress=procs.main)
    procs.barrier()  # every block is trained: process 0 reports the others' from their checkpoints
    mine = {log.block for log in logs}
    for k in range(len(space.blocks) if procs.main else 0):
        if k not in mine:
            losses = read_block_checkpoint(block_checkpoint(workdir / "blocks", k))[1].losses
            print(f"{names[k]}: {space.blocks[k].size} paths, final loss "
                  f"{f'{losses[-1]:.4f}' if losses else 'unknown'} (trained by another process)")
    for log in logs:
        last = f"{log.losses[-1]:.4f}" if log.losses else "unknown"
        done_before = log.resumed_from == config.steps
        print(f"{names[log.block]}: {space.blocks[log.block].size} paths, final loss {last}"
              + (" (already trained)" if done_before else f", resumed at step {log.resumed_from}" if log.resumed_from else ""))
    others = f" here, {len(space.blocks) - len(logs)} in the other processes" if procs.distributed else ""
    print(f"trained {len(logs)} blocks{others} in {time.perf_counter() - start:.1f} s; checkpoints in {workdir / 'blocks'}")
    next_step(["dna", "rate", *_space_words(args), "--workdir", args.workdir])
    return 0


def cmd_rate(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from nasir.cli_options import next_step
    from nasir.dna.blocks import path_names
    from nasir.dna.distill import block_checkpoint, load_trained_block
    from nasir.dna.rating import rate_block, save_ratings
    from nasir.dna.teacher import load_features

    workdir = Path(args.workdir)
    graph, _ = _partitioned(args)
    block_names = path_names(graph)
    train_first = "nasir " + shlex.join(["dna", "train", *_space_words(args), "--workdir", args.workdir,
                                         *(["--data", args.data] if args.data else [])])
    if not (workdir / "features.safetensors").is_file():
        raise DNAError(f"{workdir} holds no teacher features: its blocks are not trained", hint=f"run {train_first}")
    feats, meta = load_features(workdir / "features.safetensors")
    made_on = meta.get("data", "tinyshapes")
    if args.data is not None and _data_spec(args.data) != made_on:
        raise DNAError(f"{workdir}: its blocks were trained on {made_on}, not {_data_spec(args.data)}",
                       hint=f"rate with --data {made_on}, or train a new --workdir on the other data")
    torch.manual_seed(0)
    space, names = _space_for(graph, workdir)
    if len(feats) != len(space.blocks) + 1:
        raise DNAError(f"the feature cache has {len(feats) - 1} blocks, the space {len(space.blocks)}")
    _warn_unfinished(args, [block_checkpoint(workdir / "blocks", k) for k in range(len(space.blocks))], names,
                     train_first, made_on)
    n = min(args.samples, feats[0].shape[0])
    ratings = []
    start = time.perf_counter()
    for k, block in enumerate(space.blocks):
        head = load_trained_block(block_checkpoint(workdir / "blocks", k), block)
        with tqdm(total=n, desc=f"rate {names[k]}", leave=False) as bar:
            r = rate_block(block, feats[k][-n:], feats[k + 1][-n:], feature_sharing=not args.no_sharing,
                           device=args.device, name=names[k], progress=bar.update, head=head)
        r.names = block_names[k]
        ratings.append(r)
        print(f"{names[k]}: {len(r.scores)} paths; best:")
        for i in r.ranked()[:args.top]:
            print(f"    {r.label(i)}  score {r.scores[i]:.4f}  params {r.params[i]:,}  FLOPs {r.flops[i]:,}")
    save_ratings(workdir / "ratings.json", ratings, space=_space_words(args))
    print(f"rated {sum(len(r.scores) for r in ratings)} paths in {time.perf_counter() - start:.1f} s -> "
          f"{workdir / 'ratings.json'}")
    next_step(["dna", "search", str(workdir / "ratings.json"), "--pareto", "-o", str(workdir / "arch.json")],
              note="add --limit N for a params budget")
    return 0


def _warn_unfinished(args: argparse.Namespace, checkpoints: list[Path], names: list[str], train_first: str,
                     data: str) -> None:
    """Refuse blocks that were never trained; warn (stderr) about blocks whose training stopped early,
    with the command that finishes them."""
    from nasir.dna.distill import read_block_checkpoint

    stopped = []
    for path, name in zip(checkpoints, names):
        if not path.is_file():
            raise DNAError(f"{name} is not trained: no checkpoint {path}", hint=f"run {train_first}")
        _, meta = read_block_checkpoint(path)
        if meta.step < meta.config.steps:
            stopped.append((name, meta))
    if stopped:
        which = ", ".join(f"{name} at step {meta.step} of {meta.config.steps}" for name, meta in stopped)
        finish = _train_command(args, stopped[0][1].config, data, stopped[0][1].samples)
        sys.stderr.write(f"warning: {len(stopped)} of {len(names)} blocks stopped training early ({which}); their "
                         f"ratings are less reliable.\n  finish them with: nasir {shlex.join(finish)}\n")


def cmd_search(args: argparse.Namespace) -> int:
    from nasir.dna.rating import load_ratings
    from nasir.dna.search import constrained_search, pareto_front
    from nasir.ir.arch import Alternative, Architecture

    ratings = load_ratings(args.ratings)
    if not ratings:
        raise DNAError(f"{args.ratings}: no blocks")
    costs = [getattr(r, args.cost) for r in ratings]
    if any(len(c) != len(r.scores) for c, r in zip(costs, ratings)):
        raise DNAError(f"{args.ratings}: the table has no {args.cost} for every path")
    networks = {r.names.network for r in ratings if r.names is not None}
    if args.output and (len(networks) != 1 or any(r.names is None for r in ratings)):
        raise DNAError(f"{args.ratings}: the ratings do not name the architecture parameters of one network "
                       "(written by an older nasir?)", hint="rerun `nasir dna rate` to write an architecture file")
    scores = [r.scores for r in ratings]
    size = 1
    for s in scores:
        size *= len(s)
    start = time.perf_counter()
    best = constrained_search(scores, costs, args.limit)
    seconds = time.perf_counter() - start
    print(f"searched {size:.3g} architectures in {seconds * 1000:.1f} ms: score {best.score:.4f}, "
          f"{args.cost} {best.cost:,}" + (f" (limit {args.limit:,.0f})" if args.limit is not None else ""))
    for r, i in zip(ratings, best.indices):
        print(f"    {r.name}: {r.label(i)}")
    front = pareto_front(scores, costs) if args.pareto else []
    if front:
        print(f"Pareto front ({len(front)} points): cost -> score")
        for p in front:
            print(f"    {p.cost:>14,}  {p.score:.4f}")
    if args.output:
        def picks(indices: list[int]) -> dict[str, str]:
            return {k: v for r, i in zip(ratings, indices) for k, v in r.names.picks(r.paths[i]).items()}

        Architecture(network=networks.pop(), method="dna", arch=picks(best.indices),
                     metrics={"score": best.score, args.cost: best.cost},
                     options={"cost": args.cost, "limit": args.limit},
                     alternatives=[Alternative(arch=picks(p.indices), metrics={"score": p.score, args.cost: p.cost})
                                   for p in front] or None).save(args.output)
        print(f"architecture written to {args.output}")
        _next_after_search(args)
    return 0


def _next_after_search(args: argparse.Namespace) -> None:
    """The searched network as plain PyTorch, from the space the ratings were made on."""
    from nasir.cli_options import next_step
    from nasir.dna.rating import rated_space

    space = rated_space(args.ratings) or ["SPACE.nas"]
    next_step(["compile", *space, "--mode", "fixed", "--arch", args.output, "--emit", "code"],
              note="the searched network as plain PyTorch" + ("" if space[0] != "SPACE.nas" else
                                                                 "; SPACE.nas: the space you rated"))


def _plus_command(args: argparse.Namespace) -> list[str]:
    """This ``nasir dna plus`` command, every option explicit."""
    words = ["dna", "plus", "--workdir", args.workdir] + (["--space", args.space] if args.space else [])
    for flag in ("generations", "depth", "width", "resolution", "cost", "limit", "steps", "loss", "images",
                 "teacher_steps", "device", "data"):
        value = getattr(args, flag)
        if value is not None:
            words += ["--" + flag.replace("_", "-"), str(value)]
    return words


def default_space():
    from nasir.dna.mbconv import SpaceSpec

    return SpaceSpec(cells=[[(1, 16), (2, 16)], [(1, 32), (2, 24)], [(2, 48), (3, 48)]], strides=[1, 2, 2],
                     kernels=[3, 5], expansions=[3, 6], stem=16)


def cmd_plus(args: argparse.Namespace) -> int:
    from nasir.dna.distill import DistillConfig
    from nasir.dna.mbconv import BlockSpec, ChainNet, NetSpec, SpaceSpec
    from nasir.dna.plus import PlusConfig, dna_plus, next_teacher
    from nasir.dna.train import accuracy, train_classifier
    from nasir.io import read_json

    spec = default_space()
    if args.space:
        data = read_json(args.space, "space spec", DNAError)
        try:
            spec = SpaceSpec(cells=[[tuple(c) for c in b] for b in data["cells"]], strides=list(data["strides"]),
                             kernels=list(data.get("kernels", [3, 5, 7])), expansions=list(data.get("expansions", [3, 6])),
                             stem=int(data.get("stem", 16)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DNAError(f"{args.space}: not a valid space spec ({type(e).__name__}: {e})") from None
    _, images, labels, test = _data(args.data)
    images, labels = _first_images(images, labels, args.images, DistillConfig().batch_size)
    widths = [max(ch for _, ch in cells) * 2 for cells in spec.cells]
    first = NetSpec([BlockSpec([(3, 6)] * 2, w, w, s) for w, s in zip(widths, spec.strides)], stem=spec.stem,
                    classes=int(labels.max()) + 1)
    distill = DistillConfig(steps=args.steps, loss=args.loss, checkpoint_every=args.checkpoint_every,
                            checkpoint_minutes=args.checkpoint_minutes)
    config = PlusConfig(generations=args.generations, depth=args.depth, width=args.width, resolution=args.resolution,
                        cost=args.cost, limit=args.limit, distill=distill,
                        teacher_steps=args.teacher_steps, batch_size=min(64, images.shape[0]))
    args.interrupted_hint = (f"next: nasir {shlex.join(_plus_command(args))}  # the same command: saved teachers "
                             "and blocks are reused, unfinished ones continue")
    # saved as gen1/teacher.safetensors: a rerun reuses it
    teacher, _ = next_teacher(first, images, labels, config, 0, Path(args.workdir) / "gen1", args.device, None, test,
                              True, print)
    gens = dna_plus(teacher.cpu(), teacher.boundaries, spec, images, labels, config, args.workdir, device=args.device,
                    test=test, progress=True)
    final = ChainNet(gens[-1].student)
    train_classifier(final, images, labels, args.teacher_steps, device=args.device, progress=True, desc="final student")
    print(f"final student (generation {gens[-1].index}, retrained without scaling): "
          f"{sum(p.numel() for p in final.parameters()):,} params, test accuracy "
          f"{accuracy(final, *test, device=args.device):.1%}; records in {Path(args.workdir) / 'generations.json'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from nasir.cli import main

    sys.exit(main(["dna", *sys.argv[1:]]))
