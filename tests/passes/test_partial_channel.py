"""partial-channel (PC-DARTS): approximate, so tested for what it promises -- the IR it builds, 1/k of
the channels through the candidates and the rest bypassing them, shuffled; edge weights that get
gradients and rank the edges of the derived architecture; composition with the TopoNAS passes."""

from __future__ import annotations

import pytest
import torch

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_file, parse_string, std_path
from nasir.ir.arch import derive_architecture
from nasir.ir.printer import print_graph
from nasir.lowering import lower
from nasir.passmanager import PassManager, get_pass
from nasir.runtime import FixedSampler
from nasir.testing import filecheck

ONE_EDGE = """network edge(stride = 1) {
  input x: [8, 6, 6]
  y = one_of {
    conv3: relu -> conv(8, 3, stride) -> bn(affine = false)
    pool:  max_pool(3, stride)
    none:  zero(stride)
  }(x)
  output y
}"""


def _partial(graph, options="k=4"):
    return PassManager.parse(f"partial-channel{{{options}}}").run(graph)


def _darts():
    return parse_file(std_path("darts"), C=8, layers=3, steps=2, multiplier=2)


def test_the_pass_declares_what_it_is():
    cls = get_pass("partial-channel")
    assert cls().exactness() == "approximate" and cls.search_only
    assert "changes the function" in __import__("nasir.passes.partial_channel", fromlist=["x"]).__doc__


@pytest.mark.parametrize("stride, bypass", [(1, "CHECK-NOT: max_pool(kernel=2"),
                                            (2, "CHECK: %y_pool = max_pool(kernel=2, stride=2, padding=0)(%y_rest) : [6x3x3]")])
def test_a_quarter_of_the_channels_goes_through_candidates_of_a_quarter_of_the_width(stride, bypass):
    out = _partial(parse_string(ONE_EDGE.replace("stride = 1", f"stride = {stride}")))
    size = "6x6" if stride == 1 else "3x3"
    filecheck(print_graph(out), f"""
        CHECK: %y_part = channel_slice(stop=2)(%x) : [2x6x6]
        CHECK-NEXT: %y_rest = channel_slice(start=2, stop=8)(%x) : [6x6x6]
        CHECK-NEXT: %y = choice %y covers=[[0], [1], [2]] domain=[0, 1, 2](%y_part) : [2x{size}]
        CHECK: %conv = conv(out_channels=2, kernel=3{", stride=2" if stride == 2 else ""})(%relu) : [2x{size}]
        {bypass}
        CHECK: %y_cat = concat(%y, %y_{"pool" if stride == 2 else "rest"}) : [8x{size}]
        CHECK-NEXT: %y_shuffle = channel_shuffle(groups=4)(%y_cat) : [8x{size}]
        CHECK-NEXT: %output = output(%y_shuffle) : [8x{size}]
    """)


def _unshuffle(out: torch.Tensor, k: int) -> torch.Tensor:
    """The concatenation a channel shuffle into ``k`` groups came from."""
    b, c, h, w = out.shape
    return out.view(b, c // k, k, h, w).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize("mode", ["supernet", "sampled"])
def test_only_the_first_channels_reach_the_candidates_and_the_rest_pass_shuffled(mode):
    model = lower(_partial(parse_string(ONE_EDGE)), mode, seed=0)
    if mode == "sampled":
        model.set_sampler(FixedSampler({"y": 0}))  # the conv path
    assert model.get_submodule("y.conv3.conv").weight.shape == (2, 2, 3, 3)
    x = torch.randn(3, 8, 6, 6)
    torch.manual_seed(0)
    cat = _unshuffle(model(x), 4)
    assert torch.equal(cat[:, 2:], x[:, 2:])  # the bypass, exactly
    changed = x.clone()
    changed[:, 2:] = torch.randn(3, 6, 6, 6)
    torch.manual_seed(0)
    again = _unshuffle(model(changed), 4)
    assert torch.equal(again[:, :2], cat[:, :2])  # what the candidates computed saw 1/4 of the channels
    changed[:, :2] += 1
    torch.manual_seed(0)
    assert not torch.equal(_unshuffle(model(changed), 4)[:, :2], cat[:, :2])


def test_darts_cells_get_edge_weights_whose_gradients_flow():
    graph = _partial(_darts())
    model = lower(graph, "supernet", seed=0)
    names = [n for n, _ in model.named_arch_parameters()]
    assert [n for n in names if n.endswith(".edges")] == ["normal.n0.edges", "normal.n1.edges", "reduce.n0.edges",
                                                          "reduce.n1.edges"]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    model(torch.randn(2, 3, 32, 32)).logsumexp(1).sum().backward()
    for name, p in model.named_arch_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert {n: p.numel() for n, p in model.named_arch_parameters() if n.endswith(".edges")} == {
        "normal.n0.edges": 2, "normal.n1.edges": 3, "reduce.n0.edges": 2, "reduce.n1.edges": 3}
    # the architecture found builds the network of the space as written
    fixed = lower(_darts(), "fixed", arch=model.derive())
    assert fixed(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_edge_weights_rank_the_edges_as_pc_darts_does():
    graph = _darts()
    cands = graph.arch["normal.n1_0"].candidates
    conv = cands.index("sep_conv_3x3")
    strong = [0.02] * len(cands)
    strong[conv] = 0.86
    weights = {name: [1 / len(cands)] * len(cands) for name in graph.arch}
    weights["normal.n1_0"] = strong  # by its alphas alone, edge 0 of node 1 is the strongest ...
    plain = derive_architecture(graph, weights).arch
    assert plain["normal.n1_0"] == "sep_conv_3x3"
    # ... but its edge weight is tiny: nodes keep the edges whose alpha * beta is largest
    edges = {"normal.n1": [0.01, 0.5, 0.49]}
    weighted = derive_architecture(graph, weights, edges).arch
    assert weighted["normal.n1_0"] == "none" and weighted["normal.n1_1"] != "none" != weighted["normal.n1_2"]


def test_choices_that_cannot_be_split_stay_whole_with_a_note():
    wider = parse_string("""network w() {
      input x: [8, 6, 6]
      y = one_of { a: conv(16, 3)  b: conv(16, 1) }(x)
      z = one_of { a: conv(6, 3)  b: conv(6, 1) }(y)
      output z
    }""")
    pm = PassManager.parse("partial-channel{k=4}")
    out = pm.run(wider)
    assert "channel_slice" not in print_graph(out)  # y widens 8 -> 16, z narrows 16 -> 6
    notes = " ".join(pm.records[-1].result.notes)
    assert "2 choice(s) keep all their channels" in notes and "no sum of input_choice edges" in notes
    with pytest.raises(NasirError, match="must be >= 2"):
        _partial(parse_string(ONE_EDGE), "k=1")


def test_the_topo_passes_run_on_the_reduced_choices():
    pipeline = "partial-channel{k=2},topo-simplify,reparam{kernel_norm=true}"
    graph = PassManager.parse(pipeline).run(parse_file(std_path("darts"), C=4, layers=3, steps=2, multiplier=2))
    for mode in ("supernet", "sampled"):
        model = lower(graph, mode, seed=0)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
