"""A resumable command killed with SIGKILL in the middle of its run, then resumed: the result must be
bit for bit that of an uninterrupted run (``nasir search``, ``nasir train``).

``assert_resumes_after_sigkill(args, folder, slowed="nasir.search.darts:SupernetSearch.step",
kill_at=4, steps=9, epochs=3)`` runs ``nasir ARGS --checkpoint folder/straight.safetensors`` to the
end, starts the same command with ``folder/killed.safetensors`` in a child process whose ``slowed``
method sleeps 0.2 s per call (so the kill lands mid-run), kills it with SIGKILL once its checkpoint
is at step ``kill_at`` or later, resumes it with ``--resume`` in this process, and compares the two
checkpoints (every tensor: weights, statistics, optimizer states; the losses and accuracies) and
their per-epoch logs (all but the time; ``epochs`` of them). Both processes run torch on one thread:
the same arithmetic.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: the child: ``nasir ARGS`` with ``MODULE:CLASS.METHOD`` (its first argument) slowed down
_SLOWED_RUN = """import importlib, sys, time, torch
torch.set_num_threads(1)
module, _, attribute = sys.argv[1].partition(":")
owner_name, _, method = attribute.partition(".")
owner = getattr(importlib.import_module(module), owner_name)
real = getattr(owner, method)
setattr(owner, method, lambda self, *args: (time.sleep(0.2), real(self, *args))[1])
from nasir.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _epochs(log: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in log.read_text().splitlines()]


def assert_resumes_after_sigkill(args: Sequence[str], folder: Path, *, slowed: str, kill_at: int, steps: int,
                                 epochs: int) -> None:
    """See the module docstring; ``steps``: the run's length, which the killed run must not reach."""
    import torch

    from nasir.checkpoint import load_checkpoint
    from nasir.cli import main

    straight, killed = folder / "straight.safetensors", folder / "killed.safetensors"
    assert main([*args, "--checkpoint", str(straight)]) == 0
    child = subprocess.Popen([sys.executable, "-c", _SLOWED_RUN, slowed, *args, "--checkpoint", str(killed)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if killed.exists() and load_checkpoint(killed)[1]["step"] >= kill_at:
                break
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert kill_at <= load_checkpoint(killed)[1]["step"] < steps  # it died mid-run
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--checkpoint", str(killed), "--resume"]) == 0
    assert "resumed from" in out.getvalue()
    (a, meta_a), (b, meta_b) = load_checkpoint(straight), load_checkpoint(killed)
    assert sorted(a) == sorted(b) and meta_a["step"] == meta_b["step"] == steps
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert meta_a["losses"] == meta_b["losses"] and meta_a["accuracies"] == meta_b["accuracies"]
    assert _epochs(straight.with_suffix(".jsonl")) == _epochs(killed.with_suffix(".jsonl"))
    assert [r["epoch"] for r in _epochs(killed.with_suffix(".jsonl"))] == list(range(1, epochs + 1))
