import pytest
import torch
from torch import nn

from nasir.dna.errors import DNAError
from nasir.dna.teacher import (
    TeacherBlocks,
    auto_boundaries,
    cached_features,
    cut_points,
    load_features,
    trace,
)


class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + torch.relu(self.conv(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.s1 = Res(8)
        self.down = nn.Conv2d(8, 16, 3, 2, 1)
        self.s2 = Res(16)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        return self.head(self.s2(self.down(self.s1(self.stem(x)))))


def test_cut_composes_to_the_model():
    torch.manual_seed(0)
    net = Net().eval()
    tb = TeacherBlocks(net, ["s1", "s2"])  # module names resolve to their last node
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        feats = tb.features(x)
        assert [tuple(f.shape) for f in feats] == [(2, 3, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4)]
        assert torch.allclose(tb(x), net(x))
        assert torch.allclose(tb.head(feats[-1]), net(x))


def test_cut_inside_a_skip_connection_is_refused():
    net = Net()
    inner = [n.name for n in trace(net).graph.nodes if n.name.startswith("s1_conv")][0]
    assert inner not in cut_points(trace(net))
    with pytest.raises(DNAError, match="skip connection"):
        TeacherBlocks(net, [inner])
    with pytest.raises(DNAError, match="no node or submodule"):
        TeacherBlocks(net, ["nope"])
    with pytest.raises(DNAError, match="execution order"):
        TeacherBlocks(net, ["s2", "s1"])


def test_auto_boundaries_at_shape_changes():
    bounds = auto_boundaries(Net(), torch.randn(1, 3, 16, 16))
    # the last node of each feature-map shape: after s1 (8x8x8) and after s2 (16x4x4)
    assert len(bounds) == 2
    tb = TeacherBlocks(Net(), bounds)
    shapes = [tuple(f.shape[1:]) for f in tb.features(torch.randn(1, 3, 16, 16))]
    assert shapes[1:] == [(8, 8, 8), (16, 4, 4)]


def test_feature_cache_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    tb = TeacherBlocks(Net(), ["s1", "s2"])
    images = torch.randn(10, 3, 16, 16)
    path = tmp_path / "feats.safetensors"
    first = cached_features(tb, images, path, batch_size=4)
    again = cached_features(tb, images, path)  # from disk
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert len(first) == 3 and first[2].shape == (10, 16, 4, 4)
    with pytest.raises(DNAError, match="expected"):
        cached_features(TeacherBlocks(Net(), ["s1", "s2"]), images, path)  # another teacher
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="corrupt"):
        load_features(path)
