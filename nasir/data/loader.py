"""Endless, deterministic and resumable mini-batch streams over an ``ImageSet``.

Order: every epoch draws a fresh permutation from a generator seeded with ``seed`` and yields its
full batches (the last partial batch of an epoch is dropped). Augmentation: batch number ``k``
draws from its own generator, seeded from ``seed`` and ``k``. A stream that starts at batch
``skip`` (a resumed run) therefore yields exactly the batches an uninterrupted stream yields from
there, without computing the ones before, and the batches do not depend on how many DataLoader
worker processes prepare them. In a run of many processes (``nasir.distributed``) the batch is
global: every process draws the same batch and keeps its rows ``part`` of it, with the augmentation
those rows get in the whole batch, so the processes together train on what one process would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from nasir.data.images import Augmentation, ImageSet
from nasir.diagnostics import NasirError

Batch = tuple[torch.Tensor, torch.Tensor]


def index_batches(n: int, batch_size: int, seed: int, skip: int = 0) -> Iterator[torch.Tensor]:
    """Endless shuffled index batches of ``range(n)``, from batch number ``skip`` on (checked at once)."""
    if batch_size < 1 or n < batch_size:
        raise NasirError(f"{n} samples are fewer than one batch of {batch_size}",
                         hint="use a smaller --batch-size or more data")
    return _index_batches(n, batch_size, seed, skip)


def _index_batches(n: int, batch_size: int, seed: int, skip: int) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    per_epoch = n // batch_size
    epochs, first = divmod(skip, per_epoch)
    for _ in range(epochs):
        torch.randperm(n, generator=g)
    while True:
        perm = torch.randperm(n, generator=g)
        for b in range(first, per_epoch):
            yield perm[b * batch_size:(b + 1) * batch_size]
        first = 0


def batch_generator(seed: int, number: int) -> torch.Generator:
    """The generator of batch ``number``'s augmentation in a stream seeded ``seed``."""
    return torch.Generator().manual_seed((seed * 1_000_003 + number * 7_919 + 17) % 2**63)


class _NumberedBatches(Dataset):
    """Rows ``part`` of batch ``(number, indices)`` of a set, augmented with that batch's own generator."""

    def __init__(self, data: ImageSet, augmentation: Augmentation | None, seed: int, part: slice):
        self.data = data
        self.augmentation = augmentation
        self.seed = seed
        self.part = part

    def __getitem__(self, key: tuple[int, torch.Tensor]) -> Batch:
        number, indices = key
        gen = batch_generator(self.seed, number) if self.augmentation is not None else None
        return self.data.batch(indices, self.augmentation, gen, self.part)


def stream(data: ImageSet, batch_size: int, seed: int, augmentation: Augmentation | None = None, skip: int = 0,
           workers: int = 0, pin_memory: bool = False, part: slice = slice(None)) -> Iterator[Batch]:
    """Batches ``skip, skip + 1, ...`` of ``data`` (see the module docstring), prepared by
    ``workers`` DataLoader processes (0: this one), in pinned memory if asked (CUDA); of every batch
    only its rows ``part`` (this process's share, ``Processes.rows``)."""
    keys = enumerate(index_batches(len(data), batch_size, seed, skip), start=skip)
    source = _NumberedBatches(data, augmentation, seed, part)
    if workers == 0 and not pin_memory:
        return (source[key] for key in keys)
    loader = DataLoader(source, batch_size=None, sampler=keys, num_workers=workers, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(seed))
    return iter(loader)
