"""Ranking tests train tiny networks on tiny tensors: one intra-op thread (``single_thread`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    yield
