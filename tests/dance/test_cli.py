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
