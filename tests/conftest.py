"""Shared fixtures: std-space paths and small graphs that keep the suite fast on 2 cores."""

from __future__ import annotations

import os

import pytest
import torch

from nasir.frontends.elaborate import parse_file, parse_string, std_path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    """One intra-op thread for the whole suite, and for the processes its tests start.

    The suite's tensors are tiny, so intra-op threads gain nothing, and with ``-n 2`` on a 2-core
    machine every extra thread only contends: OpenMP's spinning workers made tiny convolutions tens
    of times slower (a 0.4 s float64 gradcheck took 17-28 s; a search test 42.7 s instead of 0.7 s).
    Tests that need another count set it themselves and restore it.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


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
