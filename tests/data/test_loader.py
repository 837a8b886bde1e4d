"""Augmentation and batch streams: the standard transforms, deterministic, resumable, worker-independent."""

from __future__ import annotations

import itertools

import pytest
import torch

from nasir.data.images import CIFAR10_NORMALIZATION, Augmentation, ImageSet, crop_flip, cutout, split_portion
from nasir.data.loader import index_batches, stream
from nasir.diagnostics import NasirError

from ._formats import random_images, random_labels


def _set(n=20, size=8) -> ImageSet:
    return ImageSet(random_images(n, seed=5, size=size), random_labels(n, 10, seed=5), CIFAR10_NORMALIZATION)


def test_crop_flip_is_a_shifted_window_of_the_zero_padded_image():
    x = random_images(6, seed=0, size=8)
    g = torch.Generator().manual_seed(3)
    out = crop_flip(x, torch.Generator().manual_seed(3))
    dy, dx = torch.randint(0, 9, (6,), generator=g), torch.randint(0, 9, (6,), generator=g)
    flips = torch.rand(6, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(6):
        want = padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8]
        assert torch.equal(out[i], want.flip(-1) if flips[i] else want)
    assert out.dtype == torch.uint8


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(200, 3, 16, 16)
    out = cutout(x, 6, torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).sum((1, 2))
    assert zeros.max() == 36 and zeros.min() >= 9  # a full square, or one clipped at a corner (at least 3 x 3)
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # the same square in every channel


def test_batch_order_of_the_transforms():
    data = _set()
    idx = torch.tensor([3, 1, 4])
    x, y = data.batch(idx, Augmentation(cutout=4), torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    want = CIFAR10_NORMALIZATION.apply(crop_flip(data.images[idx], g))
    want = cutout(want, 4, g)
    assert torch.equal(x, want) and torch.equal(y, data.labels[idx])
    plain, _ = data.batch(idx)
    assert torch.equal(plain, CIFAR10_NORMALIZATION.apply(data.images[idx]))


def test_float_sets_crop_and_flip_as_dance_always_did():
    """TinyShapes-style float images: padding with zeros of the normalized image, no normalization."""
    x = torch.randn(4, 3, 8, 8)
    data = ImageSet(x, torch.arange(4))
    out, _ = data.batch(torch.arange(4), Augmentation(), torch.Generator().manual_seed(1))
    assert torch.equal(out, crop_flip(x, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("augmentation", [None, Augmentation(cutout=3)], ids=["plain", "augmented"])
def test_a_stream_resumed_at_batch_k_continues_the_same_batches(augmentation):
    data = _set()
    straight = list(itertools.islice(stream(data, 6, seed=4, augmentation=augmentation), 10))
    resumed = list(itertools.islice(stream(data, 6, seed=4, augmentation=augmentation, skip=7), 3))
    for (xa, ya), (xb, yb) in zip(straight[7:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(straight[0][0], straight[3][0])  # epochs (3 batches each) are reshuffled


def test_worker_processes_prepare_the_same_batches():
    data = _set()
    aug = Augmentation(cutout=2)
    here = list(itertools.islice(stream(data, 5, seed=1, augmentation=aug, skip=2), 4))
    workers = list(itertools.islice(stream(data, 5, seed=1, augmentation=aug, skip=2, workers=2), 4))
    for (xa, ya), (xb, yb) in zip(here, workers):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_index_batches_match_the_old_tensor_batches():
    """The order nasir search used before datasets were selectable (one permutation per epoch, drop last)."""
    g = torch.Generator().manual_seed(0)
    perms = [torch.randperm(10, generator=g) for _ in range(2)]
    old = [p[s:s + 3] for p in perms for s in (0, 3, 6)]
    assert all(torch.equal(a, b) for a, b in zip(old, itertools.islice(index_batches(10, 3, seed=0), 6)))
    with pytest.raises(NasirError, match="fewer than one batch"):
        index_batches(4, 8, seed=0)


def test_darts_split_and_set_checks():
    weights, arch = split_portion(_set(20), 0.25)
    assert len(weights) == 5 and len(arch) == 15
    with pytest.raises(NasirError, match="normalization"):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(NasirError, match="labels"):
        ImageSet(torch.zeros(2, 3, 4, 4), torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("workers", [0, 1])
def test_a_process_share_is_its_rows_of_the_whole_augmented_batch(workers):
    """``part`` (a process's rows of a global batch, ``nasir.distributed``): the same images, crops,
    flips and cutout squares as those rows of the single-process batch."""
    data, aug = _set(24), Augmentation(cutout=4)
    whole = list(itertools.islice(stream(data, 8, 7, aug, skip=2), 3))
    for part in (slice(0, 4), slice(4, 8)):
        mine = list(itertools.islice(stream(data, 8, 7, aug, skip=2, workers=workers, part=part), 3))
        for (x, y), (wx, wy) in zip(mine, whole):
            assert torch.equal(x, wx[part]) and torch.equal(y, wy[part])
