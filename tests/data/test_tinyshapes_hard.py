"""TinyShapes-Hard: deterministic bytes per seed, balanced classes, shapes and dtypes, and selection
through ``--data`` (split sizes shrunk so that a command runs in a moment)."""

from __future__ import annotations

import pytest
import torch

import nasir.data.tinyshapes_hard as hard
from nasir.cli import main
from nasir.data import load_data, parse_data_spec
from nasir.diagnostics import NasirError


def test_same_seed_same_bytes_other_seed_other_bytes():
    x, y = hard.generate(48, seed=5, size=16)
    x2, y2 = hard.generate(48, seed=5, size=16)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = hard.generate(48, seed=6, size=16)
    assert not torch.equal(x, x3)
    assert (x.float() - x3.float()).abs().mean() > 20  # not a near copy: other images altogether


def test_classes_are_balanced_and_images_are_uint8_rgb():
    n = 24 * 3 + 5
    x, y = hard.generate(n, seed=1, size=20)
    assert x.shape == (n, 3, 20, 20) and x.dtype == torch.uint8 and x.is_contiguous()
    assert y.shape == (n,) and y.dtype == torch.int64
    counts = torch.bincount(y, minlength=len(hard.CLASSES))
    assert len(hard.CLASSES) == 24 and counts.min() == 3 and counts.max() == 4
    assert len(set(hard.CLASSES)) == 24
    assert x.float().std() > 30  # pictures, not a flat colour


def test_rendering_at_64_is_native_not_an_upscaled_32():
    small, y32 = hard.generate(24, seed=2, size=32)
    large, y64 = hard.generate(24, seed=2, size=64)
    assert large.shape[-1] == 64 and torch.equal(y32, y64)
    upscaled = torch.nn.functional.interpolate(small.float(), size=64, mode="bilinear", align_corners=False)
    assert (upscaled - large.float()).abs().mean() > 5


def test_the_knobs_change_the_images():
    plain, _ = hard.generate(24, seed=3, size=16, knobs=hard.Knobs(clutter=0, occluders=0, noise=0.0))
    busy, _ = hard.generate(24, seed=3, size=16)
    assert not torch.equal(plain, busy)


@pytest.mark.parametrize("text, message", [("tinyshapes-hard:x", "whole number of pixels"),
                                           ("tinyshapes-hard:8", "from 16 to 128"),
                                           ("tinyshapes-hard:", "whole number")])
def test_bad_sizes_are_clear_errors(text, message):
    with pytest.raises(NasirError, match=message):
        parse_data_spec(text)


def test_spec_round_trips():
    for text in ("tinyshapes-hard", "tinyshapes-hard:64"):
        assert str(parse_data_spec(text)) == text


@pytest.fixture
def small_splits(monkeypatch):
    """48 training and 24 test images, generated afresh."""
    monkeypatch.setattr(hard, "SPLITS", {"train": (48, 11), "test": (24, 12)})
    hard._split.cache_clear()
    yield
    hard._split.cache_clear()


def test_load_data_renders_at_the_space_resolution_or_the_given_size(small_splits):
    data = load_data("tinyshapes-hard", resolution=16)
    assert data.classes == 24 and data.crop_flip and data.class_names == hard.CLASSES
    assert data.train.images.shape == (48, 3, 16, 16) and data.test.images.shape == (24, 3, 16, 16)
    assert torch.equal(data.train.images, hard.generate(48, 11, 16)[0])
    x, _ = data.train.normalized()
    assert x.dtype == torch.float32 and abs(float(x.mean())) < 0.3
    sized = load_data("tinyshapes-hard:32", resolution=16)  # rendered at 32, resized to the space's 16
    assert sized.spec == "tinyshapes-hard:32" and sized.train.images.shape[-1] == 16
    assert not torch.equal(sized.train.images, data.train.images)


SPACE = """network tiny(classes = 24) {
  input x: [3, 16, 16]
  y = one_of { a: conv(4, 3, 2)  b: conv(4, 1, 2) }(x)
  z = (relu -> global_avg_pool -> linear(classes))(y)
  output z
}
"""


def test_search_selects_it_with_data(small_splits, tmp_path, capsys):
    space = tmp_path / "space.nas"
    space.write_text(SPACE)
    code = main(["search", str(space), "--data", "tinyshapes-hard", "--steps", "2", "--batch-size", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "tinyshapes-hard" in out
    code = main(["search", str(space), "--data", "tinyshapes-hard", "-D", "classes=10", "--steps", "1"])
    assert code == 2 and "-D classes=24" in capsys.readouterr().err
