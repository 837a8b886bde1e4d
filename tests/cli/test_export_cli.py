"""``nasir export``: a searched architecture, after the passes it was searched with, written as a plain
network that predicts what the trained supernet (a search checkpoint) predicts at that architecture;
bad input exits 2 before anything is written."""

from __future__ import annotations

import json

import pytest
import torch

from nasir.api import compile_file
from nasir.cli import main
from nasir.exporting import load_fixed_network, search_checkpoint_weights
from nasir.ir.arch import load_architecture, resolve_arch
from nasir.lowering import lower
from nasir.runtime import FixedSampler
from nasir.search.darts import SearchConfig, SupernetSearch

TINY = ["-D", "C=4", "-D", "layers=1", "-D", "steps=2", "-D", "multiplier=2"]
PASSES = "topo-simplify,reparam{kernel_norm=true}"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """Tiny DARTS under the TopoNAS passes after one search step, saved as ``nasir search --checkpoint``
    and ``--arch-out`` save it: (checkpoint, architecture file)."""
    folder = tmp_path_factory.mktemp("search")
    ckpt, arch = folder / "run.safetensors", folder / "arch.json"
    graph = _graph()
    search = SupernetSearch(lower(graph, "supernet", seed=0), SearchConfig(steps=1, batch_size=4))
    data = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 3, 32, 32, generator=data), torch.randint(10, (4,), generator=data)) for _ in range(2)]
    search.step(*batches)
    search.save(ckpt)
    search.model.derive().save(arch)
    return ckpt, arch


def _graph():
    return compile_file("std/darts.nas", passes=PASSES, C=4, layers=1, steps=2, multiplier=2)


def test_export_predicts_what_the_supernet_predicts_at_the_architecture(searched, tmp_path, capsys):
    ckpt, arch_file = searched
    common = ["export", "std/darts.nas", *TINY, "--passes", PASSES, "--arch", str(arch_file), "--checkpoint", str(ckpt)]
    for fmt in ("pt2", "safetensors"):
        capsys.readouterr()
        assert main([*common, "--format", fmt, "-o", str(tmp_path / f"net.{fmt}")]) == 0
        out = capsys.readouterr().out
        assert f"written to {tmp_path / f'net.{fmt}'} ({fmt}); checked" in out and "next: " in out
    graph = _graph()
    supernet = lower(graph, "sampled", sampler=FixedSampler(resolve_arch(graph, arch_file)))
    supernet.load_state_dict(search_checkpoint_weights(ckpt))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = supernet.eval()(x)
        for got in (torch.export.load(tmp_path / "net.pt2").module()(x), load_fixed_network(tmp_path / "net.safetensors")(x)):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_bad_input_exits_2_with_a_clear_error(searched, tmp_path, capsys, monkeypatch):
    ckpt, arch_file = searched
    base = ["export", "std/darts.nas", *TINY, "--arch", str(arch_file)]
    cases = [
        ([*base, "--passes", PASSES, "--format", "pt2", "-o", str(tmp_path)], "is a directory"),
        ([*base, "--passes", PASSES, "--format", "pt2", "-o", str(tmp_path / "a" / "b.pt2"), "--checkpoint",
          str(tmp_path / "none.safetensors")], "no checkpoint at"),
        ([*base, "--checkpoint", str(ckpt), "--format", "pt2", "-o", str(tmp_path / "x.pt2")],  # searched with passes
         "hint: give the weights of a supernet of the same graph: same file, -D values and passes"),
        (["export", "std/darts.nas", *TINY, "--arch", str(tmp_path / "no.json"), "--format", "safetensors", "-o",
          str(tmp_path / "x.safetensors")], "cannot read architecture"),
    ]
    bad_arch = tmp_path / "bad.json"
    bad_arch.write_text(json.dumps({"arch": {**load_architecture(arch_file, _graph()).arch, "reduce.n0_0": "conv_9x9"}}))
    cases.append((["export", "std/darts.nas", *TINY, "--arch", str(bad_arch), "--format", "pt2", "-o", str(tmp_path / "x.pt2")],
                  "no candidate 'conv_9x9'"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert main([*base, "--format", "onnx", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "hint: pip install 'nasir[export]'" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("*") if p.name not in ("bad.json",)]
