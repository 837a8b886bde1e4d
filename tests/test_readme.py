"""README.md's examples run as written (issues 15 and 18).

Every command of the README's ```` ```bash ```` blocks runs in a shell, in order within its block
(``dna partition -> train -> rate -> search``, ``dance train -> extract``), each block in a fresh
folder with this checkout's ``nasir`` first on ``PATH``. Blocks are independent, so two run at a
time (the suite's machines have 2 cores). The two fresh-machine commands (venv + pip install) are
not rerun: the test checks that they are the README's only setup lines, that ``.ci/run`` runs the
test command they give, and runs the rest of the other one (the quick start). A command that needs
a program this machine lacks (``dot`` for ``--emit png``) is skipped. The paper-sized runs, the
``# full size: ...`` comments, are checked against the argument parser without running. The README
shows small settings so that all of this takes about a minute on 2 cores (times in docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from nasir.docgen.cli import argument_error
from nasir.docgen.markdown import code_blocks, nasir_invocations, shell_commands, shell_comments

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The fresh-machine setup that starts the README's first two commands.
SETUP = 'python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e ".[dev]" && '
TEST_COMMAND = ".venv/bin/python -m pytest -n 2"  # two workers: the suite's 2-core budget
#: What a command needs besides nasir, by a piece of its text: a program on PATH or a Python module
#: (of an optional extra).
NEEDS = {"--emit png": ["program dot"], "--emit svg": ["program dot"],
         "--format onnx": ["module onnx", "module onnxscript"]}
FULL_SIZE = re.compile(r"full size[^:]*:\s*(.+)$")
#: A README command taking longer than this is a bug in the README (it should show small settings).
TIMEOUT_S = 600
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Step:
    """One README command: its block, its line and the shell text to run."""

    block: int
    line: int
    text: str

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None: not run
    seconds: float  # wall-clock
    cpu_seconds: float  # user + system of the command's processes: its time on an idle core
    output: str
    reason: str = ""


def _run(text: str, folder: Path, env: dict[str, str]) -> Outcome:
    """Run one shell command, timing it by the wall clock and by ``wait4``'s CPU time (user + system of the
    command and what it waited for: about its wall time on an idle core, whatever else the machine runs)."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(["bash", "-c", text], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(TIMEOUT_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        output = out.read()
    if seconds >= TIMEOUT_S:
        output = f"killed after {TIMEOUT_S} s\n{output}"
    return Outcome(proc.returncode, seconds, usage.ru_utime + usage.ru_stime, output)


def _setup_commands() -> list[tuple[int, str]]:
    """(line, text after the setup) of each fresh-machine command."""
    return [(c.line, c.text[len(SETUP):]) for b in code_blocks(README.read_text(encoding="utf-8"), "bash")
            for c in shell_commands(b) if c.text.startswith(SETUP)]


def _steps() -> list[Step]:
    steps = []
    for i, block in enumerate(code_blocks(README.read_text(encoding="utf-8"), "bash")):
        for command in shell_commands(block):
            text = command.text
            if text.startswith(SETUP):
                text = text[len(SETUP):]
                if text == TEST_COMMAND:
                    continue  # the suite itself (test_fresh_machine_commands checks .ci/run runs it)
                text = text.replace(".venv/bin/", "")  # this checkout's venv is first on PATH
            steps.append(Step(i, command.line, text))
    return steps


STEPS = _steps()


def _missing(text: str) -> str | None:
    """The program or module ``text`` needs that is not installed here, if any."""
    for piece, needs in NEEDS.items():
        for need in needs:
            kind, name = need.split()
            if piece in text and (shutil.which(name) if kind == "program" else importlib.util.find_spec(name)) is None:
                return f"{kind} `{name}`"
    return None


def _run_block(steps: list[Step], folder: Path) -> dict[Step, Outcome]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    # tiny tensors gain nothing from intra-op threads, and on a busy 2-core box OpenMP's waiting
    # threads made these runs up to 10x slower (see pytest_configure in tests/conftest.py)
    env.setdefault("OMP_NUM_THREADS", "1")
    folder.mkdir(parents=True, exist_ok=True)
    outcomes: dict[Step, Outcome] = {}
    failed = None
    for step in steps:
        missing = _missing(step.text)
        if failed is not None or missing:
            reason = f"needs the {missing}, which this machine lacks" if missing else f"an earlier command failed: {failed}"
            outcomes[step] = Outcome(None, 0.0, 0.0, "", reason)
            continue
        outcome = outcomes[step] = _run(step.text, folder, env)
        if outcome.returncode:
            failed = step
    return outcomes


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[Step, Outcome]:
    """Run the blocks of the selected commands (each block whole, in order), two blocks at a time."""
    selected = {item.callspec.params["step"].block for item in request.session.items
                if getattr(item, "originalname", None) == "test_readme_command"}
    blocks = {b: [s for s in STEPS if s.block == b] for b in sorted(selected)}
    results: dict[Step, Outcome] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_run_block, steps, tmp_path_factory.mktemp(f"readme-block{b}"))
                   for b, steps in blocks.items()]
        for future in futures:
            results.update(future.result())
    return results


@pytest.mark.parametrize("step", STEPS, ids=[f"line{s.line}" for s in STEPS])
def test_readme_command(step: Step, outcomes: dict[Step, Outcome]):
    outcome = outcomes[step]
    if outcome.returncode is None:
        pytest.skip(f"{step}: {outcome.reason}")
    print(f"{outcome.seconds:6.1f} s wall {outcome.cpu_seconds:6.1f} s CPU  {step}")
    assert outcome.returncode == 0, f"{step}\nexit status {outcome.returncode}\n{outcome.output[-4000:]}"


def test_readme_has_commands_for_every_paper():
    """The extraction finds the blocks (a README rewrite that hides them would silently test nothing)."""
    text = " ".join(s.text for s in STEPS)
    for command in ("nasir count", "nasir search", "nasir compile", "nasir dna train", "nasir dna plus",
                    "nasir dance train", "nasir dance extract"):
        assert command in text


def test_fresh_machine_commands():
    """The README's only setup lines are its two fresh-machine commands, and CI runs the test one."""
    setups = _setup_commands()
    assert len(setups) == 2, f"expected the two fresh-machine commands, found {setups}"
    tails = [tail for _, tail in setups]
    assert TEST_COMMAND in tails, f"no fresh-machine command runs `{TEST_COMMAND}`: {tails}"
    assert any(t.startswith(".venv/bin/nasir ") for t in tails), f"no quick-start command: {tails}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert SETUP + TEST_COMMAND in ci, ".ci/run does not run the README's test command"
    readme_lines = {c.text for b in code_blocks(README.read_text(encoding="utf-8"), "bash") for c in shell_commands(b)}
    assert not [line for line in readme_lines if "pip install" in line and not line.startswith(SETUP)]


def _full_size_forms() -> list[tuple[int, str]]:
    return [(line, m.group(1)) for b in code_blocks(README.read_text(encoding="utf-8"), "bash")
            for text, line in shell_comments(b) if (m := FULL_SIZE.search(text))]


@pytest.mark.parametrize("line, command", _full_size_forms(), ids=[f"line{line}" for line, _ in _full_size_forms()])
def test_full_size_form_parses(line: int, command: str):
    calls = nasir_invocations(command)
    assert calls, f"README.md:{line}: the full-size form names no nasir command: {command}"
    for argv in calls:
        assert argument_error(argv) is None, f"README.md:{line}: {command}\n{argument_error(argv)}"


def test_every_small_command_shows_its_full_size():
    """Each training command of the README has a `# full size:` form of the same command."""
    full = [c for _, c in _full_size_forms()]
    for step in STEPS:
        for argv in nasir_invocations(step.text):
            name = " ".join(argv[:2] if argv[0] in ("dna", "dance") else argv[:1])
            trains = name in ("search", "dna train", "dna plus", "dance train", "dance extract")
            if trains:
                assert any(f"nasir {name} " in c for c in full), f"{step}: no `# full size:` form of `nasir {name}`"
