"""``nasir search`` methods on the command line: published defaults, PC-DARTS through its pass,
second order, epochs or steps, the per-epoch log beside the checkpoint."""

from __future__ import annotations

import json

import pytest

from nasir.cli import main
from nasir.search.methods import METHODS

#: a two-candidate space: milliseconds per step
TINY = """network tiny() {
  input x: [3, 32, 32]
  y = one_of { a: conv(4, 3, 2)  b: conv(4, 1, 2) }(x)
  z = (relu -> global_avg_pool -> linear(10))(y)
  output z
}
"""
#: two DARTS-like nodes on 16 x 16 images, 8 channels: what partial-channel{k=4} splits
CELL = """choice edge(C) = one_of { none: zero  skip_connect: identity  conv: relu -> conv(C, 3) -> bn(affine = false) }
network cell(C = 8) {
  input x: [3, 16, 16]
  s0 = (conv(C, 3) -> bn)(x)
  s1 = (conv(C, 1) -> bn)(x)
  n0 = input_choice(2, [edge(C)(s0), edge(C)(s1)])
  n1 = input_choice(2, [edge(C)(s0), edge(C)(s1), edge(C)(n0)])
  out = (global_avg_pool -> linear(10))(n1)
  output out
}
"""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _space(tmp_path, text):
    path = tmp_path / "space.nas"
    path.write_text(text)
    return path


def test_help_lists_every_methods_published_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, m in METHODS.items():
        assert f"{name}: batch {m.batch_size}, {m.epochs} epochs" in text
    assert "0.025->0.001 cosine" in text and "arch from epoch 15" in text and "tau 10->0.1" in text


def test_options_not_given_take_the_methods_values(capsys, tmp_path):
    arch = tmp_path / "arch.json"
    code, out, err = run(capsys, "search", _space(tmp_path, TINY), "--steps", "1", "--arch-out", arch)
    assert code == 0, err
    options = json.loads(arch.read_text())["options"]
    assert options["batch_size"] == 64 and options["order"] == 1  # DARTS' batch
    code, out, err = run(capsys, "search", _space(tmp_path, TINY), "--steps", "1", "--batch-size", "8", "--lr", "0.5",
                         "--arch-out", arch)
    assert code == 0 and json.loads(arch.read_text())["options"]["batch_size"] == 8


def test_pc_darts_searches_partial_channels_and_builds_the_plain_network(capsys, tmp_path):
    space, arch = _space(tmp_path, CELL), tmp_path / "arch.json"
    code, out, err = run(capsys, "search", space, "--method", "pc-darts", "--steps", "2", "--batch-size", "4",
                         "--arch-out", arch)
    assert code == 0, err
    assert "pc-darts: passes partial-channel{k=4} first" in out
    assert "5 architecture parameters (20 architecture weights)" in out  # 5 edges of 3 candidates, 2 + 3 edge weights
    doc = json.loads(arch.read_text())
    assert doc["method"] == "pc-darts" and doc["options"]["passes"] == "partial-channel{k=4}"
    assert len(doc["arch"]) == 5 and list(doc["arch"].values()).count("none") == 1  # node 1 keeps 2 of 3 edges
    follow = next(line for line in out.splitlines() if line.startswith("next: nasir compile"))
    assert "partial-channel" not in follow and "--passes" not in follow  # the network is the plain space's
    code, out, err = run(capsys, "compile", space, "--mode", "fixed", "--arch", arch, "--emit", "code")
    assert code == 0 and "channel_shuffle" not in out and "narrow" not in out


def test_second_order_darts_on_the_command_line(capsys, tmp_path):
    code, out, err = run(capsys, "search", _space(tmp_path, TINY), "--order", "2", "--steps", "2", "--batch-size", "4")
    assert code == 0 and "2 steps" in out, err
    code, _, err = run(capsys, "search", _space(tmp_path, TINY), "--method", "gdas", "--order", "2", "--steps", "1")
    assert code == 2 and "second order is a DARTS method" in err


def test_epochs_or_steps_not_both(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["search", str(_space(tmp_path, TINY)), "--epochs", "2", "--steps", "3"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_the_epoch_log_lies_beside_the_checkpoint(capsys, tmp_path):
    ck = tmp_path / "run.safetensors"
    code, out, err = run(capsys, "search", _space(tmp_path, TINY), "--epochs", "1", "--batch-size", "500",
                         "--checkpoint", ck)
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"], r["valid_images"]) for r in records] == [(1, 2, 1000)]
    assert f"per-epoch log: {tmp_path / 'run.jsonl'}" in out and "(1.00 epochs of 2 steps)" in out


def test_searching_the_evaluation_network_is_refused_clearly(capsys):
    code, _, err = run(capsys, "search", "std/darts.nas", "-D", "eval=true", "-D", "C=2", "-D", "layers=3", "-D", "steps=1",
                       "-D", "multiplier=1", "--steps", "1", "--batch-size", "8")
    assert code == 2 and "-D eval=true builds the evaluation network" in err and "search needs the search network" in err
