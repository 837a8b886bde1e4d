"""The command line: outputs, exit status 2 on bad input, no partial output files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nasir.cli import main
from nasir.ir.genotype import DARTS_V2
from nasir.ir.graph import Graph

BAD = "network n(C = 4) {\n  input x: [3, 8, 8]\n  y = conv(C, 3 -> relu)(x)\n  output y\n}\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_count_darts(capsys):
    code, out, _ = run(capsys, "count", "std/darts.nas")
    assert code == 0 and str(8**28) in out


def test_compile_summary_and_stats(capsys):
    code, out, err = run(capsys, "compile", "std/nb201.nas", "-D", "N=1", "--passes", "canonicalize,dead-code", "--stats")
    assert code == 0
    assert "search space: 15625 architectures" in out
    assert "canonicalize" in err and "dead-code" in err


def test_compile_json_round_trips_through_the_cli(capsys, tmp_path):
    out_file = tmp_path / "g.json"
    code, _, _ = run(capsys, "compile", "std/darts.nas", "-D", "layers=2", "--emit", "json", "-o", str(out_file))
    assert code == 0
    graph = Graph.load(out_file)
    code, out, _ = run(capsys, "count", str(out_file))
    assert code == 0 and str(graph.search_space_size()) in out


def test_compile_emits_dot_code_and_ir(capsys):
    for emit, marker in (("dot", "digraph"), ("code", "def forward(self, x)"), ("ir", "graph @darts")):
        code, out, _ = run(capsys, "compile", "std/darts.nas", "-D", "layers=2", "--emit", emit)
        assert code == 0 and marker in out


def test_fixed_code_from_arch_file(capsys, tmp_path):
    from nasir.frontends.elaborate import parse_file, std_path

    g = parse_file(std_path("darts"), layers=2)
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"arch": {a: "dil_conv_3x3" for a in g.arch}}))
    code, out, _ = run(capsys, "compile", "std/darts.nas", "-D", "layers=2", "--emit", "code", "--mode", "fixed",
                       "--arch", str(arch))
    assert code == 0 and "dil_conv_3x3" in out and "softmax" not in out


def test_print_ir_after_all(capsys):
    code, _, err = run(capsys, "compile", "std/nb201.nas", "-D", "N=1", "--passes", "canonicalize", "--print-ir-after-all")
    assert code == 0 and "IR after canonicalize" in err


def test_passes_lists_docs(capsys):
    code, out, _ = run(capsys, "passes")
    assert code == 0 and "canonicalize" in out and "[exact]" in out


def test_show(capsys):
    code, out, _ = run(capsys, "show", "std/nb201.nas", "-D", "N=1")
    assert code == 0 and "nor_conv_3x3" in out and "params" in out


def test_bad_dsl_gives_located_error_exit_2_and_no_output(capsys, tmp_path):
    src = tmp_path / "bad.nas"
    src.write_text(BAD)
    target = tmp_path / "out.json"
    target.write_text("previous content")
    code, out, err = run(capsys, "compile", str(src), "--emit", "json", "-o", str(target))
    assert code == 2
    assert err.startswith(f"{src}:3:15: error: expected a module, got an integer")
    assert "  y = conv(C, 3 -> relu)(x)" in err and "^" in err
    assert "Traceback" not in err
    assert target.read_text() == "previous content"  # nothing half-written or overwritten
    assert list(tmp_path.iterdir()) == [src, target] or sorted(tmp_path.iterdir()) == sorted([src, target])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compile", "missing.nas"], "no such file"),
        (["compile", "std/darts.nas", "--passes", "nope"], "unknown pass 'nope'"),
        (["compile", "std/darts.nas", "--passes", "canonicalize{x=1}"], "has no option 'x'"),
        (["compile", "std/darts.nas", "-D", "Q=3"], "has no parameter 'Q'"),
        (["compile", "std/darts.nas", "--emit", "code", "--mode", "fixed"], "needs --arch"),
    ],
)
def test_bad_input_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_wrong_flag_is_exit_2():
    proc = subprocess.run([sys.executable, "-m", "nasir.cli", "compile", "std/darts.nas", "--emitt", "json"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_search_runs_and_resumes(capsys, tmp_path):
    ck = tmp_path / "ck.safetensors"
    args = ["search", "std/darts.nas", "-D", "C=4", "-D", "layers=2", "-D", "steps=2", "-D", "multiplier=2",
            "--batch-size", "8", "--checkpoint", str(ck)]
    code, out, _ = run(capsys, *args, "--steps", "2")
    assert code == 0 and "2 steps" in out and ck.exists()
    code, out, _ = run(capsys, *args, "--steps", "3", "--resume")
    assert code == 0 and "3 steps" in out


def test_search_reports_what_show_counts(capsys, tmp_path):
    """The architecture-parameter count is `nasir show`'s (one per choice); a network without choices
    reports its test accuracy as the network's, not a supernet's."""
    args = ["std/darts.nas", "-D", "C=4", "-D", "layers=2", "-D", "steps=2", "-D", "multiplier=2"]
    code, shown, _ = run(capsys, "show", *args)
    n = int(shown.split(" architecture parameters")[0].rsplit(" ", 1)[1])
    code, out, _ = run(capsys, "search", *args, "--steps", "1", "--batch-size", "8")
    assert code == 0 and f"weights, {n} architecture parameters (" in out and "supernet test accuracy" in out
    plain = tmp_path / "plain.nas"
    plain.write_text("network plain() {\n  input x: [3, 32, 32]\n"
                     "  output (conv(4, 3) -> relu -> global_avg_pool -> linear(10))(x)\n}\n")
    code, out, _ = run(capsys, "search", str(plain), "--steps", "1", "--batch-size", "8", "--method", "spos")
    assert code == 0 and "network test accuracy" in out and "supernet" not in out.split("steps in")[1]


def test_corrupt_checkpoint_is_exit_2(capsys, tmp_path):
    ck = tmp_path / "ck.safetensors"
    ck.write_bytes(b"\x00garbage")
    code, _, err = run(capsys, "search", "std/darts.nas", "-D", "C=4", "-D", "layers=2", "--steps", "1",
                       "--checkpoint", str(ck), "--resume")
    assert code == 2 and "corrupt" in err


def test_render_picture_or_clear_error(capsys, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "nb.svg"
    if shutil.which("dot"):
        code, _, err = run(capsys, "compile", "std/nb201.nas", "-D", "N=1", "--emit", "svg", "-o", str(target))
        assert code == 0 and target.read_text().lstrip().startswith("<?xml")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    missing = tmp_path / "none.svg"
    code, _, err = run(capsys, "compile", "std/nb201.nas", "-D", "N=1", "--emit", "svg", "-o", str(missing))
    assert code == 2 and "Graphviz `dot`" in err and not missing.exists()


SMALL_DARTS = ["std/darts.nas", "-D", "C=4", "-D", "layers=2", "-D", "steps=2", "-D", "multiplier=2"]


def test_a_damaged_search_checkpoint_is_exit_2_and_changes_nothing(capsys, tmp_path):
    from nasir.checkpoint import load_checkpoint, save_checkpoint

    ck, arch = tmp_path / "ck.safetensors", tmp_path / "arch.json"
    args = ["search", *SMALL_DARTS, "--batch-size", "8", "--checkpoint", str(ck), "--arch-out", str(arch)]
    assert run(capsys, *args, "--steps", "1")[0] == 0
    tensors, meta = load_checkpoint(ck)
    save_checkpoint(ck, tensors, {**meta, "step": -5})
    before = ck.read_bytes(), arch.read_bytes()
    code, _, err = run(capsys, *args, "--steps", "2", "--resume")
    assert code == 2 and "invalid metadata at step" in err and "Traceback" not in err
    assert (ck.read_bytes(), arch.read_bytes()) == before


@pytest.mark.parametrize("argv, message", [
    (["compile", "std/nb201.nas", "--emit", "json", "-o", "{dir}"], "--output {dir} is a directory"),
    (["search", *SMALL_DARTS, "--checkpoint", "{dir}"], "--checkpoint {dir} is a directory"),
    (["search", *SMALL_DARTS, "--arch-out", "{file}/arch.json"], "is not a directory"),
    (["dance", "extract", "ck.safetensors", "--budget", "0.5", "-o", "{dir}/a.json", "--weights", "{dir}"],
     "--weights {dir} is a directory"),
    (["dna", "train", "std/mbconv.nas", "--workdir", "{file}"], "exists and is not a directory"),
])
def test_bad_output_locations_fail_before_any_work(capsys, tmp_path, monkeypatch, argv, message):
    import nasir.api

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output locations were checked")

    monkeypatch.setattr(nasir.api, "load_graph", no_work)
    (tmp_path / "file").write_text("")
    fill = {"dir": str(tmp_path), "file": str(tmp_path / "file")}
    code, _, err = run(capsys, *[a.format(**fill) for a in argv])
    assert code == 2 and message.format(**fill) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_search_writes_a_named_architecture_that_compile_reads(capsys, tmp_path):
    arch = tmp_path / "arch.json"
    code, _, _ = run(capsys, "search", *SMALL_DARTS, "--steps", "1", "--batch-size", "8", "--arch-out", str(arch))
    doc = json.loads(arch.read_text())
    assert code == 0 and (doc["format"], doc["version"], doc["network"], doc["method"]) == ("nasir-arch", 1, "darts", "darts")
    assert doc["options"]["steps"] == 1 and "loss" in doc["metrics"]
    # two reduction cells of 2 nodes: node 0 keeps both its edges, node 1 two of its three; the third is 'none'
    assert sorted(doc["arch"]) == ["reduce.n0_0", "reduce.n0_1", "reduce.n1_0", "reduce.n1_1", "reduce.n1_2"]
    assert [doc["arch"][f"reduce.n1_{j}"] == "none" for j in range(3)].count(True) == 1
    code, out, _ = run(capsys, "compile", *SMALL_DARTS, "--emit", "code", "--mode", "fixed", "--arch", str(arch))
    assert code == 0 and "softmax" not in out
    code, _, err = run(capsys, "compile", "std/nb201.nas", "-D", "N=1", "--emit", "code", "--mode", "fixed",
                       "--arch", str(arch))
    assert code == 2 and "the architecture is for network 'darts', not 'nb201'" in err


@pytest.mark.parametrize("space, text, op", [
    (["std/darts.nas", "-D", "C=4", "-D", "layers=3"], DARTS_V2, "dil_conv_3x3"),
    (["std/nb201.nas", "-D", "N=1"], "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|",
     "avg_pool_3x3"),
])
def test_compile_reads_genotype_and_nb201_text(capsys, tmp_path, space, text, op):
    code, out, _ = run(capsys, "compile", *space, "--emit", "code", "--mode", "fixed", "--arch", text)
    assert code == 0 and op in out and "none" not in out
    path = tmp_path / "arch.txt"
    path.write_text(text + "\n")
    assert run(capsys, "compile", *space, "--emit", "code", "--mode", "fixed", "--arch", str(path))[1] == out
    other = ["std/nb201.nas", "-D", "N=1"] if "darts" in space[0] else ["std/darts.nas", "-D", "layers=3"]
    code, _, err = run(capsys, "compile", *other, "--emit", "code", "--mode", "fixed", "--arch", text)
    assert code == 2 and "-like space" in err and "Traceback" not in err
