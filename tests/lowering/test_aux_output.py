"""``aux_output``: an auxiliary output through the DSL, IR (JSON, printer, verifier, dead code) and every
lowering mode, returned as ``AuxOutput`` in training and left out in eval; and the ``drop_path`` op."""

from __future__ import annotations

import pytest
import torch

from nasir.diagnostics import NasirError, VerificationError
from nasir.frontends.builder import GraphBuilder
from nasir.frontends.elaborate import parse_string
from nasir.ir.cost import aux_head_cost, graph_cost
from nasir.ir.graph import Graph
from nasir.ir.printer import print_graph
from nasir.ir.rewrite import aux_head
from nasir.lowering import lower
from nasir.passmanager import PassManager
from nasir.runtime import AuxHead, AuxOutput, DropPath

SPACE = """
network aux_net(C = 4) {
    input x: [3, 8, 8]
    h = (conv(C, 3) -> bn -> relu -> drop_path)(x)
    y = one_of { a: conv(C, 3)  b: conv(C, 1) }(h)
    side = (conv(2 * C, 1) -> relu -> global_avg_pool)(h)
    aux_output (linear(5))(side)
    output (global_avg_pool -> linear(5))(y)
}
"""


def test_ir_json_printer_and_costs():
    graph = parse_string(SPACE)
    (aux,) = graph.body.aux_outputs
    assert aux.name == "auxiliary_head" and aux.role == "aux" and len(graph.body.outputs) == 1
    assert aux_head(graph.body) == ["side.conv", "side.relu", "side.global_avg_pool", "out", "auxiliary_head"]
    assert aux_head_cost(graph).params == 4 * 8 + (8 * 5 + 5)
    assert graph_cost(graph).params > aux_head_cost(graph).params
    assert Graph.from_json(graph.to_json()) == graph
    assert "%auxiliary_head = output aux(%out) : [5]" in print_graph(graph)
    cleaned = PassManager.parse("dead-code").run(graph.copy_deep())
    assert aux_head(cleaned.body) == aux_head(graph.body)  # the head is live


@pytest.mark.parametrize("mode", ["supernet", "sampled", "fixed"])
def test_every_mode_returns_the_pair_in_training_and_the_logits_in_eval(mode):
    graph = parse_string(SPACE)
    module = lower(graph, mode, arch={"y": "b"} if mode == "fixed" else None, seed=0)
    assert isinstance(module.get_submodule("auxiliary_head"), AuxHead)
    assert module.ir_name("auxiliary_head.head.side.conv.weight") == "side.conv.weight"
    x = torch.randn(2, 3, 8, 8)
    out = module.train()(x)
    assert isinstance(out, AuxOutput) and out.logits.shape == (2, 5) and out.aux_logits.shape == (2, 5)
    head = module.get_submodule("auxiliary_head.head")
    calls = []
    handle = head.register_forward_hook(lambda *_: calls.append(1))
    logits = module.eval()(x)
    handle.remove()
    assert isinstance(logits, torch.Tensor) and not calls  # eval mode does not run the head
    assert any(isinstance(m, DropPath) for m in module.modules())


WIDTHS = """
network widths(C = 4) {
    input x: [3, 8, 8]
    h = (conv(one_of [2, 4], 3) -> bn -> relu)(x)
    side = (conv(8, 1) -> relu -> global_avg_pool)(h)
    aux_output (linear(5))(side)
    output (global_avg_pool -> linear(5))(h)
}
"""


def test_a_head_that_follows_a_width_choice_in_every_mode():
    graph = parse_string(WIDTHS)
    x = torch.randn(2, 3, 8, 8)
    supernet = lower(graph, "supernet", seed=0)
    for module in (supernet, lower(graph, "sampled", seed=0)):
        assert module.train()(x).aux_logits.shape == (2, 5)
    fixed = lower(graph, "fixed", arch={"h.conv": "w2"}, seed=1)
    fixed.load_state_dict(fixed.sliced_state_dict(supernet.state_dict()))  # the head's weights too, by path
    head = "auxiliary_head.head.side.conv.weight"
    assert fixed.state_dict()[head].shape == (8, 2, 1, 1)
    assert torch.equal(fixed.state_dict()[head], supernet.state_dict()[head][:, :2])


def test_the_head_trains_with_the_network():
    module = lower(parse_string(SPACE), "fixed", arch={"y": "a"}, seed=0).train()
    out = module(torch.randn(4, 3, 8, 8))
    (out.logits.sum() + 0.4 * out.aux_logits.sum()).backward()
    assert module.get_submodule("auxiliary_head.head.side.conv").weight.grad is not None
    assert module.get_submodule("h.conv").weight.grad.abs().sum() > 0


def test_builder_aux_output():
    b = GraphBuilder("built")
    x = b.input([3, 8, 8])
    h = b.op("conv", x, out_channels=4, kernel=3)
    b.aux_output(b.op("global_avg_pool", h))
    b.output(b.op("flatten", h))
    graph = b.build()
    out = lower(graph, "fixed", arch={}).train()(torch.randn(2, 3, 8, 8))
    assert isinstance(out, AuxOutput) and out.aux_logits.shape == (2, 4)


@pytest.mark.parametrize("text, message", [
    ("cell c() {\n input a\n aux_output relu(a)\n output a\n}\nnetwork n() {\n input x: [3, 8, 8]\n"
     " output c()(x)\n}\n", "`aux_output` belongs in a network"),
    ("network n() {\n input x: [3, 8, 8]\n aux_output 3\n output x\n}\n", "`aux_output` needs a tensor"),
    ("network n() {\n input x: [3, 8, 8]\n aux_output relu(x)\n aux_output relu(x)\n output x\n}\n",
     "at most one auxiliary output"),
    ("network n() {\n input x: [3, 8, 8]\n aux_output relu(x)\n output x, x\n}\n", "exactly one output, not 2"),
])
def test_misplaced_auxiliary_outputs_are_located_errors(text, message):
    with pytest.raises((NasirError, VerificationError), match=message):
        parse_string(text, filename="a.nas")
