"""``nasir dance gates|train|extract``: the DANCE driver on the command line.

* ``gates``: compile a space (or IR JSON) with the ``dance-gates`` pass; print the gate groups and
  optionally write the gated IR;
* ``train``: stages 1 and 2 on the bundled TinyShapes data (or ``--data``), with a resumable checkpoint;
* ``extract``: stage 3 from a training checkpoint: generate the architecture for a budget (one
  call per budget, no retraining), extract the physically smaller network, optionally fine-tune,
  and write its IR, weights (safetensors) and masks. Reload the result with
  ``lower(Graph.load(ir), "fixed", arch={})`` and ``load_state_dict(load_checkpoint(weights)[0])``.

``register(subparsers)`` is called by ``nasir.cli``. Errors in input (a bad budget, a corrupt
checkpoint) raise ``DanceError``, which the ``nasir`` CLI prints and maps to exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nasir.dance.errors import DanceError


def register(subparsers: Any) -> None:
    from nasir.cli import output_option
    from nasir.cli_options import budget, checkpoint_options, device_option, integer, number
    from nasir.data import add_data_option, add_loader_options

    p = subparsers.add_parser("dance", help="DANCE select gates: insert, train (3 stages), extract pruned subnets")
    sub = p.add_subparsers(dest="dance_command", required=True, metavar="STEP")

    g = sub.add_parser("gates", help="insert select gates (dance-gates pass) and list the channel groups")
    _source(g)
    g.add_argument("--budget", type=budget, default=0.5, help="default C_l: fraction in (0, 1] or channel count")
    output_option(g, "-o", "--output", metavar="FILE", help="write the gated IR as JSON")
    g.set_defaults(func=cmd_gates)

    t = sub.add_parser("train", help="stages 1-2: pre-train the backbone, then gates and weights jointly")
    _source(t)
    t.add_argument("--budget", type=budget, default=0.5, help="default C_l of the gates")
    t.add_argument("--budget-range", metavar="LO,HI", help="train a random global budget per batch from this range")
    t.add_argument("--stage1-steps", type=integer(0), default=200)
    t.add_argument("--stage2-steps", type=integer(0), default=200)
    t.add_argument("--samples", type=integer(1), default=2, help="T architectures sampled per batch")
    t.add_argument("--batch-size", type=integer(2), default=64)
    t.add_argument("--tau-start", type=number(above=0), default=1.0,
                   help="Gumbel-softmax temperature at the start of stage 2")
    t.add_argument("--tau-end", type=number(above=0), default=0.1, help="... annealed exponentially to this at its end")
    t.add_argument("--seed", type=int, default=0)
    device_option(t)
    add_data_option(t)
    add_loader_options(t, train_portion=False)
    output_option(t, "--checkpoint", required=True, metavar="FILE", help="safetensors checkpoint (written as it goes)")
    checkpoint_options(t, every_steps=50)
    t.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint (if it exists yet) where it stopped, mid-stage included")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("extract", help="stage 3: generate the subnet for a budget, extract it, fine-tune")
    e.add_argument("checkpoint", help="a checkpoint written by `nasir dance train`")
    e.add_argument("--budget", type=budget, required=True, help="fraction in (0, 1] or channel count per group")
    e.add_argument("--method", choices=("dance", "score", "random", "magnitude"), default="dance")
    e.add_argument("--finetune-steps", type=integer(0), default=0)
    device_option(e)
    add_data_option(e, default=None)
    output_option(e, "-o", "--output", metavar="FILE", help="write the extracted IR as JSON")
    output_option(e, "--weights", metavar="FILE", help="write the extracted weights (safetensors)")
    output_option(e, "--masks-out", metavar="FILE", help="write the masks as JSON (input of the dance-extract pass)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=cmd_extract)


def _source(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nas space (or std/NAME.nas), or IR .json (gated or not)")
    p.add_argument("-D", "--define", action="append", metavar="NAME=VALUE", default=[],
                   help="override a network parameter, e.g. -D width=16 (repeatable)")
    p.add_argument("--entry", help="network to compile when the file defines several")


def _gated_graph(args: argparse.Namespace, budget: float):
    from nasir.api import load_graph
    from nasir.frontends.elaborate import parse_overrides
    from nasir.ir.nodes import GateNode
    from nasir.passmanager import PassManager

    graph = load_graph(args.file, args.entry, **parse_overrides(args.define))
    if any(isinstance(n, GateNode) for _, n, _ in graph.walk()):
        return graph
    return PassManager.parse(f"dance-gates{{budget={budget}}}", stats=False).run(graph)


def cmd_gates(args: argparse.Namespace) -> int:
    from nasir.cli_options import next_step, space_arguments
    from nasir.dance.insert import gate_groups
    from nasir.io import atomic_write_text

    graph = _gated_graph(args, args.budget)
    groups = gate_groups(graph)
    print(f"{graph.name}: {len(groups)} gate groups, {sum(len(g.gates) for g in groups.values())} gates")
    for name, g in groups.items():
        keep = round(g.budget * g.channels)
        print(f"  {name:<28} {g.channels:>5} channels  keep {keep:>5}  gates: {', '.join(g.gates)}")
    if args.output:
        atomic_write_text(args.output, graph.to_json() + "\n")
        print(f"gated IR written to {args.output}")
        next_step(["dance", "train", args.output, "--checkpoint", "dance.safetensors"])
    else:
        next_step(["dance", "train", *space_arguments(args), "--budget", f"{args.budget:g}",
                   "--checkpoint", "dance.safetensors"])
    return 0


def _train_command(args: argparse.Namespace) -> list[str]:
    """The ``nasir dance train`` arguments of this run with every option explicit, ``--resume`` last:
    the command that continues it."""
    from nasir.cli_options import space_arguments

    words = ["dance", "train", *space_arguments(args), "--budget", f"{args.budget:g}"]
    if args.budget_range:
        words += ["--budget-range", args.budget_range]
    words += ["--stage1-steps", str(args.stage1_steps), "--stage2-steps", str(args.stage2_steps),
              "--samples", str(args.samples), "--batch-size", str(args.batch_size), "--tau-start", f"{args.tau_start!r}",
              "--tau-end", f"{args.tau_end!r}", "--seed", str(args.seed), "--device", args.device,
              "--data", args.data, "--cutout", str(args.cutout), "--workers", str(args.workers),
              "--checkpoint", args.checkpoint]
    return words + ["--resume"]


def _range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise DanceError(f"--budget-range expects LO,HI such as 0.4,0.9, got {text!r}") from None
    return lo, hi


def cmd_train(args: argparse.Namespace) -> int:
    from nasir.distributed import processes

    with processes(args.device) as procs:  # one, or every process torchrun started (nasir.distributed)
        return _train(args, procs)


def _train(args: argparse.Namespace, procs) -> int:
    import shlex
    from pathlib import Path

    from nasir.cli_options import next_step
    from nasir.dance.gated import GatedNetwork
    from nasir.dance.train import DanceConfig, DanceTrainer, accuracy
    from nasir.data import check_loader_options, load_data
    from nasir.data.sources import check_classes, space_resolution

    check_loader_options(args.cutout, None, args.workers)
    graph = _gated_graph(args, args.budget)
    data = load_data(args.data, space_resolution(graph))
    check_classes(graph, data)
    config = DanceConfig(stage1_steps=args.stage1_steps, stage2_steps=args.stage2_steps, samples=args.samples,
                         batch_size=args.batch_size, budget_range=_range(args.budget_range), seed=args.seed,
                         tau_start=args.tau_start, tau_end=args.tau_end, save_every=args.checkpoint_every,
                         save_minutes=args.checkpoint_minutes, data=data.spec, cutout=args.cutout)
    net = GatedNetwork(graph, tau=args.tau_start, seed=args.seed)
    resume_command = "nasir " + shlex.join(_train_command(args))
    trainer = DanceTrainer(net, config, progress=not args.no_progress, resume_command=resume_command,
                           workers=args.workers, processes=procs)
    if args.resume and not Path(args.checkpoint).is_file():
        sys.stderr.write(f"note: no checkpoint at {args.checkpoint} yet: starting at stage 1, step 0\n")
    args.interrupted_hint = f"next: {resume_command}  # continues from the last checkpoint"
    log = trainer.train(data.train, checkpoint=args.checkpoint, resume=args.resume)
    if log.resumed_from is not None:
        stage, step = log.resumed_from
        print(f"resumed from {args.checkpoint}: " + ("both stages had finished" if stage == "done" else
                                                     f"stage {stage[-1]} at step {step}"))
    test = data.test
    net.set_mode("off")
    print(f"trained {config.stage1_steps} + {config.stage2_steps} steps in {log.seconds:.1f} s; "
          f"last loss {log.history[-1]['loss'] if log.history else float('nan'):.3f}; "
          f"full network test accuracy {accuracy(net, test, device=procs.device):.1%}")
    print(f"checkpoint: {args.checkpoint}")
    next_step(["dance", "extract", args.checkpoint, "--budget", f"{args.budget:g}", "-o", "subnet.json",
               "--weights", "subnet.safetensors"])
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    import torch

    from nasir.checkpoint import checkpoint_writer
    from nasir.dance.baselines import masks_for
    from nasir.dance.gated import count_parameters
    from nasir.dance.train import accuracy, finetune, network_from_checkpoint, recalibrate_bn, unfinished
    from nasir.data import load_data
    from nasir.data.sources import space_resolution
    from nasir.io import atomic_write_all, text_writer

    net, config, trained = network_from_checkpoint(args.checkpoint)
    stopped = unfinished(trained)
    if stopped is not None:
        how = trained.get("resume_command") or "nasir dance train SPACE --checkpoint CHECKPOINT --resume (same options)"
        sys.stderr.write(f"warning: {args.checkpoint}: the training is unfinished ({stopped}); the gates "
                         f"are not fully trained.\n  continue it with: {how}\n")
    net = net.to(args.device)
    data = load_data(args.data or config.data, space_resolution(net.graph))
    train, test = data.train, data.test
    calibration = train.normalized(1024)[0]  # what generate and recalibrate_bn read
    masks = masks_for(args.method, net, args.budget, data=calibration[:512], generator=torch.Generator().manual_seed(0))
    graph, module = net.extract(masks)
    recalibrate_bn(module, calibration, device=args.device)
    full = count_parameters(net.backbone)
    print(f"{args.method} subnet at budget {args.budget}: {count_parameters(module):,} of {full:,} parameters "
          f"({count_parameters(module) / full:.1%}); test accuracy {accuracy(module, test, device=args.device):.1%}")
    if args.finetune_steps > 0:
        module = finetune(module, train, args.finetune_steps, config, args.device, progress=not args.no_progress)
        print(f"after {args.finetune_steps} fine-tuning steps: test accuracy {accuracy(module, test, device=args.device):.1%}")
    outputs = []  # written all or nothing
    if args.output:
        outputs.append((args.output, text_writer(graph.to_json() + "\n"), "extracted IR"))
    if args.weights:
        meta = {"kind": "dance-subnet", "graph": graph.name}
        outputs.append((args.weights, checkpoint_writer(dict(module.state_dict()), meta), "weights"))
    if args.masks_out:
        data = {"masks": {g: [int(v) for v in m.tolist()] for g, m in masks.items()}}
        outputs.append((args.masks_out, text_writer(json.dumps(data) + "\n"), "masks"))
    atomic_write_all([(path, writer) for path, writer, _ in outputs])
    for path, _, what in outputs:
        print(f"{what} written to {path}")
    if args.output:
        from nasir.cli_options import next_step

        next_step(["show", args.output], note="the extracted network's layers, parameters and FLOPs")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``nasir`` with its arguments (``argv`` starts with ``dance``); ``python -m nasir.dance.cli
    ARGS`` runs ``nasir dance ARGS``."""
    from nasir.cli import main as nasir_main

    return nasir_main(["dance", *sys.argv[1:]] if argv is None else argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
