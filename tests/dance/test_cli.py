"""``nasir dance gates|train|extract`` end to end, and exit status 2 on bad input."""

from __future__ import annotations

import json

from nasir.dance.cli import main


def test_gates_train_extract(tmp_path, capsys):
    gated = tmp_path / "gated.json"
    assert main(["dance", "gates", "std/resnet18.nas", "-D", "width=4", "--budget", "0.5", "-o", str(gated)]) == 0
    assert "12 gate groups" in capsys.readouterr().out
    ckpt = tmp_path / "ckpt.safetensors"
    assert main(["dance", "train", str(gated), "--stage1-steps", "1", "--stage2-steps", "1", "--batch-size", "8",
                 "--checkpoint", str(ckpt), "--no-progress"]) == 0
    masks = tmp_path / "masks.json"
    out = tmp_path / "small.json"
    assert main(["dance", "extract", str(ckpt), "--budget", "0.5", "--masks-out", str(masks), "-o", str(out),
                 "--weights", str(tmp_path / "w.safetensors"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "subnet at budget 0.5" in text
    data = json.loads(masks.read_text())
    assert sum(data["masks"]["h.conv"]) == 2
    assert json.loads(out.read_text())["name"] == "resnet18"


def test_bad_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a checkpoint")
    assert main(["dance", "extract", str(bad), "--budget", "0.5"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["dance", "train", "std/resnet18.nas", "-D", "width=4", "--budget-range", "x",
                 "--checkpoint", str(tmp_path / "c.safetensors")]) == 2


def test_extract_writes_all_outputs_or_none(tmp_path, capsys):
    from nasir.checkpoint import load_checkpoint, save_checkpoint

    ckpt = tmp_path / "ckpt.safetensors"
    assert main(["dance", "train", "std/resnet18.nas", "-D", "width=4", "--stage1-steps", "1", "--stage2-steps", "1",
                 "--batch-size", "8", "--checkpoint", str(ckpt), "--no-progress"]) == 0
    out = tmp_path / "a.json"
    assert main(["dance", "extract", str(ckpt), "--budget", "0.5", "-o", str(out), "--weights", str(tmp_path)]) == 2
    assert not out.exists()
    tensors, meta = load_checkpoint(ckpt)
    save_checkpoint(ckpt, tensors, {**meta, "budgets": list(meta["budgets"].values())})
    capsys.readouterr()
    assert main(["dance", "extract", str(ckpt), "--budget", "0.5", "-o", str(out)]) == 2
    assert "invalid metadata at budgets" in capsys.readouterr().err and not out.exists()
    assert main(["dance", "train", "std/resnet18.nas", "-D", "width=4", "--stage1-steps", "1", "--stage2-steps", "1",
                 "--batch-size", "8", "--checkpoint", str(ckpt), "--resume", "--no-progress"]) == 2
    assert "invalid metadata at budgets" in capsys.readouterr().err


def test_train_killed_in_stage_2_resumes_where_it_stopped_bit_for_bit(tmp_path, capsys, monkeypatch):
    """`nasir dance train --resume` continues stage 2 at the step of its last checkpoint (not at 0),
    with the temperature, random state and optimizers of that step: the result equals an
    uninterrupted run's exactly. `extract` on the unfinished checkpoint warns and says how to go on."""
    import shlex

    import torch

    from nasir.checkpoint import load_checkpoint
    from nasir.dance.train import DanceTrainer

    argv = ["dance", "train", "std/resnet18.nas", "-D", "width=4", "--stage1-steps", "1", "--stage2-steps", "4",
            "--batch-size", "8", "--cutout", "4", "--no-progress", "--checkpoint-every", "2", "--checkpoint-minutes", "0"]
    whole, part = tmp_path / "whole.safetensors", tmp_path / "part.safetensors"
    assert main([*argv, "--checkpoint", str(whole)]) == 0
    assert f"next: nasir dance extract {whole} --budget 0.5" in capsys.readouterr().out

    real_step2 = DanceTrainer._step2

    def killed_at_step_4(self, x, y):
        if self.log.step == 3:
            raise KeyboardInterrupt
        return real_step2(self, x, y)

    monkeypatch.setattr(DanceTrainer, "_step2", killed_at_step_4)
    assert main([*argv, "--checkpoint", str(part)]) == 130
    hint = capsys.readouterr().err.splitlines()[-1]
    assert hint.startswith("next: nasir dance train") and hint.split("  #")[0].endswith("--resume")
    monkeypatch.undo()

    assert main(["dance", "extract", str(part), "--budget", "0.5", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "unfinished (stage 2 stopped at step 2 of 4)" in err
    resume = shlex.split(err.split("continue it with: ")[1].splitlines()[0])
    assert resume[:3] == ["nasir", "dance", "train"] and resume[-1] == "--resume"
    assert "--cutout 4 --workers 0" in " ".join(resume)  # the options of the run it continues

    torch.manual_seed(99)  # nothing but the checkpoint carries over
    assert main([*resume[1:], "--no-progress"]) == 0
    assert f"resumed from {part}: stage 2 at step 2" in capsys.readouterr().out
    (expected, done), (got, resumed) = load_checkpoint(whole), load_checkpoint(part)
    assert resumed["stage"] == "done" and [h["loss"] for h in resumed["history"]] == [h["loss"] for h in done["history"]]
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert torch.equal(value, got[key]), key
