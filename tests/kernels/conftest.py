"""Kernel tests use tiny tensors: run torch single-threaded.

On a loaded 2-core box, OpenMP's spinning worker threads made the float64 gradchecks (thousands of
tiny convolutions) 40x slower (0.4 s -> 17-28 s each); one thread loses nothing at these sizes.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
