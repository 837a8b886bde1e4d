"""Kernel tests use tiny tensors (thousands of tiny float64 convolutions in the gradchecks)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Every test here uses tiny tensors: one thread (see ``single_thread`` in tests/conftest.py)."""
