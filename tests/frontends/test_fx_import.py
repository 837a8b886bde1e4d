"""Importing an nn.Module: same function, same state_dict keys after lowering."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasir.diagnostics import NasirError
from nasir.frontends.fx_import import import_module
from nasir.lowering import lower


class Block(nn.Module):
    def __init__(self, c_in, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.short = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c)) \
            if stride != 1 or c_in != c else nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.short(x))


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2))
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        h = self.layer1(self.stem(x))
        h = torch.cat([h, self.dw(h)], dim=1)
        return self.fc(torch.flatten(self.pool(h), 1))


def test_import_preserves_function_and_state_dict_keys():
    net = TinyResNet().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
    graph = import_module(net, [3, 16, 16])
    lowered = lower(graph, "fixed", arch={}).eval()
    lowered.load_state_dict(net.state_dict())
    assert set(lowered.state_dict()) == set(net.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(lowered(x), net(x))


def test_unsupported_module_is_reported():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.Upsample(scale_factor=2)

        def forward(self, x):
            return self.up(x)

    with pytest.raises(NasirError, match="unsupported module Upsample"):
        import_module(Odd(), [3, 8, 8])
