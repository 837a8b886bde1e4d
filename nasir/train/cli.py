"""``nasir train SPACE --arch ARCH``: train one architecture from scratch (``nasir.train.run``).

Options not given take the recipe's values (``nasir.train.recipes``: ``darts`` for the DARTS space,
``nb201`` for every other). The run prints what it trains (parameters, FLOPs, the recipe's
settings), shows a progress bar, logs every epoch as JSON lines beside its checkpoint, saves the
checkpoint after every epoch (and every ``--checkpoint-every`` steps or ``--checkpoint-minutes``),
resumes bit for bit with ``--resume``, and prints the final test accuracy; ``-o`` writes the trained
network for ``nasir export``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from nasir.cli_options import (
    SGD_OPTIONS,
    checkpoint_options,
    device_option,
    given_options,
    next_step,
    number,
    option_words,
    require_checkpoint_for_resume,
    training_options,
)
from nasir.data import add_data_option, add_loader_options

#: ``nasir train`` options whose default is the recipe's value: (flag, type, meaning).
HYPERPARAMETERS = (
    *SGD_OPTIONS,
    ("--drop-path", number(0, maximum=0.99), "final drop-path probability, rising linearly from 0 (networks with "
                                             "drop path: the evaluation form of a space)"),
    ("--auxiliary-weight", number(0), "weight of the auxiliary head's loss (networks with one)"),
)


def add_train_parser(sub: Any) -> None:
    """Register ``nasir train`` with the ``nasir`` subcommands."""
    from nasir.cli import _common, output_option
    from nasir.train.recipes import RECIPES, recipe_help

    p = sub.add_parser("train", help="train one architecture of a space from scratch (the method's recipe)",
                       description="Train the fixed network of one architecture from scratch. Options not given "
                                   "take the recipe's values (darts for the DARTS space, nb201 for every other): "
                                   f"{recipe_help()}.")
    _common(p)
    p.add_argument("--passes", default="", metavar="PIPELINE",
                   help="the pipeline the architecture was searched with (its parameters are named after it)")
    p.add_argument("--arch", required=True, metavar="ARCH",
                   help="the architecture: a file (nasir-arch JSON, DARTS genotype, NB201 string) or such text")
    p.add_argument("--recipe", choices=tuple(RECIPES), help="training settings (default: darts for the DARTS space, "
                                                             "nb201 for every other)")
    training_options(p, "recipe", "the training set", HYPERPARAMETERS)
    device_option(p)
    add_data_option(p)
    add_loader_options(p, train_portion=False, cutout=None)
    p.add_argument("--amp", choices=("bf16", "fp16"), help="autocast the forward pass to bfloat16 (CUDA or CPU) or "
                                                          "float16 (CUDA, with loss scaling)")
    p.add_argument("--channels-last", action="store_true", help="weights and batches in NHWC memory layout")
    p.add_argument("--compile", nargs="?", const="inductor", default="", metavar="BACKEND",
                   help="run the forward (and its backward) under torch.compile (default backend inductor)")
    output_option(p, "--checkpoint", metavar="FILE", help="save progress here (safetensors), after every epoch too")
    checkpoint_options(p, every_steps=100)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint (if it exists yet)")
    output_option(p, "--log", metavar="FILE", help="per-epoch JSON lines (losses, accuracies, learning rate, drop "
                  "path; default: beside --checkpoint, run.safetensors -> run.jsonl); TensorBoard in FILE.tb if installed")
    output_option(p, "-o", "--output", metavar="FILE",
                  help="write the trained network here (safetensors: plain IR and weights; `nasir export FILE`)")
    p.set_defaults(func=cmd_train)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``TrainConfig`` fields the command line gave (the rest stay the recipe's)."""
    options = {name: getattr(args, name) for name in ("epochs", "steps", "batch_size", "cutout")
               if getattr(args, name) is not None}
    return {**options, **given_options(args, HYPERPARAMETERS), "seed": args.seed, "amp": args.amp or "",
            "channels_last": args.channels_last, "compile": args.compile, "save_every": args.checkpoint_every,
            "save_minutes": args.checkpoint_minutes}


def train_command(args: argparse.Namespace) -> list[str]:
    """The ``nasir train`` arguments of this run (what a resume repeats)."""
    from nasir.cli import _space_words

    words = ["train", *_space_words(args)] + (["--passes", args.passes] if args.passes else []) + ["--arch", args.arch]
    words += ["--recipe", args.recipe] if args.recipe else []
    for flag in ("--epochs", "--steps", "--batch-size", "--cutout", "--amp", "--log", "--output"):
        value = getattr(args, flag[2:].replace("-", "_"))
        words += [flag, str(value)] if value is not None else []
    words += option_words(args, HYPERPARAMETERS)
    words += ["--seed", str(args.seed), "--device", args.device, "--data", args.data, "--workers", str(args.workers)]
    words += ["--channels-last"] if args.channels_last else []
    words += ["--compile", args.compile] if args.compile else []
    return words + (["--checkpoint", args.checkpoint] if args.checkpoint else [])


def cmd_train(args: argparse.Namespace) -> int:
    from nasir.distributed import processes

    with processes(args.device) as procs:  # one, or every process torchrun started (nasir.distributed)
        return _train(args, procs)


def _train(args: argparse.Namespace, procs: Any) -> int:
    import torch

    from nasir.cli import _load
    from nasir.data import check_loader_options
    from nasir.passmanager import PassManager
    from nasir.search.epoch_log import default_log_path
    from nasir.summary import _si
    from nasir.train.recipes import recipe_for
    from nasir.train.run import train_network
    from nasir.train.trainer import TrainConfig, check_precision

    require_checkpoint_for_resume(args)
    check_loader_options(args.cutout or 0, None, args.workers)
    check_precision(args.amp or "", torch.device(args.device))
    graph = PassManager.parse(args.passes, stats=False, copy_input=False).run(_load(args))
    recipe = args.recipe or recipe_for(graph.name)
    print(f"training {graph.name} at {args.arch} from scratch with the {recipe} recipe"
          + ("" if args.recipe else f" (the default for {'the DARTS space' if recipe == 'darts' else 'this space'})"))
    if args.resume and not Path(args.checkpoint).exists():
        sys.stderr.write(f"note: no checkpoint at {args.checkpoint} yet: starting at step 0\n")
    words = train_command(args)
    args.interrupted_hint = (f"next: nasir {shlex.join([*words, '--resume'])}  # continues from the last checkpoint"
                             if args.checkpoint else "note: nothing was saved; give --checkpoint FILE to make it resumable")
    log_path = args.log or (default_log_path(args.checkpoint) if args.checkpoint else None)
    options = _options(args)
    print_settings(TrainConfig.for_recipe(recipe, **options))
    done = train_network(graph, args.arch, data=args.data, recipe=recipe, workers=args.workers, processes=procs,
                         checkpoint=args.checkpoint, resume=args.resume, log=log_path, output=args.output,
                         **options)
    cfg, log = done.config, done.log
    if log.resumed_from:
        print(f"resumed from {args.checkpoint} at step {log.resumed_from} of {log.step}")
    first, last = (log.losses[0], log.losses[-1]) if log.losses else (float("nan"), float("nan"))
    print(f"{log.step} steps in {log.seconds:.1f} s ({log.step / log.steps_per_epoch:.2f} epochs of "
          f"{log.steps_per_epoch} steps): loss {first:.3f} -> {last:.3f}" + (f"; per-epoch log: {log_path}" if log_path else ""))
    print(f"test accuracy {done.test_accuracy:.2%} (on {done.test_images} {cfg.data} images); "
          f"{done.parameters:,} parameters, {_si(done.flops)} FLOPs (MACs) per image"
          + (f" (the auxiliary head, in training only: {done.aux_parameters:,} parameters, {_si(done.aux_flops)} "
             "FLOPs more)" if done.aux_parameters else ""))
    if done.output is not None:
        print(f"trained network written to {done.output}")
        stem = done.output.with_suffix("")
        next_step(["export", str(done.output), "--format", "onnx", "-o", f"{stem}.onnx"],
                  note="or --format pt2; checked against this network")
    return 0


def print_settings(cfg: Any) -> None:
    """One line with the run's training settings (a ``TrainConfig``)."""
    print(f"settings: batch {cfg.batch_size}, {f'{cfg.epochs} epochs' if cfg.epochs else f'{cfg.steps} steps'}, SGD "
          f"{cfg.lr:g} -> {cfg.lr_min:g} cosine per {cfg.schedule}, momentum {cfg.momentum:g}"
          f"{' (Nesterov)' if cfg.nesterov else ''}, weight decay {cfg.weight_decay:g}, clip {cfg.grad_clip:g}, cutout "
          f"{cfg.cutout}, drop path {cfg.drop_path:g}, auxiliary weight {cfg.auxiliary_weight:g}"
          + (f", label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else "")
          + (f", autocast {cfg.amp}" if cfg.amp else "") + (", channels-last" if cfg.channels_last else ""))
