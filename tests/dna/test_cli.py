import json
from pathlib import Path

import pytest

from nasir.cli import main

SPACE = str(Path(__file__).with_name("tiny_dna.nas"))


def test_partition_train_rate_search(tmp_path, capsys):
    work = tmp_path / "w"
    assert main(["dna", "partition", SPACE, "--json", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["size"] == "12"
    assert main(["dna", "train", SPACE, "--workdir", str(work), "--teacher-steps", "2", "--steps", "3",
                 "--batch-size", "8", "--images", "48"]) == 0
    assert sorted(p.name for p in (work / "blocks").iterdir()) == ["block1.safetensors", "block2.safetensors"]
    # a second run resumes: nothing left to train
    assert main(["dna", "train", SPACE, "--workdir", str(work), "--teacher-steps", "2", "--steps", "3",
                 "--batch-size", "8", "--images", "48"]) == 0
    assert "(already trained)" in capsys.readouterr().out
    assert main(["dna", "rate", SPACE, "--workdir", str(work), "--samples", "16"]) == 0
    ratings = json.loads((work / "ratings.json").read_text())
    assert [len(b["paths"]) for b in ratings["blocks"]] == [6, 2]
    out = tmp_path / "arch.json"
    capsys.readouterr()
    assert main(["dna", "search", str(work / "ratings.json"), "--pareto", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "nasir-arch" and doc["network"] == "tiny_dna" and doc["method"] == "dna"
    # names of the IR space's parameters: a cell per block, and a kernel/expansion per layer of that cell
    assert doc["arch"]["blocks0"] in ("cell1", "cell2") and doc["arch"]["blocks1"] == "cell1"
    assert all(v in ("k3_e1", "k3_e2") for k, v in doc["arch"].items() if k not in ("blocks0", "blocks1"))
    assert len(doc["arch"]) == 2 + (1 if doc["arch"]["blocks0"] == "cell1" else 2) + 1
    # the printed architecture is the written one
    printed = capsys.readouterr().out
    assert f"block1: {doc['arch']['blocks0']}: " in printed and "cell 2" not in printed
    assert doc["alternatives"][-1]["metrics"]["score"] == doc["metrics"]["score"]
    cheapest = doc["alternatives"][0]["metrics"]["params"]
    assert main(["dna", "search", str(work / "ratings.json"), "--limit", str(cheapest), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["params"] == cheapest
    # the architecture compiles to a fixed network of the space it came from
    assert main(["compile", SPACE, "--mode", "fixed", "--arch", str(out), "--emit", "code"]) == 0
    assert "blocks0" in capsys.readouterr().out


def test_bad_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "r.json"
    bad.write_text("{oops")
    assert main(["dna", "search", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"format": "nasir-dna-rating-1", "blocks": [
        {"block": "b", "paths": [{"index": 0, "cell": 0, "ops": [0], "score": 1.0, "params": 10}]}]}))
    assert main(["dna", "search", str(bad), "--limit", "5"]) == 2
    assert "no architecture satisfies" in capsys.readouterr().err
    (tmp_path / "w" / "blocks").mkdir(parents=True)
    (tmp_path / "w" / "features.safetensors").write_bytes(b"\x00" * 64)
    assert main(["dna", "rate", SPACE, "--workdir", str(tmp_path / "w")]) == 2
    assert "corrupt" in capsys.readouterr().err
    # too few images for one batch: refused before a teacher is trained or anything is written
    assert main(["dna", "train", SPACE, "--workdir", str(tmp_path / "t"), "--images", "4"]) == 2
    assert "--images 4" in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_dnapp_train_then_rate_uses_the_projection_heads(tmp_path):
    """`dna train --loss ssl` then `dna rate`: the ratings come from the embedding space (they
    differ from rating the same weights on raw teacher features)."""
    import torch

    from nasir.dna.distill import block_checkpoint, load_block, load_trained_block
    from nasir.dna.rating import rate_block
    from nasir.dna.teacher import load_features

    work = tmp_path / "w"
    assert main(["dna", "train", SPACE, "--workdir", str(work), "--teacher-steps", "2", "--steps", "3",
                 "--batch-size", "8", "--images", "48", "--loss", "ssl"]) == 0
    assert main(["dna", "rate", SPACE, "--workdir", str(work), "--samples", "16"]) == 0
    from nasir.dna.rating import load_ratings

    cli_scores = load_ratings(work / "ratings.json")[0].scores
    import argparse

    from nasir.dna.cli import _partitioned, _space_for

    graph, _ = _partitioned(argparse.Namespace(file=SPACE, entry=None, define=[], auto=False, blocks=None))
    torch.manual_seed(0)
    space, _ = _space_for(graph, work)
    feats, _ = load_features(work / "features.safetensors")
    block = space.blocks[0]
    head = load_trained_block(block_checkpoint(work / "blocks", 0), block)
    assert head is not None
    assert rate_block(block, feats[0][-16:], feats[1][-16:], head=head).scores == pytest.approx(cli_scores)
    load_block(block_checkpoint(work / "blocks", 0), block)
    assert rate_block(block, feats[0][-16:], feats[1][-16:]).scores != pytest.approx(cli_scores)


def test_plus_resumes_from_saved_teachers(tmp_path, capsys):
    """`nasir dna plus` twice in one work directory: the second run retrains no teacher."""
    work = tmp_path / "plus"
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"cells": [[[1, 4]], [[1, 4]]], "strides": [1, 2], "kernels": [3], "expansions": [1, 2],
                                 "stem": 4}))
    argv = ["dna", "plus", "--workdir", str(work), "--space", str(space), "--generations", "2", "--steps", "2",
            "--teacher-steps", "2", "--loss", "ssl", "--images", "96"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "reused" not in first and (work / "gen1" / "teacher.safetensors").is_file()
    assert (work / "gen2" / "teacher.safetensors").is_file()
    assert "generation 1:" in first and "generation 2:" in first and "final student (generation 2" in first
    assert [g["generation"] for g in json.loads((work / "generations.json").read_text())] == [1, 2]
    assert not list(work.glob("gen*/teacher.partial.safetensors"))  # removed once the teacher is saved
    assert main(argv) == 0
    assert capsys.readouterr().out.count("reused") == 2
    space.write_text("{\"cells\": 3}")
    assert main(argv) == 2
    assert "not a valid space spec" in capsys.readouterr().err


# std/mbconv.nas itself, shrunk by -D to two blocks of one-layer cells (6 + 12 paths)
TINY_MBCONV = ["std/mbconv.nas", "-D", "resolution=32", "-D", "stem=4", "-D", "widths=[8,8]", "-D", "strides=[2,2]",
               "-D", "cells=[[[1,4],[1,8]],[[1,4]]]"]


def test_std_mbconv_dna_architecture_compiles_fixed(tmp_path, capsys):
    """`dna train/rate/search -o arch.json` then `nasir compile std/mbconv.nas --mode fixed --arch arch.json`."""
    work, arch = tmp_path / "w", tmp_path / "arch.json"
    assert main(["dna", "train", *TINY_MBCONV, "--workdir", str(work), "--teacher-steps", "1", "--steps", "1",
                 "--batch-size", "8", "--images", "16"]) == 0
    assert main(["dna", "rate", *TINY_MBCONV, "--workdir", str(work), "--samples", "8"]) == 0
    assert main(["dna", "search", str(work / "ratings.json"), "-o", str(arch)]) == 0
    doc = json.loads(arch.read_text())
    assert doc["network"] == "mbconv_space" and doc["arch"]["blocks0"] in ("cell1", "cell2")
    capsys.readouterr()
    assert main(["compile", *TINY_MBCONV, "--mode", "fixed", "--arch", str(arch), "--emit", "code"]) == 0
    code = capsys.readouterr().out
    assert f"blocks0.{doc['arch']['blocks0']}.mb_layer" in code and "blocks1.cell1.mb_layer" in code


def test_each_step_says_what_comes_next_and_rate_warns_about_unfinished_blocks(tmp_path, capsys, monkeypatch):
    """partition -> train (killed in block 2) -> rate warns and prints the command that finishes the
    blocks -> that command resumes block 2 -> rate -> search, each printing the next command."""
    import shlex

    from nasir.dna import distill

    work = tmp_path / "w"
    assert main(["dna", "partition", SPACE]) == 0
    assert f"next: nasir dna train {SPACE} --workdir dna-work" in capsys.readouterr().out
    real_step_paths = distill.step_paths

    def killed_in_block_2(block, step, seed, index):
        if index == 1 and step == 2:
            raise KeyboardInterrupt
        return real_step_paths(block, step, seed, index)

    monkeypatch.setattr(distill, "step_paths", killed_in_block_2)
    argv = ["dna", "train", SPACE, "--workdir", str(work), "--teacher-steps", "2", "--steps", "4", "--batch-size", "8",
            "--images", "48", "--checkpoint-every", "2", "--checkpoint-minutes", "0"]
    assert main(argv) == 130
    assert "next: nasir dna train" in capsys.readouterr().err
    monkeypatch.undo()

    assert main(["dna", "rate", SPACE, "--workdir", str(work), "--samples", "16"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 of 2 blocks stopped training early (" in err and " at step 2 of 4)" in err
    finish = shlex.split(err.split("finish them with: ")[1].splitlines()[0])
    assert finish[:3] == ["nasir", "dna", "train"]
    assert main(finish[1:]) == 0
    out = capsys.readouterr().out
    assert "resumed at step 2" in out and f"next: nasir dna rate {SPACE} --workdir {work}" in out

    assert main(["dna", "rate", SPACE, "--workdir", str(work), "--samples", "16"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert f"next: nasir dna search {work / 'ratings.json'} --pareto -o {work / 'arch.json'}" in captured.out
    assert main(["dna", "search", str(work / "ratings.json"), "-o", str(work / "arch.json")]) == 0
    compile_line = f"next: nasir compile {SPACE} --mode fixed --arch {work / 'arch.json'} --emit code"
    assert compile_line in capsys.readouterr().out
    assert main(shlex.split(compile_line.removeprefix("next: nasir "))) == 0  # the printed command works
    assert "def forward(self, x)" in capsys.readouterr().out


def test_rate_before_train_says_to_train_first(tmp_path, capsys):
    assert main(["dna", "rate", SPACE, "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "holds no teacher features" in err and f"nasir dna train {SPACE} --workdir {tmp_path / 'w'}" in err


def test_the_command_printed_to_continue_plus_is_the_same_run():
    from nasir.cli import build_parser
    from nasir.dna.cli import _plus_command

    argv = ["dna", "plus", "--workdir", "w", "--space", "s.json", "--generations", "3", "--limit", "5e5", "--loss", "ssl",
            "--images", "96", "--checkpoint-minutes", "1"]
    first = vars(build_parser().parse_args(argv))
    again = vars(build_parser().parse_args(_plus_command(build_parser().parse_args(argv))))
    differ = {k for k in first if first[k] != again[k]}
    assert differ == {"checkpoint_minutes"}  # the save intervals may change between a run and its continuation
