"""``std/resnet18.nas -D stem=imagenet`` loads a torchvision ``resnet18`` state dict through the name map
of ``nasir.weights``: checked against a ResNet-18 written here with torchvision's module names (torchvision
itself is no dependency)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_file, std_path
from nasir.ir.cost import graph_cost
from nasir.ir.verify import infer_shapes
from nasir.lowering import lower
from nasir.weights import TORCHVISION_RESNET18, load_renamed, load_torchvision_resnet18


class BasicBlock(nn.Module):
    def __init__(self, c_in, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c)) \
            if stride != 1 or c_in != c else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)


class ResNet18(nn.Module):
    """torchvision's ``resnet18`` layout: conv1 bn1 relu maxpool, layer1-4 of two blocks, avgpool, fc."""

    def __init__(self, width=64, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = width
        for stage in range(4):
            c = width * 2**stage
            blocks = [BasicBlock(c_in, c, 2 if stage else 1), BasicBlock(c, c, 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            c_in = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_imagenet_form_has_torchvisions_size_and_names():
    graph = parse_file(std_path("resnet18"), stem="imagenet")
    assert graph.params["classes"] == 1000 and graph.body.inputs[0].shape == [3, 224, 224]
    infer_shapes(graph)
    with torch.device("meta"):
        reference = ResNet18()
    assert graph_cost(graph).params == sum(p.numel() for p in reference.parameters()) == 11_689_512
    # the map names every module of the checkpoint, and nothing else
    assert {key.rpartition(".")[0] for key in reference.state_dict()} == set(TORCHVISION_RESNET18)


def test_a_torchvision_state_dict_loads_and_gives_the_same_outputs():
    torch.manual_seed(0)
    reference = ResNet18(width=8, classes=7).double()
    gen = torch.Generator().manual_seed(1)
    for m in reference.modules():  # random statistics, so that a misplaced BatchNorm shows
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=gen, dtype=torch.float64) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=gen, dtype=torch.float64)
            m.running_mean = torch.randn(m.num_features, generator=gen, dtype=torch.float64)
            m.running_var = torch.rand(m.num_features, generator=gen, dtype=torch.float64) + 0.5
    graph = parse_file(std_path("resnet18"), stem="imagenet", width=8, classes=7, resolution=64)
    ours = lower(graph, "fixed", seed=0).double()
    load_torchvision_resnet18(ours, reference.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x), rtol=1e-10, atol=1e-10)


def test_the_cifar_form_is_the_default():
    graph = parse_file(std_path("resnet18"), width=8)
    assert graph.params["stem"] == "cifar" and graph.params["classes"] == 10
    assert graph.body.inputs[0].shape == [3, 32, 32]
    assert not any(node.attrs.op == "max_pool" for _, node, _ in graph.walk() if node.kind == "op")


def test_mismatched_checkpoints_are_clear_errors_and_load_nothing():
    ours = lower(parse_file(std_path("resnet18"), stem="imagenet", width=8, classes=7, resolution=64), "fixed")
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    state = ResNet18(width=8, classes=7).state_dict()
    with pytest.raises(NasirError, match="module 'extra', which the name map does not name"):
        load_torchvision_resnet18(ours, {**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(NasirError, match="logits.linear.weight.*shape"):
        load_torchvision_resnet18(ours, ResNet18(width=8, classes=5).state_dict())
    partial = {k: v for k, v in state.items() if not k.startswith("fc.")}
    with pytest.raises(NasirError, match="no value for 2 entries"):
        load_torchvision_resnet18(ours, partial)
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())
    load_renamed(ours, partial, TORCHVISION_RESNET18, strict=False)  # the classifier keeps its own weights
    assert torch.equal(ours.state_dict()["logits.linear.weight"], before["logits.linear.weight"])
    assert torch.equal(ours.state_dict()["h.conv.weight"], state["conv1.weight"])


def test_an_unknown_stem_is_a_located_error_not_the_cifar_stem():
    with pytest.raises(NasirError, match="unknown stem imagnet: cifar .* or imagenet") as e:
        parse_file(std_path("resnet18"), stem="imagnet", width=4)
    assert e.value.loc is not None and e.value.loc.file.endswith("resnet18.nas")
