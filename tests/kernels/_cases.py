"""Random candidate sets shared by the kernel tests (fresh inputs per call, never zeros)."""

from __future__ import annotations

import torch

DARTS_DW = [(3, 1), (5, 1), (3, 2), (5, 2)]  # sep 3x3, sep 5x5, dil 3x3, dil 5x5 -> 9x9 footprint
MBCONV_DW = [(3, 1), (5, 1), (7, 1)]
NB201 = [(1, 1), (3, 1)]
SINGLE_TAP = [(1, 1), (3, 2)]  # a 1x1 kernel: one number per depthwise filter


def make_case(n=2, c_in=4, c_out=None, h=9, w=11, specs=DARTS_DW, groups=1, pointwise=False, dtype=torch.float64,
              device="cpu", seed=0):
    """(x, kernels, dilations, weights, pointwise-or-None); depthwise when groups == c_in."""
    g = torch.Generator().manual_seed(seed)
    c_out = c_out or c_in

    def rnd(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=g).to(device=device, dtype=dtype)

    x = rnd(n, c_in, h, w)
    if pointwise:
        kernels = [rnd(c_in, 1, s, s) for s, _ in specs]
        pw = [rnd(c_out, c_in, 1, 1) for _ in specs]
    else:
        ck = c_in if groups == c_in else c_out
        kernels = [rnd(ck, c_in // groups, s, s) for s, _ in specs]
        pw = None
    weights = torch.softmax(rnd(len(specs)).double(), 0).to(dtype)
    return x, kernels, [d for _, d in specs], weights, pw


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    assert torch.isfinite(a).all(), "non-finite values"
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
