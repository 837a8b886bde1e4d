"""Shared fixtures: std-space paths and small graphs that keep the suite fast on 2 cores."""

from __future__ import annotations

import pytest
import torch

from nasir.frontends.elaborate import parse_file, parse_string, std_path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def single_thread():
    """Run torch on one intra-op thread for the test, restoring the setting afterwards.

    Tiny tensors gain nothing from intra-op threads, and on a busy 2-core box OpenMP's spinning
    workers made tiny convolutions tens of times slower (a 0.4 s float64 gradcheck took 17-28 s).
    Folders of such tests request it from an autouse fixture in their conftest.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def darts_graph():
    return parse_file(std_path("darts"))


@pytest.fixture
def tiny_darts():
    """A DARTS space small enough to run forward/backward in milliseconds."""
    return parse_file(std_path("darts"), C=4, layers=3, steps=2, multiplier=2)


@pytest.fixture
def parse():
    return parse_string
