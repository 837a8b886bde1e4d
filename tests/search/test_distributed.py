"""Many processes, one command (``nasir.distributed``): a step of 2 gloo processes on 2 x 16 images
equals a single-process step on the same 32 images (searches, ``nasir train``, DANCE), and a run
resumes with another process count.

BatchNorm: each process normalizes its 16 rows with their own statistics (DDP's default), so the
single-process reference runs the same search with BatchNorms that normalize the two groups of 16
rows of its batch separately (``per_process_batch_norm``); everything else is the plain
single-process ``SupernetSearch``. A plain single-process step differs (checked too), which shows
that the comparison sees the data each process trained on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from nasir.cli import main
from nasir.diagnostics import NasirError
from nasir.distributed import Processes

from ..cli.test_search_methods import CELL
from ._ddp_run import CASES, dance_for, dance_result, data, result, search_for, train_data, trainer_for, trainer_result

WORLD = 2


def launch(argv: list[str], world: int = WORLD, timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Run ``python argv`` in ``world`` processes with the environment torchrun gives its workers
    (torchrun's own agent would only add its start-up time); returns their results by rank. As
    torchrun does, a process that fails stops the others (which would wait for it forever)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    with tempfile.TemporaryDirectory() as logs:
        files = [(open(f"{logs}/{r}.out", "w+"), open(f"{logs}/{r}.err", "w+")) for r in range(world)]
        procs = [subprocess.Popen([sys.executable, *argv], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                                  stdout=out, stderr=err, text=True) for r, (out, err) in enumerate(files)]
        try:
            deadline = time.monotonic() + timeout
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                if any(p.poll() not in (None, 0) for p in procs):
                    break
                time.sleep(0.1)
        finally:
            for p in procs:
                p.kill()
                p.wait()
        results = []
        for p, (out, err) in zip(procs, files):
            out.seek(0), err.seek(0)
            results.append(subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read()))
            out.close(), err.close()
        return results


def per_process_batch_norm(module: nn.Module, groups: int = WORLD) -> None:
    """Make every BatchNorm of ``module`` normalize each of ``groups`` equal row groups on its own, as
    ``groups`` processes do with their shares of a batch."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = lambda x, norm=m.forward: torch.cat([norm(part) for part in x.chunk(groups)])


def _run(case: str, steps: int, checkpoint: Path | None = None, resume: bool = False, grouped: bool = True):
    search = search_for(case, steps)
    if grouped:
        per_process_batch_norm(search.model)
    search.run(*data(), checkpoint=checkpoint, resume=resume, progress=False)
    return result(search)


def _train(steps: int, checkpoint: Path | None = None):
    trainer = trainer_for(steps)
    per_process_batch_norm(trainer.model)
    trainer.run(*train_data(), checkpoint=checkpoint, progress=False)
    assert trainer.drop_prob == 0.3 * (steps - 1)
    return trainer_result(trainer)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The folder where two torchrun processes left their results (``_ddp_run.py``)."""
    out = tmp_path_factory.mktemp("ddp")
    _run("darts1", 1, checkpoint=out / "one.safetensors")  # for the two processes to resume
    _train(1, checkpoint=out / "train_one.safetensors")
    for done in launch([str(Path(__file__).with_name("_ddp_run.py")), str(out)]):
        assert done.returncode == 0, done.stderr[-3000:]
    return out


def _assert_same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("case", list(CASES))
def test_a_step_of_two_processes_equals_one_process_on_the_whole_batch(two_processes, case):
    """Weights, architecture parameters and the logged loss and accuracy after one step: DARTS first
    and second order (its unrolled gradients averaged explicitly), GDAS (a sampled path: unused
    parameters in DDP)."""
    _assert_same(load_file(two_processes / f"{case}.safetensors"), _run(case, 1))


def test_a_dance_stage_1_step_of_two_processes_equals_one_process_on_the_whole_batch(two_processes):
    """DANCE's first stage (gates open; the two processes also agree after stage 2, checked in them)."""
    trainer = dance_for(1, 0)
    per_process_batch_norm(trainer.net)
    trainer.train(data()[0])
    _assert_same(load_file(two_processes / "dance1.safetensors"), dance_result(trainer))


def test_train_steps_of_two_processes_equal_one_process_with_drop_path_and_the_auxiliary_loss(two_processes):
    """``nasir train`` (``Trainer``): two steps of the DARTS evaluation network, the second with drop
    path (each process keeps its rows of the whole batch's mask), both with the auxiliary loss; and
    two processes resume the step one process saved."""
    straight = _train(2)
    _assert_same(load_file(two_processes / "train.safetensors"), straight)
    _assert_same(load_file(two_processes / "train_resumed_by_two.safetensors"), straight)


def test_the_comparison_sees_batch_norm_groups(two_processes):
    got = load_file(two_processes / "darts1.safetensors")
    plain = _run("darts1", 1, grouped=False)
    assert any(not torch.allclose(got[name], plain[name], rtol=1e-5, atol=1e-6) for name in plain)


def test_two_processes_resume_what_one_saved_and_one_resumes_what_two_saved(two_processes, tmp_path):
    straight = _run("darts1", 2)
    _assert_same(load_file(two_processes / "resumed_by_two.safetensors"), straight)
    checkpoint = tmp_path / "two.safetensors"
    checkpoint.write_bytes((two_processes / "two.safetensors").read_bytes())
    _assert_same(_run("darts1", 2, checkpoint=checkpoint, resume=True), straight)


def test_the_global_batch_is_shared_evenly():
    assert Processes(torch.device("cpu"), rank=1, world=4).rows(32) == slice(8, 16)
    with pytest.raises(NasirError, match="multiple of the 4 processes"):
        Processes(torch.device("cpu"), rank=0, world=4).rows(30)


def _two_write_once_and_one_resumes(argv: list[str], output: list[str], capsys) -> None:
    """``nasir ARGV --steps 1 OUTPUT`` in two processes: process 0 alone prints and writes the
    checkpoint (``--checkpoint`` in ``argv``), its log and the output (``OUTPUT``: flag and file);
    then one process resumes the checkpoint to step 2."""
    first, second = launch(["-m", "nasir.cli", *argv, "--steps", "1", *output])
    assert first.returncode == second.returncode == 0, first.stderr[-3000:] + second.stderr[-3000:]
    assert "1 steps in" in first.stdout and "written to" in first.stdout and second.stdout == ""
    ck = Path(argv[argv.index("--checkpoint") + 1])
    assert ck.is_file() and Path(output[1]).is_file() and len(ck.with_suffix(".jsonl").read_text().splitlines()) == 1
    assert main([*argv, "--steps", "2", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out


def test_torchrun_search_prints_and_writes_once_and_one_process_resumes(tmp_path, capsys):
    """``torchrun --nproc_per_node 2 nasir search ...`` (PC-DARTS: edge weights are DDP parameters
    too), writing the architecture."""
    space = tmp_path / "cell.nas"
    space.write_text(CELL)
    argv = ["search", str(space), "--method", "pc-darts", "--warmup-epochs", "0", "--batch-size", "8",
            "--checkpoint", str(tmp_path / "run.safetensors")]
    _two_write_once_and_one_resumes(argv, ["--arch-out", str(tmp_path / "arch.json")], capsys)


def test_torchrun_train_prints_and_writes_once_and_one_process_resumes(tmp_path, capsys):
    """``torchrun --nproc_per_node 2 nasir train ...``, writing the trained network."""
    from ..train.test_train_cli import TINY

    space, arch = tmp_path / "tiny.nas", tmp_path / "arch.json"
    space.write_text(TINY)
    arch.write_text('{"y": "a"}')
    argv = ["train", str(space), "--arch", str(arch), "--batch-size", "8", "--checkpoint", str(tmp_path / "run.safetensors")]
    _two_write_once_and_one_resumes(argv, ["-o", str(tmp_path / "net.safetensors")], capsys)


def test_torchrun_dna_train_shares_the_blocks_and_equals_one_process(tmp_path):
    """``torchrun --nproc_per_node 2 nasir dna train``: process 0 trains the teacher and caches its
    features, each process distills its share of the blocks; the blocks equal a single process's."""
    from safetensors.torch import load_file as read

    space = str(Path(__file__).parents[1] / "dna" / "tiny_dna.nas")
    argv = ["dna", "train", space, "--teacher-steps", "2", "--steps", "3", "--batch-size", "8", "--images", "48"]
    first, second = launch(["-m", "nasir.cli", *argv, "--workdir", str(tmp_path / "two")])
    assert first.returncode == second.returncode == 0, first.stderr[-3000:] + second.stderr[-3000:]
    assert "trained by another process" in first.stdout and second.stdout == ""
    assert main([*argv, "--workdir", str(tmp_path / "one")]) == 0
    for block in ("block1.safetensors", "block2.safetensors"):
        two, one = read(tmp_path / "two" / "blocks" / block), read(tmp_path / "one" / "blocks" / block)
        assert two.keys() == one.keys()
        for name in one:
            assert torch.equal(two[name], one[name]), (block, name)
