"""The ``nasir`` command line.

Errors in user input (DSL text, options, files) print ``file:line:col: error: ...`` with the source
line and a caret and exit with status 2; nothing is written unless the whole output is ready.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasir.cli_options import (
    SGD_OPTIONS,
    Parser,
    checkpoint_options,
    device_option,
    given_options,
    integer,
    next_step,
    number,
    option_words,
    require_checkpoint_for_resume,
    space_arguments,
    training_options,
)
from nasir.data import add_data_option, add_loader_options
from nasir.diagnostics import NasirError

if TYPE_CHECKING:
    from nasir.passmanager import PassInstrument

EMITS = ("summary", "json", "dot", "svg", "png", "code", "ir")
#: ``nasir.exporting.FORMATS``, spelled out so that building the parser imports no torch (a test checks they agree).
EXPORT_FORMATS = ("onnx", "pt2", "safetensors")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .nas search space (or std/NAME.nas), or an IR .json file")
    p.add_argument("-D", "--define", action="append", metavar="NAME=VALUE", default=[],
                   help="override a network parameter, e.g. -D C=8 (repeatable)")
    p.add_argument("--entry", help="network to compile when the file defines several")
    p.add_argument("-I", "--import-path", action="append", metavar="DIR", default=[],
                   help="also resolve `import \"...\"` in DIR (repeatable)")
    p.add_argument("--allow-any-import", action="store_true",
                   help="let imports read absolute paths and paths that leave their folder (with ../ or links)")


def output_option(p: argparse.ArgumentParser, *flags: str, directory: bool = False, **kwargs: Any) -> None:
    """Add an option that names a file (or with ``directory`` a folder) the command writes; ``main``
    checks every such location before the command starts, so a bad one fails at once (exit 2)
    rather than after the work is done."""
    action = p.add_argument(*flags, **kwargs)
    p.set_defaults(outputs=[*(p.get_default("outputs") or []), (action.dest, flags[-1], directory)])


def check_outputs(args: argparse.Namespace) -> None:
    """The locations given for the options declared with ``output_option`` must be writable."""
    from nasir.io import check_output, check_output_dir

    for dest, flag, directory in getattr(args, "outputs", []):
        value = getattr(args, dest, None)
        if value:
            (check_output_dir if directory else check_output)(value, flag)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nasir", description="A compiler for neural-architecture-search spaces.")
    parser.add_argument("--version", action="version", version="nasir 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="parse a space, run passes, emit IR / dot / code / summary")
    _common(p)
    p.add_argument("--passes", default="", metavar="PIPELINE", help="e.g. 'canonicalize,dead-code'")
    p.add_argument("--emit", choices=EMITS, default="summary")
    p.add_argument("--mode", choices=("supernet", "sampled", "fixed"), default="supernet",
                   help="lowering mode for --emit code")
    p.add_argument("--arch", metavar="ARCH", help="architecture for --mode fixed: a file (nasir-arch JSON, DARTS "
                   "genotype or NB201 string), or genotype / NB201 text itself")
    output_option(p, "-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (stderr)")
    p.add_argument("--stats", action="store_true", help="print per-pass timing and statistics (stderr)")
    p.add_argument("--no-verify", action="store_true", help="skip verification between passes")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("count", help="print the exact size of the search space")
    _common(p)
    p.set_defaults(func=cmd_count)

    p = sub.add_parser("show", help="tree summary with params/FLOPs per choice")
    _common(p)
    p.add_argument("--passes", default="", metavar="PIPELINE")
    p.add_argument("--all", action="store_true", help="list every distinct choice")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("passes", help="list the available passes")
    p.set_defaults(func=cmd_passes)

    from nasir.search.methods import METHODS, method_help

    p = sub.add_parser("search", help="train a supernet (DARTS, PC-DARTS, GDAS, SPOS) on the bundled dataset or --data",
                       description="Search a space with a DARTS-family method. Options not given take the "
                                   f"method's published values: {method_help()}.")
    _common(p)
    p.add_argument("--passes", default="", metavar="PIPELINE")
    p.add_argument("--method", choices=tuple(METHODS), default="darts",
                   help="pc-darts puts the partial-channel{k=4} pass first unless --passes has one")
    p.add_argument("--order", type=int, choices=(1, 2), default=1,
                   help="DARTS: 1 = first-order approximation, 2 = unrolled hypergradient (DARTS Eq. 7-8)")
    training_options(p, "method", "the weight half of the data", _HYPERPARAMETERS)
    p.add_argument("--beta", type=number(0), default=0.0, help="beta-DARTS regularization weight")
    device_option(p)
    add_data_option(p)
    add_loader_options(p)
    p.add_argument("--compile", nargs="?", const="inductor", default="", metavar="BACKEND",
                   help="run the training step under torch.compile (default backend inductor; CUDA graphs for "
                        "a supernet on CUDA)")
    output_option(p, "--checkpoint", metavar="FILE", help="save progress here (safetensors)")
    checkpoint_options(p, every_steps=10)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint (if it exists yet)")
    output_option(p, "--log", metavar="FILE", help="per-epoch JSON lines (losses, accuracies, architecture; default: "
                  "beside --checkpoint, run.safetensors -> run.jsonl); TensorBoard scalars in FILE.tb if installed")
    output_option(p, "--arch-out", metavar="FILE", help="write the derived architecture as JSON")
    p.set_defaults(func=cmd_search)

    from nasir.train.cli import add_train_parser

    add_train_parser(sub)

    p = sub.add_parser("export", help="write one architecture, after any passes, as a plain network (ONNX, pt2, safetensors)")
    _common(p)  # or a fixed network written by `export --format safetensors` or `train -o` (FILE.safetensors)
    p.add_argument("--passes", default="", metavar="PIPELINE",
                   help="the pipeline the supernet was searched with (its checkpoint's weights are named after it)")
    p.add_argument("--arch", metavar="ARCH", help="the architecture: a file (nasir-arch JSON, DARTS genotype, NB201 "
                   "string) or such text; not for a fixed network (FILE.safetensors), which is one architecture")
    p.add_argument("--checkpoint", metavar="FILE", help="take the trained weights of this `nasir search` checkpoint")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True,
                   help="onnx, pt2 (torch.export program), or safetensors (weights + plain IR, for nasir)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (without --checkpoint)")
    output_option(p, "-o", "--output", required=True, metavar="FILE", help="write the export here (atomically)")
    p.set_defaults(func=cmd_export)

    for name in ("dna", "dance"):  # drivers contributed by their own packages
        try:
            mod = importlib.import_module(f"nasir.{name}.cli")
        except ImportError:
            continue
        register = getattr(mod, "register", None)
        if register is not None:
            register(sub)
    return parser


#: ``nasir search`` options whose default is the method's published value: (flag, type, meaning).
_HYPERPARAMETERS = (
    *SGD_OPTIONS,
    ("--arch-lr", number(above=0), "learning rate of the architecture parameters (Adam)"),
    ("--arch-weight-decay", number(0), "weight decay of the architecture parameters"),
    ("--warmup-epochs", integer(0), "epochs of weight training before the architecture trains"),
    ("--tau-max", number(above=0), "GDAS: Gumbel temperature at the start"),
    ("--tau-min", number(above=0), "GDAS: ... at the end"),
)


# -- commands -----------------------------------------------------------------------------------
def _load(args: argparse.Namespace):
    from nasir.api import load_graph
    from nasir.frontends.elaborate import ImportPaths, parse_overrides

    imports = ImportPaths(tuple(Path(d) for d in args.import_path), args.allow_any_import)
    return load_graph(args.file, args.entry, imports=imports, **parse_overrides(args.define))


def _write(args: argparse.Namespace, text: str) -> None:
    if getattr(args, "output", None):
        from nasir.io import atomic_write_text

        atomic_write_text(args.output, text if text.endswith("\n") else text + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_compile(args: argparse.Namespace) -> int:
    from nasir.passmanager import PassManager

    graph = _load(args)
    pm = PassManager.parse(args.passes, verify=not args.no_verify, print_ir_after_all=args.print_ir_after_all,
                           out=sys.stderr, stats=args.stats, copy_input=False,
                           instruments=stats_instruments() if args.stats else [])
    graph = pm.run(graph)
    if args.stats:
        sys.stderr.write(pm.report() + "\n")
    if args.emit == "json":
        text = graph.to_json()
    elif args.emit == "dot":
        from nasir.ir.dot import to_dot

        text = to_dot(graph)
    elif args.emit in ("svg", "png"):
        from nasir.ir.dot import render

        if not args.output:
            raise NasirError(f"--emit {args.emit} writes a picture: give -o FILE.{args.emit}")
        render(graph, args.output, args.emit)
        return 0
    elif args.emit == "ir":
        from nasir.ir.printer import print_graph

        text = print_graph(graph)
    elif args.emit == "code":
        from nasir.lowering import lower

        if args.mode == "fixed" and not args.arch:
            raise NasirError("--mode fixed needs --arch ARCH (an architecture file, or DARTS genotype / NB201 text)")
        model = lower(graph, args.mode, arch=args.arch if args.mode == "fixed" else None, seed=0)
        text = model.code.strip() + "\n"
    else:
        from nasir.summary import summary

        text = summary(graph, max_choices=12)
    _write(args, text)
    return 0


def stats_instruments() -> list[PassInstrument]:
    """What ``--stats`` measures beyond the generic table: TopoNAS Table II modules per edge."""
    from nasir.passes._topo_stats import EdgeCountInstrument

    return [EdgeCountInstrument()]


def cmd_count(args: argparse.Namespace) -> int:
    from nasir.summary import size_line

    graph = _load(args)
    print(f"{graph.name}: {size_line(graph)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from nasir.passmanager import PassManager
    from nasir.summary import summary

    graph = PassManager.parse(args.passes, stats=False, copy_input=False).run(_load(args))
    print(summary(graph, max_choices=None if args.all else 12))
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    import dataclasses

    from nasir.passmanager import load_passes

    for name, cls in sorted(load_passes().items()):
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))
        print(f"{name:<16} [{cls().exactness()}] {cls.summary}" + (f"  {{{opts}}}" if opts else ""))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from nasir.distributed import processes

    with processes(args.device) as procs:  # one, or every process torchrun started (nasir.distributed)
        return _search(args, procs)


def _search(args: argparse.Namespace, procs: Any) -> int:
    import torch

    from nasir.data import check_loader_options, load_data
    from nasir.data.images import split_portion
    from nasir.data.sources import check_classes, space_resolution
    from nasir.lowering import lower
    from nasir.passmanager import PassManager
    from nasir.search.darts import SearchConfig, SupernetSearch
    from nasir.search.epoch_log import default_log_path
    from nasir.search.methods import METHODS
    from nasir.summary import summary

    require_checkpoint_for_resume(args)
    check_loader_options(args.cutout, args.train_portion, args.workers)
    method = METHODS[args.method]
    start = time.perf_counter()
    pipeline = _method_pipeline(args)
    pm = PassManager.parse(pipeline, stats=False, copy_input=False)
    graph = pm.run(_load(args))
    data = load_data(args.data, space_resolution(graph))
    check_classes(graph, data)
    print(summary(graph, max_choices=3))
    model = lower(graph, method.mode, seed=args.seed)
    # "architecture parameters" means what `nasir show` counts (choices); their tensors hold one weight per candidate
    print(f"compiled and lowered in {time.perf_counter() - start:.2f} s; "
          f"{sum(p.numel() for p in model.weight_parameters()):,} weights, {len(graph.arch)} architecture parameters "
          f"({sum(p.numel() for p in model.arch_parameters()):,} architecture weights)")
    train, val = split_portion(data.train, args.train_portion)
    length = {"steps": args.steps, "epochs": 0} if args.steps else {"epochs": args.epochs or method.epochs}
    config = SearchConfig.for_method(
        args.method, **length, **given_options(args, _HYPERPARAMETERS), order=args.order,
        batch_size=args.batch_size or method.batch_size, beta=args.beta, seed=args.seed, data=data.spec,
        train_portion=args.train_portion, augment=data.crop_flip, cutout=args.cutout,
        save_every=args.checkpoint_every, save_minutes=args.checkpoint_minutes, compile=args.compile)
    search = SupernetSearch(model, config, workers=args.workers, processes=procs)
    if args.resume and not Path(args.checkpoint).exists():
        sys.stderr.write(f"note: no checkpoint at {args.checkpoint} yet: starting at step 0\n")
    args.interrupted_hint = _search_resume_hint(args)
    log_path = args.log or (default_log_path(args.checkpoint) if args.checkpoint else None)
    log = search.run(train, val, checkpoint=args.checkpoint, resume=args.resume, log=log_path)
    if log.resumed_from:
        print(f"resumed from {args.checkpoint} at step {log.resumed_from} of {search.total_steps}")
    xt, yt = data.test.normalized(256)
    model.eval()
    with torch.no_grad():
        acc = float((model(xt.to(procs.device)).argmax(1).cpu() == yt).float().mean()) if len(yt) else float("nan")
    first, last = log.losses[0] if log.losses else float("nan"), log.losses[-1] if log.losses else float("nan")
    print(f"{log.step} steps in {log.seconds:.1f} s ({log.step / search.steps_per_epoch:.2f} epochs of "
          f"{search.steps_per_epoch} steps): loss {first:.3f} -> {last:.3f}, {'supernet' if graph.arch else 'network'} "
          f"test accuracy {acc:.1%} (on {len(yt)} {data.spec} images)")
    if log.records:
        r = log.records[-1]
        train_acc = "n/a" if r["train_acc"] is None else f"{r['train_acc']:.1%}"
        print(f"epoch {r['epoch']}{' (partial)' if r.get('partial') else ''}: train accuracy {train_acc}, "
              f"valid loss {r['valid_loss']:.3f}, valid accuracy {r['valid_acc']:.1%}"
              + (f"; per-epoch log: {log_path}" if log_path else ""))
    if model.arch_parameters():
        metrics = {"loss": last, "supernet_accuracy": acc}
        arch = model.derive().model_copy(update={
            "method": args.method, "metrics": {k: v for k, v in metrics.items() if math.isfinite(v)},
            "options": {"steps": log.step, "epochs": config.epochs, "batch_size": config.batch_size,
                        "order": args.order, "beta": args.beta, "seed": args.seed, "passes": pipeline,
                        "data": data.spec}})
        if args.arch_out:
            procs.main_only(lambda: arch.save(args.arch_out))
            print(f"derived architecture written to {args.arch_out}")
            passes = _network_pipeline(args, pm)  # the architecture names the transformed space
            next_step(["compile", *_space_words(args), *(["--passes", passes] if passes else []),
                       "--mode", "fixed", "--arch", args.arch_out, "--emit", "code"],
                      note="the searched network as plain PyTorch")
        else:
            print("derived architecture (first 6 parameters):", json.dumps(dict(list(arch.arch.items())[:6])))
            if args.checkpoint:  # a finished checkpoint derives again without training
                next_step([*_search_command(args), "--resume", "--arch-out", "arch.json"],
                          note="writes the whole architecture")
    return 0


def _method_pipeline(args: argparse.Namespace) -> str:
    """``--passes``, with the pass the method's supernet needs put first if it lacks it (pc-darts)."""
    from nasir.passmanager import parse_pipeline
    from nasir.search.methods import METHODS

    needed = METHODS[args.method].pipeline
    if not needed or any(p.name == parse_pipeline(needed)[0].name for p in parse_pipeline(args.passes)):
        return args.passes
    print(f"{args.method}: passes {needed} first")
    return f"{needed},{args.passes}" if args.passes else needed


def _network_pipeline(args: argparse.Namespace, pm: Any) -> str:
    """The passes that build the network a search found: ``--passes`` without the search-only ones."""
    if not any(p.search_only for p in pm.passes):
        return args.passes
    return ",".join(p.spec() for p in pm.passes if not p.search_only)


def _space_words(args: argparse.Namespace) -> list[str]:
    """The space arguments as ``args`` gave them (file, -D, --entry, -I, --allow-any-import)."""
    words = space_arguments(args)
    for folder in args.import_path:
        words += ["-I", folder]
    return words + (["--allow-any-import"] if args.allow_any_import else [])


def _search_command(args: argparse.Namespace) -> list[str]:
    """The ``nasir search`` arguments of this run, every option explicit."""
    words = ["search", *_space_words(args)]
    if args.passes:
        words += ["--passes", args.passes]
    words += ["--method", args.method, "--order", str(args.order)]
    words += ["--steps", str(args.steps)] if args.steps else ["--epochs", str(args.epochs)] if args.epochs else []
    words += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    words += option_words(args, _HYPERPARAMETERS)
    words += ["--beta", repr(args.beta), "--seed", str(args.seed), "--device", args.device, "--data", args.data,
              "--cutout", str(args.cutout), "--train-portion", repr(args.train_portion), "--workers", str(args.workers)]
    words += ["--log", args.log] if args.log else []
    words += ["--compile", args.compile] if args.compile else []
    return words + (["--checkpoint", args.checkpoint] if args.checkpoint else [])


def _search_resume_hint(args: argparse.Namespace) -> str:
    if not args.checkpoint:
        return "note: nothing was saved; give --checkpoint FILE to make a search resumable"
    return f"next: nasir {shlex.join([*_search_command(args), '--resume'])}  # continues from the last checkpoint"


#: How to use each export format, printed after writing it.
_EXPORT_NEXT = {
    "pt2": "torch.export.load({path!r}).module()(x)",
    "onnx": "onnxruntime.InferenceSession({path!r}).run(None, {{{input!r}: x.numpy()}})",
    "safetensors": "nasir.exporting.load_fixed_network({path!r})  # a NasirModule, to fine-tune or train",
}


def cmd_export(args: argparse.Namespace) -> int:
    from nasir.exporting import export, require_onnx, search_checkpoint_weights
    from nasir.passmanager import PassManager

    if args.format == "onnx":
        require_onnx()  # before any work
    if Path(args.file).suffix == ".safetensors":
        return _export_fixed_file(args)
    if not args.arch:
        raise NasirError("export needs --arch ARCH: the architecture of the space to export",
                         hint="or give a trained network instead of the space: nasir export net.safetensors ...")
    weights = search_checkpoint_weights(args.checkpoint) if args.checkpoint else None
    graph = PassManager.parse(args.passes, stats=False, copy_input=False).run(_load(args))
    done = export(graph, args.arch, weights, format=args.format, path=args.output, seed=args.seed)
    origin = f"the weights of {args.checkpoint}" if weights is not None else f"initial weights (seed {args.seed})"
    print(f"{graph.name} at {args.arch}: a plain network of {done.parameters:,} parameters with {origin}")
    print(f"written to {done.path} ({done.format}); checked: it computes what the fixed network computes "
          f"(max difference {done.max_difference:.1e})")
    print(f"next: {_EXPORT_NEXT[done.format].format(path=str(done.path), input=graph.body.inputs[0].name)}")
    return 0


def _export_fixed_file(args: argparse.Namespace) -> int:
    """``nasir export NET.safetensors``: a fixed network (``train -o``, ``export --format safetensors``)."""
    from nasir.exporting import export_fixed_file

    given = [flag for flag, value in (("--arch", args.arch), ("--checkpoint", args.checkpoint), ("-D", args.define),
                                      ("--passes", args.passes), ("--entry", args.entry)) if value]
    if given:
        raise NasirError(f"{args.file} is a trained fixed network: {given[0]} does not apply to it",
                         hint=f"nasir export {args.file} --format {args.format} -o {args.output}")
    done = export_fixed_file(args.file, format=args.format, path=args.output)
    print(f"{args.file}: a plain network of {done.parameters:,} parameters")
    print(f"written to {done.path} ({done.format}); checked: it computes what the network computes "
          f"(max difference {done.max_difference:.1e})")
    print(f"next: {_EXPORT_NEXT[done.format].format(path=str(done.path), input=done.inputs[0])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_outputs(args)
        return args.func(args)
    except NasirError as e:
        sys.stderr.write(e.render() + "\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        if getattr(args, "interrupted_hint", None):  # set by the resumable drivers once they run
            sys.stderr.write(args.interrupted_hint + "\n")
        return 130
    except BrokenPipeError:
        return output_closed()


def output_closed() -> int:
    """The reader of our output went away (``nasir ... | head``): stop as a tool killed by SIGPIPE
    does, with status 141 rather than 0, since a training cut short must not look finished."""
    import os

    try:  # the rest of the output has nowhere to go; Python would complain when flushing it at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.stderr.write("nasir: stopped: its output was closed (broken pipe)\n")
    except (OSError, ValueError):  # stdout without a file descriptor, or stderr closed too
        pass
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
