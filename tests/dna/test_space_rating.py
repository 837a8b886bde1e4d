import json

import pytest
import torch
from torch import nn

from nasir.dna.costs import measure
from nasir.dna.errors import DNAError
from nasir.dna.rating import (
    BlockRating,
    candidate_forwards,
    load_ratings,
    rate_block,
    save_ratings,
)
from nasir.dna.space import Block, Cell


def test_space_counts_and_paths(tiny_space):
    b1 = tiny_space.blocks[0]
    # cell1: 2 x 3 x 1 = 6 paths, cell2: 2 x 3 x 3 x 1 = 18 paths
    assert [c.size for c in b1.cells] == [6, 18]
    assert b1.size == 24 and tiny_space.size == 24 * 24
    paths = list(b1.paths())
    assert len(paths) == 24 and len(set(paths)) == 24
    assert [b1.path_index(p) for p in paths] == list(range(24))
    x = torch.randn(2, 3, 16, 16)
    arch = [paths[5], paths[17]]
    assert tiny_space(x, arch).shape == (2, 12, 4, 4)
    tiny_space.eval()
    sub = tiny_space.extract(arch).eval()
    assert torch.equal(sub(x), tiny_space(x, arch))
    with pytest.raises(DNAError):
        b1.check_path((0, (0, 0)))


def test_path_costs_match_measured_path(tiny_space):
    block = tiny_space.blocks[1]
    x = torch.randn(1, 8, 8, 8)
    costs = block.path_costs(x)
    for i, path in enumerate(block.paths()):
        cost, _ = measure(block.extract(path), x)
        assert costs[i] == cost


def test_mismatched_candidates_raise():
    cell = Cell([[nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 5, 3, padding=1)]])
    with pytest.raises(DNAError, match="different output shapes"):
        Block([cell]).path_costs(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("batch_size", [5, 16])
def test_feature_sharing_equals_per_path_exactly(tiny_space, batch_size):
    block = tiny_space.blocks[0]
    for m in block.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(13, 3, 16, 16)
    g = torch.randn(13, 8, 8, 8)
    shared = rate_block(block, x, g, batch_size=batch_size, feature_sharing=True)
    single = rate_block(block, x, g, batch_size=batch_size, feature_sharing=False)
    assert shared.scores == single.scores  # bit-for-bit, not approximately
    assert shared.params == single.params and len(shared.params) == 24
    # the score is Eq. 7 of the path's output
    block.eval()
    with torch.no_grad():
        y = block(x, shared.paths[7])
    expected = float((y - g).abs().double().sum() / (g.numel() * g.double().var(unbiased=False).sqrt()))
    assert shared.scores[7] == pytest.approx(expected, rel=1e-6)
    assert candidate_forwards(block, True) < candidate_forwards(block, False)


def test_rating_table_round_trip(tmp_path, tiny_space):
    block = tiny_space.blocks[0]
    r = rate_block(block, torch.randn(4, 3, 16, 16), torch.randn(4, 8, 8, 8), name="b1")
    f = tmp_path / "r.json"
    save_ratings(f, [r])
    doc = json.loads(f.read_text())
    assert [row["rank"] for row in doc["blocks"][0]["paths"]] == list(range(1, 25))
    scores = [row["score"] for row in doc["blocks"][0]["paths"]]
    assert scores == sorted(scores)
    back = load_ratings(f)[0]
    assert back.scores == r.scores and back.paths == r.paths and back.flops == r.flops
    f.write_text("{not json")
    with pytest.raises(DNAError, match="not valid JSON"):
        load_ratings(f)
    f.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DNAError, match="not a nasir DNA rating"):
        load_ratings(f)
    with pytest.raises(DNAError):
        BlockRating.from_json({"block": "x", "paths": [{"index": 0, "cell": 0, "ops": [0], "score": "nan"}]})


def test_rating_rejects_bad_features(tiny_space):
    block = tiny_space.blocks[0]
    with pytest.raises(DNAError, match="constant"):
        rate_block(block, torch.randn(4, 3, 16, 16), torch.zeros(4, 8, 8, 8))
    with pytest.raises(DNAError, match="does not match"):
        rate_block(block, torch.randn(4, 3, 16, 16), torch.randn(4, 8, 4, 4))
