"""Bad numbers, devices and option combinations: exit status 2 and a message that names the flag,
before anything is compiled or trained; never a traceback. A closed output stops a command with
status 141, not 0."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nasir.cli import main

SEARCH = ["search", "std/darts.nas", "-D", "C=4", "-D", "layers=2", "-D", "steps=2", "-D", "multiplier=2"]
DANCE = ["dance", "train", "std/resnet18.nas", "-D", "width=4", "--checkpoint", "unused.safetensors"]
DNA = ["dna", "train", "tests/dna/tiny_dna.nas", "--workdir", "unused"]


def _usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, message", [
    ([*SEARCH, "--device", "foo"], "argument --device: unknown device 'foo'"),
    ([*SEARCH, "--device", "cuda:x"], "argument --device: unknown device 'cuda:x'"),
    ([*SEARCH, "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    ([*SEARCH, "--steps", "-3"], "argument --steps: must be >= 1, got -3"),
    ([*SEARCH, "--steps", "2.5"], "argument --steps: expected a whole number, got '2.5'"),
    ([*SEARCH, "--beta", "nan"], "argument --beta: must be a finite number"),
    ([*SEARCH, "--checkpoint-every", "0"], "argument --checkpoint-every: must be >= 1"),
    ([*SEARCH, "--checkpoint-minutes", "-1"], "argument --checkpoint-minutes: must be >= 0"),
    ([*DANCE, "--budget", "0"], "argument --budget: must be > 0"),
    ([*DANCE, "--budget", "1.5"], "argument --budget: is a fraction in (0, 1] or a whole channel count"),
    ([*DANCE, "--stage2-steps", "-1"], "argument --stage2-steps: must be >= 0"),
    ([*DANCE, "--batch-size", "1"], "argument --batch-size: must be >= 2"),
    ([*DANCE, "--tau-end", "0"], "argument --tau-end: must be > 0"),
    (["dance", "extract", "c.safetensors", "--budget", "-0.5"], "argument --budget: must be > 0"),
    (["dance", "extract", "c.safetensors", "--budget", "0.5", "--finetune-steps", "-2"], "--finetune-steps: must be >= 0"),
    ([*DNA, "--steps", "-1"], "argument --steps: must be >= 0"),
    ([*DNA, "--workers", "0"], "argument --workers: must be >= 1"),
    ([*DNA, "--lr", "0"], "argument --lr: must be > 0"),
    (["dna", "search", "ratings.json", "--limit", "-1"], "argument --limit: must be > 0, got -1"),
    (["dna", "plus", "--workdir", "w", "--generations", "0"], "argument --generations: must be >= 1"),
    (["dna", "rate", "tests/dna/tiny_dna.nas", "--workdir", "w", "--samples", "0"], "argument --samples: must be >= 1"),
])
def test_bad_numbers_and_devices_name_their_flag(capsys, argv, message):
    assert message in _usage_error(capsys, argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_cuda(capsys, device):
    err = _usage_error(capsys, [*SEARCH, "--device", device])
    assert f"argument --device: {device}: CUDA is not available" in err and "--device cpu" in err


def test_a_cuda_index_the_machine_lacks(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    err = _usage_error(capsys, [*DANCE, "--device", "cuda:7"])
    assert "argument --device: cuda:7: this machine has 2 CUDA devices (cuda:0 .. cuda:1)" in err


def test_resume_without_a_checkpoint_is_an_error(capsys):
    assert main([*SEARCH, "--steps", "1", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume needs --checkpoint FILE" in err


@pytest.mark.parametrize("define, message", [
    ("C=abc", "-D C=abc: network 'darts' takes an integer for 'C' (default 16), not a string"),
    ("layers=2.5", "-D layers=2.5: network 'darts' takes an integer for 'layers' (default 8), not a number"),
    ("C=[4]", "-D C=[4]: network 'darts' takes an integer for 'C' (default 16), not a list"),
])
def test_a_define_of_the_wrong_type_names_the_flag(capsys, define, message):
    assert main(["count", "std/darts.nas", "-D", define]) == 2
    assert message in capsys.readouterr().err


def test_a_batch_larger_than_the_data(capsys):
    assert main([*SEARCH, "--steps", "1", "--batch-size", "5000"]) == 2
    assert "1000 samples are fewer than one batch of 5000" in capsys.readouterr().err


def test_a_closed_output_is_not_a_success():
    """`nasir ... | head` used to stop a long run half-way with status 0, as if it had finished."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "nasir.cli", "passes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "output was closed (broken pipe)" in err and "Traceback" not in err


def test_search_says_what_comes_next_and_how_to_resume(capsys, tmp_path, monkeypatch):
    import shlex

    from nasir.search.darts import SupernetSearch

    ck, arch = tmp_path / "ck.safetensors", tmp_path / "arch.json"
    argv = [*SEARCH, "--steps", "2", "--batch-size", "8", "--checkpoint", str(ck)]
    monkeypatch.setattr(SupernetSearch, "step", lambda self, train, val: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(argv) == 130
    hint = capsys.readouterr().err.splitlines()[-1]
    assert hint.startswith("next: nasir search std/darts.nas -D C=4") and f"--checkpoint {ck} --resume" in hint
    monkeypatch.undo()
    assert main([*argv, "--arch-out", str(arch)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("next: "))
    command = shlex.split(line[len("next: "):].split("  #")[0])
    assert command[:3] == ["nasir", "compile", "std/darts.nas"] and command[-2:] == ["--emit", "code"]
    assert main(command[1:]) == 0 and "def forward(self, x)" in capsys.readouterr().out


def test_an_option_given_dash_dash_is_refused_naming_it(capsys):
    """argparse turned `--steps=--` into an empty list that reached the search loop (long fuzz profile)."""
    from nasir.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["search", "std/darts.nas", "--steps=--"])
    assert exit_.value.code == 2 and "argument --steps: expected a value, got '--'" in capsys.readouterr().err
