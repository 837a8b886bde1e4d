"""Shared fixtures: std-space paths and small graphs that keep the suite fast on 2 cores."""

from __future__ import annotations

import pytest
import torch

from nasir.frontends.elaborate import parse_file, parse_string, std_path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


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
