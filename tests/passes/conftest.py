"""The TopoNAS pass tests use ``nasir.testing``: FileCheck-style IR checks and before/after comparisons."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nasir.testing import compare, edge_text, filecheck, one_hot_alpha, run_pipeline


@pytest.fixture
def topo():
    """The ``nasir.testing`` helpers these tests use, as one namespace."""
    return SimpleNamespace(filecheck=filecheck, edge_text=edge_text, run=run_pipeline, compare=compare,
                           one_hot_alpha=one_hot_alpha)
