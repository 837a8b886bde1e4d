"""The DARTS evaluation network (``std/darts.nas -D eval=true``) against NetworkCIFAR written here
from the DARTS reference (``model.py``, ``operations.py``): parameter counts, outputs in eval and
training mode, drop path, the auxiliary head, and export."""

from __future__ import annotations

import re

import torch
from torch import nn

from nasir.frontends.elaborate import parse_file, std_path
from nasir.ir.arch import resolve_arch
from nasir.ir.cost import arch_cost, aux_head_cost
from nasir.ir.genotype import DARTS_V2, genotype_picks
from nasir.ir.verify import infer_shapes
from nasir.lowering import lower
from nasir.runtime import AuxOutput, set_drop_path
from nasir.weights import renamed_state_dict

#: Every operation of the space once, at stride 1 and 2 (skip_connect: the identity and the
#: factorized reduction), the second edge of a node listed first; two nodes per cell.
SMALL = ("Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_5x5', 2), ('avg_pool_3x3', 0)], "
         "normal_concat=[2, 3], reduce=[('skip_connect', 0), ('max_pool_3x3', 1), ('sep_conv_5x5', 2), "
         "('dil_conv_3x3', 1)], reduce_concat=[2, 3])")
SMALL_SPACE = dict(C=4, layers=3, steps=2, multiplier=2, eval=True)


# -- NetworkCIFAR, as the DARTS reference builds it ------------------------------------------------
class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Module):
    def __init__(self, c, k, stride):
        super().__init__()
        p = k // 2
        self.op = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, k, stride, p, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(), nn.Conv2d(c, c, k, 1, p, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, c, k, stride):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, k - 1, dilation=2, groups=c, bias=False),
                                nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return self.op(x)


OPS = {
    "avg_pool_3x3": lambda c, s: nn.AvgPool2d(3, s, 1, count_include_pad=False),
    "max_pool_3x3": lambda c, s: nn.MaxPool2d(3, s, 1),
    "skip_connect": lambda c, s: nn.Identity() if s == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, s: SepConv(c, 3, s),
    "sep_conv_5x5": lambda c, s: SepConv(c, 5, s),
    "dil_conv_3x3": lambda c, s: DilConv(c, 3, s),
    "dil_conv_5x5": lambda c, s: DilConv(c, 5, s),
}


def drop_path(x, p):
    mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype).bernoulli_(1 - p)
    return x / (1 - p) * mask


class Cell(nn.Module):
    def __init__(self, genotype, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c)
        self.preprocess1 = ReLUConvBN(c_p, c)
        edges, self.concat = (genotype["reduce"], genotype["reduce_concat"]) if reduction else \
            (genotype["normal"], genotype["normal_concat"])
        self.indices = [j for _, j in edges]
        self._ops = nn.ModuleList(OPS[name](c, 2 if reduction and j < 2 else 1) for name, j in edges)
        self.multiplier = len(self.concat)

    def forward(self, s0, s1, drop_prob):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self._ops) // 2):
            hs = []
            for k in (2 * i, 2 * i + 1):
                h = self._ops[k](states[self.indices[k]])
                if self.training and drop_prob > 0 and not isinstance(self._ops[k], nn.Identity):
                    h = drop_path(h, drop_prob)
                hs.append(h)
            states.append(hs[0] + hs[1])
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    def __init__(self, c, classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False), nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128), nn.ReLU(), nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU())
        self.classifier = nn.Linear(768, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    def __init__(self, c, classes, layers, auxiliary, genotype):
        super().__init__()
        self.layers, self.auxiliary, self.drop_path_prob = layers, auxiliary, 0.0
        c_curr = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_curr *= 2 if reduction else 1
            cell = Cell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == 2 * layers // 3:
                c_aux = c_p
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, classes)
        self.classifier = nn.Linear(c_p, classes)

    def forward(self, x):
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self.layers // 3 and self.auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(s1.mean((2, 3)))
        return logits, logits_aux


def parse_genotype(text):
    """``Genotype(...)`` text as the reference's fields: (operation, input) lists and concat lists."""
    fields = {}
    for key, body in re.findall(r"(\w+)=\[([^\]]*)\]", text):
        fields[key] = [int(v) for v in body.split(",")] if key.endswith("_concat") else \
            [(name, int(j)) for name, j in re.findall(r"\('(\w+)', (\d+)\)", body)]
    return fields


# -- the name map: reference module -> nasir module ------------------------------------------------
_INNER = {SepConv: {"op.1": "sep_conv.dwconv", "op.2": "sep_conv.conv", "op.3": "sep_conv.bn",
                    "op.5": "sep_conv.dwconv_1", "op.6": "sep_conv.conv_1", "op.7": "sep_conv.bn_1"},
          DilConv: {"op.1": "dil_conv.dwconv", "op.2": "dil_conv.conv", "op.3": "dil_conv.bn"},
          FactorizedReduce: {"conv_1": "factorized_reduce.conv_1", "conv_2": "factorized_reduce.conv_2",
                             "bn": "factorized_reduce.bn"}}


def names(reference: NetworkCIFAR, genotype) -> dict[str, str]:
    out = {"stem.0": "stem.conv", "stem.1": "stem.bn", "classifier": "logits.linear"}
    for i, cell in enumerate(reference.cells):
        for k, pre in ((0, cell.preprocess0), (1, cell.preprocess1)):
            inner = {"conv_1": "conv_1", "conv_2": "conv_2", "bn": "bn"} if isinstance(pre, FactorizedReduce) \
                else {"op.1": "conv", "op.2": "bn"}
            out |= {f"cells.{i}.preprocess{k}.{a}": f"cells{i}.p{k}.{b}" for a, b in inner.items()}
        edges = genotype["reduce" if i in (reference.layers // 3, 2 * reference.layers // 3) else "normal"]
        for k, (op, (name, j)) in enumerate(zip(cell._ops, edges)):
            for a, b in _INNER.get(type(op), {}).items():
                out[f"cells.{i}._ops.{k}.{a}"] = f"cells{i}.n{k // 2}_{j}.{name}.{b}"
    if reference.auxiliary:
        head = "auxiliary_head.head.aux_logits"
        out |= {"auxiliary_head.features.2": f"{head}.conv", "auxiliary_head.features.3": f"{head}.bn",
                "auxiliary_head.features.5": f"{head}.conv_1", "auxiliary_head.features.6": f"{head}.bn_1",
                "auxiliary_head.classifier": f"{head}.linear"}
    return out


def _randomize(module: nn.Module) -> None:
    """Random BatchNorm affine weights and running statistics, so that a misplaced one shows."""
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=gen, dtype=m.weight.dtype) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=gen, dtype=m.bias.dtype)
            m.running_mean = torch.randn(m.num_features, generator=gen, dtype=m.running_mean.dtype)
            m.running_var = torch.rand(m.num_features, generator=gen, dtype=m.running_var.dtype) + 0.5


def _pair(auxiliary: bool = True):
    """The nasir network and the reference of ``SMALL``, in float64, with the reference's weights."""
    genotype = parse_genotype(SMALL)
    torch.manual_seed(0)
    reference = NetworkCIFAR(4, 10, 3, auxiliary, genotype).double()
    _randomize(reference)
    graph = parse_file(std_path("darts"), auxiliary=auxiliary, **SMALL_SPACE)
    ours = lower(graph, "fixed", SMALL, seed=0).double()
    ours.load_state_dict(renamed_state_dict(reference.state_dict(), names(reference, genotype)))
    return graph, ours, reference


def test_same_parameters_and_outputs_as_network_cifar_in_eval_mode():
    _, ours, reference = _pair()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    ours.eval(), reference.eval()
    set_drop_path(ours, 0.4)  # the identity in eval mode
    out = ours(x)
    assert isinstance(out, torch.Tensor)  # the logits alone: no auxiliary output in eval mode
    torch.testing.assert_close(out, reference(x)[0], rtol=1e-10, atol=1e-10)


def test_training_mode_returns_the_auxiliary_logits_of_the_reference_head():
    _, ours, reference = _pair()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    ours.train(), reference.train()
    out = ours(x)  # drop path probability 0: only BatchNorm's batch statistics differ from eval
    assert isinstance(out, AuxOutput)
    logits, aux = reference(x)
    torch.testing.assert_close(out.logits, logits, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.aux_logits, aux, rtol=1e-10, atol=1e-10)


def test_without_the_auxiliary_head_training_returns_the_logits():
    graph, ours, reference = _pair(auxiliary=False)
    assert not graph.body.aux_outputs
    assert not any("auxiliary" in k for k in ours.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ours.train()(x), reference.train()(x)[0], rtol=1e-10, atol=1e-10)


def test_a_drop_path_after_every_operation_but_the_identity():
    _, ours, reference = _pair()
    ops = [op for cell in reference.cells for op in cell._ops]
    assert set_drop_path(ours, 0.3) == sum(not isinstance(op, nn.Identity) for op in ops) == 11
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    ours.train()
    torch.manual_seed(0)
    dropped = ours(x).logits
    set_drop_path(ours, 0.0)
    assert not torch.allclose(dropped, ours(x).logits)


def test_darts_v2_has_the_parameters_the_paper_reports():
    """3.3M (DARTS paper, Table 1): the reference's ``count_parameters_in_MB`` gives 3.349342 for
    DARTS_V2 at C=36, 20 cells; it leaves out the auxiliary head, whose 476,426 parameters the
    network also holds (3,825,768 in all). Counted on the IR, without building the network."""
    graph = parse_file(std_path("darts"), C=36, layers=20, eval=True)
    infer_shapes(graph)
    whole = arch_cost(graph, resolve_arch(graph, DARTS_V2)).params
    head = aux_head_cost(graph).params
    assert (whole - head, head) == (3_349_342, 476_426)
    with torch.device("meta"):  # counted, not allocated
        reference = NetworkCIFAR(36, 10, 20, True, parse_genotype(DARTS_V2))
    assert sum(p.numel() for k, p in reference.named_parameters() if "auxiliary" not in k) == 3_349_342
    assert sum(p.numel() for p in reference.parameters()) == whole


def test_the_search_form_is_unchanged_by_the_evaluation_parameters():
    small = {k: v for k, v in SMALL_SPACE.items() if k != "eval"}
    search = parse_file(std_path("darts"), **small)
    assert not search.body.aux_outputs
    assert not any(node.attrs.op == "drop_path" for _, node, _ in search.walk() if node.kind == "op")
    # the evaluation form has the same choices, so the same genotypes fix it
    evaluation = parse_file(std_path("darts"), **SMALL_SPACE)
    assert search.arch == evaluation.arch and search.input_groups == evaluation.input_groups
    assert genotype_picks(SMALL, search) == genotype_picks(SMALL, evaluation)


def test_export_sees_one_output():
    """What ``nasir export`` writes: the plain network (after fix-arch) keeps the head, and its
    ``torch.export`` program, traced in eval mode, has the logits as its one output."""
    from nasir.exporting import export_program, fixed_network, plain_network

    graph = parse_file(std_path("darts"), **SMALL_SPACE)
    _, plain = plain_network(graph, SMALL, fixed_network(graph, SMALL))
    x = torch.randn(3, 3, 32, 32)
    assert isinstance(plain.train()(x), AuxOutput)
    program = export_program(plain.eval(), (x,))
    out = program.module()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 10)
    torch.testing.assert_close(out, plain(x))
    head = [n for n in program.graph.nodes if "auxiliary" in n.name]  # its weights, lifted to inputs
    assert head and not any(n.users for n in head)
