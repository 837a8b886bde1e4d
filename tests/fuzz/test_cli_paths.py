"""The CLI on bad paths and bad options: exit 0, or exit 2 with ``error:`` and no traceback, within limits.

``nasir compile``/``count``/``show`` on missing files, folders, devices, FIFOs, binary and non-UTF-8
files, with bad ``-D`` overrides, ``-I`` folders and pipelines: in process (many combinations) and as
real processes under a time limit and an address-space limit (a few, for the exit status). The
numeric options and ``--device`` of the training commands: any text either parses into a value in
range or is refused at parse time with exit 2 and a message naming the flag.
"""

from __future__ import annotations

import io
import math
import os
import resource
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasir.cli import build_parser, main

from ._harness import bounded, examples

BAD_DEFINES = ["", "C", "=5", "C=", "C=[", "C=[1,", "C=" + "[" * 100_000, "C=1e999", "C=nan", "C=-inf",
               "C=99999999999999999999999", "C=" + "9" * 5000, "C=[null]", "C=[{}]", "C=[1e999]", "C=[[1], [2]]",
               "nosuch=1", "C=abc", "C=-1", "C=0", "C=true", "C=[" + "1," * 200_000 + "1]", "C=" + "x" * 200_000,
               "layers=100000", "layers=-3", "C=1000000"]
OPTIONS = [[], ["--entry", "nosuch"], ["--entry", ""], ["-I", "nosuch-dir"], ["-I", "."], ["--allow-any-import"],
           ["--passes", "canonicalize"], ["--passes", "nonsense{"], ["--passes", "fix-arch{arch=nosuch.json}"],
           ["--emit", "json"], ["--emit", "ir"], ["--emit", "dot"], ["--emit", "code"]]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> list[str]:
    """Paths that are not readable DSL sources, and two good ones."""
    root = tmp_path_factory.mktemp("bad-files")
    (root / "binary.nas").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.nas").write_bytes("network n() { input x: [3, 8, 8] output x } # caf\xe9\n".encode("latin-1"))
    (root / "empty.nas").write_text("")
    (root / "nul.nas").write_bytes(b"network n() {\x00 input x: [3, 8, 8] output x }")
    (root / "no_network.nas").write_text("op a() = relu\n")
    (root / "folder.nas").mkdir()
    (root / "imports_env.nas").write_text('import "/proc/self/environ"\nnetwork n() { input x: [3, 8, 8] output x }\n')
    (root / "imports_up.nas").write_text('import "../x.nas"\nnetwork n() { input x: [3, 8, 8] output x }\n')
    os.mkfifo(root / "fifo.nas")
    names = ["binary.nas", "latin1.nas", "empty.nas", "nul.nas", "no_network.nas", "folder.nas", "imports_env.nas",
             "imports_up.nas", "fifo.nas", "missing.nas", "missing/deeper.nas"]
    return [str(root / n) for n in names] + ["/dev/null", "/", "/proc/self/environ", "", "std/nb201.nas", "resnet18"]


def _run_in_process(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors exit 2 themselves
            code = e.code
    return code, err.getvalue()


@examples(ci=40, long=3_000)
@given(data=st.data())
def test_cli_on_bad_paths_and_options(data, bad_files):
    command = data.draw(st.sampled_from(["compile", "count", "show"]))
    argv = [command, data.draw(st.sampled_from(bad_files))]
    for _ in range(data.draw(st.integers(0, 2))):
        argv += ["-D", data.draw(st.sampled_from(BAD_DEFINES))]
    if command != "count":
        argv += data.draw(st.sampled_from(OPTIONS))
    with bounded():
        code, err = _run_in_process(argv)
    assert code in (0, 2), (argv[:4], code, err[-2000:])
    assert "Traceback" not in err
    if code == 2:
        assert "error:" in err or "usage:" in err


def _limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("case", ["missing.nas", "folder.nas", "binary.nas", "latin1.nas", "fifo.nas", "empty.nas",
                                  "imports_env.nas", "deep -D", "huge -D"])
def test_cli_process_exits_2_without_traceback(case, bad_files):
    root = Path(bad_files[0]).parent
    argv = ["count", str(root / case)]
    if case.endswith("-D"):
        argv = ["count", "std/nb201.nas", "-D", "C=" + "[" * 100_000 if case == "deep -D" else "C=" + "9" * 5000]
    env = dict(os.environ, NASIR_FUZZ_SECRET="do-not-print-me")
    proc = subprocess.run([sys.executable, "-m", "nasir.cli", *argv], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_child, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr
    assert "do-not-print-me" not in proc.stderr + proc.stdout


SEARCH = ["search", "std/darts.nas"]
DANCE_TRAIN = ["dance", "train", "std/resnet18.nas", "--checkpoint", "c.safetensors"]
DNA_TRAIN = ["dna", "train", "std/mbconv.nas", "--workdir", "w"]
#: (command, flag, type, smallest value, largest value, smallest excluded)
NUMERIC_FLAGS = [
    (SEARCH, "--steps", int, 1, math.inf, False), (SEARCH, "--batch-size", int, 1, math.inf, False),
    (SEARCH, "--beta", float, 0, math.inf, False), (SEARCH, "--checkpoint-every", int, 1, math.inf, False),
    (SEARCH, "--checkpoint-minutes", float, 0, math.inf, False),
    (DANCE_TRAIN, "--budget", float, 0, math.inf, True), (DANCE_TRAIN, "--stage1-steps", int, 0, math.inf, False),
    (DANCE_TRAIN, "--samples", int, 1, math.inf, False), (DANCE_TRAIN, "--batch-size", int, 2, math.inf, False),
    (DANCE_TRAIN, "--tau-start", float, 0, math.inf, True),
    (["dance", "extract", "c.safetensors", "--budget", "0.5"], "--finetune-steps", int, 0, math.inf, False),
    (DNA_TRAIN, "--images", int, 0, math.inf, False), (DNA_TRAIN, "--lr", float, 0, math.inf, True),
    (DNA_TRAIN, "--workers", int, 1, math.inf, False), (["dna", "search", "r.json"], "--limit", float, 0, math.inf, True),
    (["dna", "plus", "--workdir", "w"], "--generations", int, 1, math.inf, False),
]
NUMBER_TEXTS = st.one_of(st.integers(-10**9, 10**9).map(str), st.floats().map(repr), st.text(max_size=12),
                         st.sampled_from(["0", "-0", "1", "1.0", "0.5", "1.5", "2", "1e999", "-1e-9", "nan", "inf",
                                          " 3", "0x10", "1_000", "", "--", "-1"]))


def _parse(argv: list[str]) -> tuple[object, str]:
    """(parsed namespace or the exit status, stderr) of parsing ``argv``."""
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv), err.getvalue()
        except SystemExit as e:
            return e.code, err.getvalue()


@examples(ci=60, long=5_000)
@given(case=st.sampled_from(NUMERIC_FLAGS), text=NUMBER_TEXTS)
def test_numeric_options_parse_in_range_or_are_refused_naming_the_flag(case, text):
    command, flag, kind, low, high, low_excluded = case
    parsed, err = _parse([*command, f"{flag}={text}"])
    if not hasattr(parsed, "func"):
        assert parsed == 2 and f"argument {flag}:" in err and "Traceback" not in err, (flag, text, err)
        return
    value = getattr(parsed, flag.lstrip("-").replace("-", "_"))
    assert type(value) is kind and math.isfinite(value) and low <= value <= high, (flag, text, value)
    assert not (low_excluded and value == low), (flag, text)
    if flag == "--budget":
        assert value <= 1 or value.is_integer()


@examples(ci=30, long=2_000)
@given(text=st.one_of(st.text(max_size=12), st.sampled_from(["cpu", "cuda", "cuda:0", "cuda:7", "mps", "cpu:0",
                                                            "CUDA", "cuda:", "cuda:-1", "meta", "tpu"])))
def test_devices_are_checked_when_parsed(text):
    import torch

    parsed, err = _parse([*SEARCH, f"--device={text}"])
    if not hasattr(parsed, "func"):
        assert parsed == 2 and "argument --device:" in err and "Traceback" not in err, (text, err)
        return
    assert parsed.device == "cpu" or (parsed.device.startswith("cuda") and torch.cuda.is_available()), text
