"""``nasir train``: a DARTS genotype or an NB201 string trained with its space's recipe, the trained
network exported, bad input refused (exit 2) before anything is written, and a run killed with
SIGKILL that resumes bit for bit."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from nasir.api import compile_file
from nasir.checkpoint import load_checkpoint
from nasir.cli import main
from nasir.exporting import load_fixed_network
from nasir.ir.arch import load_architecture, resolve_arch
from nasir.ir.cost import arch_cost, aux_head_cost
from nasir.lowering import lower
from nasir.testing import assert_resumes_after_sigkill
from nasir.train.run import train_network

DARTS = ["std/darts.nas", "-D", "C=4", "-D", "layers=1", "-D", "steps=2", "-D", "multiplier=2"]
#: a genotype of the two-node DARTS cell above
GENOTYPE = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_3x3', 2), ('max_pool_3x3', 0)], "
            "normal_concat=[2, 3], reduce=[('max_pool_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 2), "
            "('sep_conv_5x5', 1)], reduce_concat=[2, 3])")
TINY = """network tiny() {
  input x: [3, 32, 32]
  y = one_of { a: conv(4, 3, 2)  b: conv(4, 1, 2) }(x)
  z = (relu -> global_avg_pool -> linear(10))(y)
  output z
}
"""


def test_a_darts_genotype_trains_with_the_darts_recipe_and_exports(tmp_path, capsys):
    ckpt, net = tmp_path / "run.safetensors", tmp_path / "net.safetensors"
    assert main(["train", *DARTS, "--arch", GENOTYPE, "--steps", "2", "--batch-size", "8", "--checkpoint", str(ckpt),
                 "-o", str(net)]) == 0
    out = capsys.readouterr().out
    assert "with the darts recipe (the default for the DARTS space)" in out
    assert "cutout 16, drop path 0.2, auxiliary weight 0.4" in out and "clip 5" in out
    assert "test accuracy " in out and "(on 500 tinyshapes images)" in out and " parameters, " in out and "FLOPs" in out
    assert f"next: nasir export {net} --format onnx" in out
    tensors, meta = load_checkpoint(ckpt)
    assert meta["kind"] == "fixed-train" and meta["step"] == 2 and meta["config"]["recipe"] == "darts"
    assert [r["epoch"] for r in map(json.loads, (tmp_path / "run.jsonl").read_text().splitlines())] == [1]
    # the written network is the trained one: the checkpoint's weights in a fixed lowering
    graph = compile_file("std/darts.nas", C=4, layers=1, steps=2, multiplier=2)
    trained = lower(graph, "fixed", arch=GENOTYPE)
    trained.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = trained.eval()(x)
        torch.testing.assert_close(load_fixed_network(net)(x), expected, rtol=1e-5, atol=1e-6)


def test_an_nb201_string_trains_with_the_nb201_recipe(tmp_path, capsys):
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
    assert main(["train", "std/nb201.nas", "-D", "N=1", "-D", "C=4", "--arch", arch, "--steps", "1",
                 "--batch-size", "8", "--amp", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "with the nb201 recipe (the default for this space)" in out and "cosine per step" in out
    assert "(Nesterov)" in out and "autocast bf16" in out and "note: nothing was saved" not in out


def test_the_api_returns_the_trained_network_and_its_measurements(tmp_path):
    """The parameters and FLOPs are the network's without its auxiliary head (the papers' count), the
    head's apart."""
    graph = compile_file("std/darts.nas", C=4, layers=3, steps=2, multiplier=2, eval=True)
    done = train_network(graph, GENOTYPE, steps=1, batch_size=8, recipe="nb201", progress=False,
                         output=tmp_path / "net.safetensors")
    assert done.config.recipe == "nb201" and done.log.step == 1 and done.test_images == 500
    head = aux_head_cost(graph)
    assert done.aux_parameters == head.params > 0 and done.aux_flops == head.flops > 0
    assert done.parameters + done.aux_parameters == sum(p.numel() for p in load_fixed_network(done.output).parameters())
    assert done.flops + done.aux_flops == arch_cost(graph, resolve_arch(graph, load_architecture(GENOTYPE, graph).arch)).flops
    assert done.flops > 0 and 0 <= done.test_accuracy <= 1


@pytest.mark.parametrize("extra, message", [
    (["--amp", "fp16"], "--amp fp16 needs a CUDA device"),
    (["--resume"], "--resume needs --checkpoint FILE"),
    (["--arch", "{tmp}/bad.json"], "'c'"),
    (["-o", "{tmp}"], "is a directory"),
    (["--checkpoint", "/dev/null"], "not a regular file"),
    (["--cutout", "-1"], "--cutout -1"),
    (["--data", "cifar10:{tmp}/nothing"], "nothing"),
])
def test_bad_input_exits_2_before_anything_is_written(tmp_path, capsys, extra, message):
    space = tmp_path / "tiny.nas"
    space.write_text(TINY)
    arch = tmp_path / "arch.json"
    arch.write_text('{"y": "a"}')
    (tmp_path / "bad.json").write_text('{"y": "c"}')
    args = ["train", str(space), "--arch", str(arch), "--steps", "2", "--batch-size", "8",
            "--checkpoint", str(tmp_path / "run.safetensors")]
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    if "--arch" in extra:
        args = args[:3] + args[5:]
    if "--resume" in extra:
        args = args[:-2]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.json", "bad.json", "tiny.nas"]


def test_a_trained_network_exports_as_it_is_and_takes_no_space_options(tmp_path, capsys):
    space = tmp_path / "tiny.nas"
    space.write_text(TINY)
    net, arch = tmp_path / "net.safetensors", tmp_path / "arch.json"
    arch.write_text('{"y": "b"}')
    assert main(["train", str(space), "--arch", str(arch), "--steps", "1", "--batch-size", "8", "-o", str(net)]) == 0
    pt2 = tmp_path / "net.pt2"
    assert main(["export", str(net), "--format", "pt2", "-o", str(pt2)]) == 0
    assert "max difference" in capsys.readouterr().out
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(pt2).module()(x), load_fixed_network(net)(x))
    assert main(["export", str(net), "--arch", str(arch), "--format", "pt2", "-o", str(tmp_path / "n.pt2")]) == 2
    assert "is a trained fixed network: --arch does not apply" in capsys.readouterr().err
    assert main(["export", str(net), "--format", "safetensors", "-o", str(tmp_path / "n.safetensors")]) == 2
    assert main(["export", str(space), "--format", "pt2", "-o", str(tmp_path / "n.pt2")]) == 2
    assert "export needs --arch ARCH" in capsys.readouterr().err
    assert not (tmp_path / "n.pt2").exists() and not (tmp_path / "n.safetensors").exists()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
def test_a_training_killed_with_sigkill_resumes_bit_for_bit(tmp_path):
    pytest.importorskip("numpy")  # the CIFAR reader
    from ..data._formats import write_cifar

    write_cifar(tmp_path / "cifar", "cifar10", binary=False)  # 15 training images: 7 steps of 2 per epoch
    space = tmp_path / "tiny.nas"
    space.write_text(TINY)
    arch = tmp_path / "arch.json"
    arch.write_text('{"y": "a"}')
    args = ["train", str(space), "--arch", str(arch), "--data", f"cifar10:{tmp_path / 'cifar'}", "--epochs", "3",
            "--batch-size", "2", "--cutout", "8", "--checkpoint-every", "1"]
    # killed in the second epoch; weights, BatchNorm statistics and the optimizer's momentum compared
    assert_resumes_after_sigkill(args, tmp_path, slowed="nasir.train.trainer:Trainer.train_step", kill_at=9,
                                 steps=21, epochs=3)
