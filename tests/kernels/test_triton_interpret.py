"""Triton kernels vs the torch reference under ``TRITON_INTERPRET=1`` on tiny fp32 CPU shapes.

The interpreter runs the same kernel source as the GPU, so this catches indexing, masking and
formula errors in CI; it cannot catch miscompiles, which test_gpu.py covers on a real device.

``TRITON_INTERPRET`` must be set before Triton is first imported (Triton's own ``tl`` helpers are
decorated then), and in a full pytest run something may already have imported it.  So the
checks below run in a child pytest with the variable set from the start; in the parent only the
driver test runs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from nasir.kernels import merged_conv, use_backend
from nasir.kernels import triton_conv as tc

from ._cases import DARTS_DW, MBCONV_DW, NB201, SINGLE_TAP, make_case, rel_err

_CHILD = os.environ.get("NASIR_TRITON_INTERPRET_CHILD") == "1"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
child_only = pytest.mark.skipif(not _CHILD, reason="runs inside the TRITON_INTERPRET=1 child of test_interpreter_suite")


@pytest.mark.skipif(_CHILD, reason="driver")
def test_interpreter_suite():
    env = dict(os.environ, TRITON_INTERPRET="1", NASIR_TRITON_INTERPRET_CHILD="1", OMP_NUM_THREADS="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", os.path.abspath(__file__)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    progress = proc.stdout.split()[0] if proc.stdout.split() else ""
    assert progress.count(".") == 29, proc.stdout[-2000:]  # every interpreted check ran and passed


def _both(cfg, stride, normalize, mask=None, n=2, channels_last=False):
    """Forward and all gradients through the op, once per backend."""
    x, ks, ds, w, pw = make_case(n=n, dtype=torch.float32, **cfg)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    leaves = [t.requires_grad_() for t in (x, w, *ks, *(pw or []))]
    kw = dict(stride=stride, groups=cfg["groups"], pointwise=pw, normalize=normalize, normalize_mask=mask)
    out = {}
    for backend in ("torch", "triton"):
        with use_backend(backend):
            y = merged_conv(x, ks, ds, w, **kw)
            gy = torch.cos(torch.arange(y.numel(), dtype=y.dtype)).view_as(y)
            out[backend] = (y, *torch.autograd.grad(y, leaves, gy))
    return out


@child_only
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("normalize", [False, True])
def test_depthwise_darts(stride, normalize):
    out = _both(dict(c_in=3, groups=3, specs=DARTS_DW, h=9, w=11), stride, normalize)
    for a, b in zip(out["triton"], out["torch"]):
        assert a.shape == b.shape
        assert rel_err(a, b) < 1e-5


@child_only
def test_depthwise_single_tap():
    out = _both(dict(c_in=3, groups=3, specs=SINGLE_TAP, h=7, w=6), 1, True)
    for a, b in zip(out["triton"], out["torch"]):
        assert rel_err(a, b) < 1e-5


@child_only
def test_depthwise_odd_size_batch1_exempt_candidate():
    out = _both(dict(c_in=2, groups=2, specs=MBCONV_DW, h=7, w=10), 2, True, mask=[True, False, True], n=1)
    for a, b in zip(out["triton"], out["torch"]):
        assert rel_err(a, b) < 1e-5


@child_only
@pytest.mark.parametrize("cfg", [dict(c_in=3, c_out=5, groups=1, specs=NB201, h=6, w=7),
                                 dict(c_in=4, c_out=6, groups=2, specs=[(3, 1), (3, 2)], h=6, w=5),
                                 dict(c_in=3, c_out=4, groups=3, specs=DARTS_DW, pointwise=True, h=6, w=5),
                                 dict(c_in=3, c_out=4, groups=3, specs=SINGLE_TAP, pointwise=True, h=6, w=5),
                                 dict(c_in=1, c_out=3, groups=1, specs=SINGLE_TAP, h=6, w=5)],
                         ids=["dense", "grouped", "factorized", "factorized-single-tap", "dense-one-channel"])
def test_weight_prep_paths(cfg):
    out = _both(cfg, 2, True)
    for a, b in zip(out["triton"], out["torch"]):
        assert rel_err(a, b) < 1e-5


@child_only
@pytest.mark.parametrize("channels", [5, 8], ids=["masked-channels", "whole-channel-block"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_depthwise_nhwc_layout(stride, channels_last, channels):
    """The channels-last kernels: a channel count off the block (masked) and on it (no channel mask),
    odd sizes, both input layouts; the result keeps the input's memory format like PyTorch's convolutions."""
    with tc.dw_layout("nhwc"):
        out = _both(dict(c_in=channels, groups=channels, specs=DARTS_DW, h=9, w=7), stride, True,
                    channels_last=channels_last)
    y, gx = out["triton"][0], out["triton"][1]
    assert tc.is_channels_last(y) == channels_last
    assert tc.is_channels_last(gx) == channels_last
    for a, b in zip(out["triton"], out["torch"]):
        assert a.shape == b.shape
        assert rel_err(a, b) < 1e-5


@child_only
def test_depthwise_nhwc_wide_exempt_single_tap():
    """More channels than one channel block (64), a single-tap candidate and an exempt one, batch 1."""
    with tc.dw_layout("nhwc"):
        out = _both(dict(c_in=70, groups=70, specs=[(1, 1), (3, 1), (5, 2)], h=5, w=6), 1, True,
                    mask=[True, False, True], n=1)
    for a, b in zip(out["triton"], out["torch"]):
        assert rel_err(a, b) < 1e-5


@child_only
def test_depthwise_layout_unknown():
    with pytest.raises(ValueError, match="unknown depthwise layout"):
        with tc.dw_layout("nchw4"):
            pass


@child_only
@pytest.mark.parametrize("cfg", [dict(c_in=3, c_out=5, groups=1, specs=NB201),
                                 dict(c_in=4, c_out=6, groups=2, specs=[(3, 1), (3, 2)]),
                                 dict(c_in=3, c_out=4, groups=3, specs=DARTS_DW, pointwise=True),
                                 dict(c_in=1, c_out=3, groups=1, specs=SINGLE_TAP),
                                 dict(c_in=1, c_out=3, groups=1, specs=SINGLE_TAP, pointwise=True)],
                         ids=["dense", "grouped", "factorized", "dense-one-number", "factorized-one-channel"])
def test_merge_backward_kernels(cfg):
    """The Triton merge backward against the explicit torch formula, an exempt candidate included
    (normalized for dense and grouped candidates; factorized ones are normalized only through the reference)."""
    from nasir.kernels.reference import merge_kernels_backward_reference

    x, ks, ds, w, pw = make_case(dtype=torch.float32, **cfg)
    mask = [i != 1 for i in range(len(ks))]
    K = max(d * (k.shape[-1] - 1) + 1 for k, d in zip(ks, ds))
    co = pw[0].shape[0] if pw else ks[0].shape[0]
    gW = torch.randn(co, ks[0].shape[1] if not pw else pw[0].shape[1], K, K, generator=torch.Generator().manual_seed(1))
    normalize = not pw  # normalized factorized candidates take the reference VJP itself (merge_backward)
    got = tc.merge_backward(gW, ks, ds, w, pw, normalize, mask, 1e-5)
    want = merge_kernels_backward_reference(gW, ks, ds, w, pointwise=pw, normalize=normalize, normalize_mask=mask)
    for a, b in zip([*got[0], *got[1], got[2]], [*want[0], *want[1], want[2]]):
        assert a.shape == b.shape
        assert rel_err(a, b) < 1e-5


@child_only
@pytest.mark.parametrize("stride", [1, 2])
def test_implicit_gemm_forward(stride):
    """The implicit-GEMM dense convolution against conv2d (odd sizes, channel and filter counts off the tile)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 7, 6, generator=g)
    W = torch.randn(18, 5, 3, 3, generator=g)
    y = tc.igemm_conv(x, W, stride)
    want = torch.nn.functional.conv2d(x, W, stride=stride, padding=1)
    assert y.shape == want.shape and not tc.is_channels_last(y)
    assert rel_err(y, want) < 1e-5


@child_only
def test_depthwise_auto_layout_follows_the_input():
    """By default channels-last inputs take the nhwc kernels (and keep their layout), NCHW ones the direct ones."""
    assert tc.current_dw_layout() == "auto"
    out = _both(dict(c_in=4, groups=4, specs=DARTS_DW, h=6, w=5), 1, True, channels_last=True)
    assert tc.is_channels_last(out["triton"][0]) and tc.is_channels_last(out["triton"][1])
    for a, b in zip(out["triton"], out["torch"]):
        assert rel_err(a, b) < 1e-5
    out = _both(dict(c_in=4, groups=4, specs=DARTS_DW, h=6, w=5), 1, True)
    assert out["triton"][0].is_contiguous()
