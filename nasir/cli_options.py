"""Options shared by the ``nasir`` commands, checked when the command line is parsed.

A bad number or device is an ``argparse`` error naming the flag (``argument --batch-size: must be
>= 1, got 0``, exit status 2) before anything is compiled or trained, instead of a traceback from
deep inside torch minutes later. The checkpoint options of the resumable drivers and the "next:"
line that tells a user which command comes after this one live here too. Nothing here imports
torch unless a device other than the CPU is asked for.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from collections.abc import Callable, Sequence

from nasir.diagnostics import NasirError
from nasir.save_schedule import CHECKPOINT_MINUTES

_DEVICE = re.compile(r"(cuda|mps)(?::(\d{1,4}))?")


def integer(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def number(minimum: float = -math.inf, *, above: float | None = None, maximum: float = math.inf
           ) -> Callable[[str], float]:
    """An argparse type: a finite number >= ``minimum`` (or > ``above``) and <= ``maximum``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be > {above:g}, got {value:g}")
        if value < minimum or value > maximum:
            bounds = f">= {minimum:g}" if maximum == math.inf else f"in [{minimum:g}, {maximum:g}]"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value:g}")
        return value
    return parse


def budget(text: str) -> float:
    """An argparse type for DANCE budgets: a fraction of the channels in (0, 1] or a whole channel
    count >= 1 (``1.5`` is neither)."""
    value = number(above=0)(text)
    if value > 1 and not value.is_integer():
        raise argparse.ArgumentTypeError(f"is a fraction in (0, 1] or a whole channel count, got {value:g}")
    return value


def device(text: str) -> str:
    """An argparse type: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, present on this machine."""
    if text == "cpu":
        return text
    match = _DEVICE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or mps")
    import torch

    kind, index = match.group(1), match.group(2)
    if kind == "mps":
        if not torch.backends.mps.is_available() or index not in (None, "0"):
            raise argparse.ArgumentTypeError(f"{text}: no such Apple GPU (MPS) on this machine; use --device cpu")
        return text
    if not torch.cuda.is_available():
        why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise argparse.ArgumentTypeError(f"{text}: CUDA is not available ({why}); use --device cpu")
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        names = "cuda:0" + (f" .. cuda:{count - 1}" if count > 1 else "")
        raise argparse.ArgumentTypeError(f"{text}: this machine has {count} CUDA device{'s' * (count != 1)} ({names})")
    return text


def device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda, cuda:N or mps")


def checkpoint_options(p: argparse.ArgumentParser, every_steps: int) -> None:
    """``--checkpoint-every STEPS`` and ``--checkpoint-minutes M``: a checkpoint is written after
    whichever interval ends first (``nasir.save_schedule``)."""
    p.add_argument("--checkpoint-every", type=integer(1), default=every_steps, metavar="STEPS",
                   help=f"save a checkpoint after this many steps (default {every_steps}) ...")
    p.add_argument("--checkpoint-minutes", type=number(0), default=CHECKPOINT_MINUTES, metavar="M",
                   help=f"... or this many minutes, whichever comes first (default {CHECKPOINT_MINUTES:g}; 0: steps only)")


def require_checkpoint_for_resume(args: argparse.Namespace, flag: str = "--checkpoint") -> None:
    """``--resume`` continues a checkpoint, so it needs to be told which one."""
    if getattr(args, "resume", False) and not getattr(args, flag.lstrip("-").replace("-", "_"), None):
        raise NasirError(f"--resume needs {flag} FILE: the checkpoint to continue",
                         hint=f"e.g. {flag} run.safetensors --resume (the same file the first run wrote)")


def space_arguments(args: argparse.Namespace) -> list[str]:
    """The arguments that name the space a command was given (file, ``-D``, ``--entry``), for the
    commands that ``next_step`` prints."""
    words = [args.file]
    for item in getattr(args, "define", None) or []:
        words += ["-D", item]
    if getattr(args, "entry", None):
        words += ["--entry", args.entry]
    return words


def next_step(*commands: Sequence[str], note: str = "") -> None:
    """Print the command(s) that come next, exactly as they can be pasted into a shell."""
    for command in commands:
        print(f"next: {shlex.join(['nasir', *command])}" + (f"  # {note}" if note else ""))


class Parser(argparse.ArgumentParser):
    """argparse, refusing ``--flag=--``: argparse drops the ``--`` and hands the option an empty list
    (Python 3.11/3.12), which reached the drivers as a step count (found by the long fuzz profile)."""

    def parse_known_args(self, args=None, namespace=None):
        for arg in sys.argv[1:] if args is None else args:
            if isinstance(arg, str) and arg.startswith("--") and arg.partition("=")[1] and arg.partition("=")[2] == "--":
                self.error(f"argument {arg.partition('=')[0]}: expected a value, got '--'")
        return super().parse_known_args(args, namespace)


#: ``nasir search`` and ``nasir train`` options of the weights' optimizer (``nasir.sgd.SGDSettings``),
#: whose default is the method's or the recipe's: (flag, type, meaning).
SGD_OPTIONS = (
    ("--lr", number(above=0), "initial learning rate of the weights (SGD)"),
    ("--lr-min", number(0), "final learning rate of the weights"),
    ("--momentum", number(0, maximum=1), "SGD momentum"),
    ("--weight-decay", number(0), "weight decay of the weights"),
    ("--grad-clip", number(0), "gradient-norm clip of the weights (0: none)"),
    ("--label-smoothing", number(0, maximum=1), "label smoothing of the training loss"),
)

Options = Sequence[tuple[str, Callable[[str], object], str]]


def training_options(p: argparse.ArgumentParser, source: str, epochs: str, options: Options) -> None:
    """The run's length (``--epochs`` or ``--steps``), ``--batch-size``, ``options`` (``SGD_OPTIONS``
    and the command's own, each defaulting to ``source``'s value: the method's, the recipe's) and
    ``--seed``. ``epochs``: what an epoch passes over."""
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=integer(1), help=f"passes over {epochs} (default: the {source}'s)")
    length.add_argument("--steps", type=integer(1), help="run this many steps instead of epochs (smoke runs)")
    p.add_argument("--batch-size", type=integer(1), help=f"the global batch, shared by the processes under "
                                                         f"torchrun (default: the {source}'s)")
    for flag, kind, what in options:
        p.add_argument(flag, type=kind, help=f"{what} (default: the {source}'s)")
    p.add_argument("--seed", type=int, default=0)


def given_options(args: argparse.Namespace, options: Options) -> dict[str, object]:
    """The ``options`` the user gave, by configuration field name (``--lr-min`` -> ``lr_min``)."""
    names = [flag[2:].replace("-", "_") for flag, _, _ in options]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def option_words(args: argparse.Namespace, options: Options) -> list[str]:
    """The ``options`` the user gave as command-line words (for the ``next:`` command of a resume)."""
    words: list[str] = []
    for flag, _, _ in options:
        value = getattr(args, flag[2:].replace("-", "_"))
        words += [flag, repr(value)] if value is not None else []
    return words
