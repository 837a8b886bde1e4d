"""Triton kernels on a real GPU against the float64 reference, sweeping num_warps (miscompiles
only show up compiled; the interpreter tests cannot see them).  Skipped without CUDA."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from nasir.kernels import merged_conv, merged_conv_reference, use_backend
from nasir.kernels import triton_conv as tc
from nasir.kernels.reference import merge_kernels_backward_reference, merge_kernels_reference

from ._cases import DARTS_DW, MBCONV_DW, NB201, SINGLE_TAP, make_case, rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
                                reason="needs CUDA and triton")

TOL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
DW_SHAPES = {
    "darts": dict(n=8, c_in=16, groups=16, h=32, w=32, specs=DARTS_DW),
    "darts-b1-odd": dict(n=1, c_in=16, groups=16, h=15, w=17, specs=DARTS_DW),
    "mbconv": dict(n=2, c_in=40, groups=40, h=28, w=28, specs=MBCONV_DW),
    "big-tile": dict(n=2, c_in=8, groups=8, h=70, w=90, specs=[(3, 1), (3, 2)]),
    "single-tap": dict(n=2, c_in=8, groups=8, h=15, w=16, specs=SINGLE_TAP),
}


def _reference_grads(x, ks, ds, w, gy, stride, normalize, mask):
    leaves = [t.detach().double().requires_grad_() for t in (x, w, *ks)]
    y = merged_conv_reference(leaves[0], leaves[2:], ds, leaves[1], stride=stride, groups=x.shape[1],
                              normalize=normalize, normalize_mask=mask)
    return (y, *torch.autograd.grad(y, leaves, gy.double()))


@pytest.mark.parametrize("num_warps", [2, 4, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", sorted(DW_SHAPES))
def test_depthwise_kernels(shape, stride, dtype, num_warps):
    x, ks, ds, w, _ = make_case(**DW_SHAPES[shape], dtype=dtype, device="cuda", seed=num_warps)
    w = w.float()
    mask = [i != 1 for i in range(len(ks))]
    y = tc.dw_forward(x, ks, ds, w, stride, True, mask, 1e-5, num_warps=num_warps)
    gy = torch.randn_like(y)
    gx, gks, gw = tc.dw_backward(gy, x, ks, ds, w, stride, True, mask, 1e-5, num_warps=num_warps)
    ref = _reference_grads(x, ks, ds, w, gy, stride, True, mask)
    got = (y, gx, gw, *gks)
    want = (ref[0], ref[1], ref[2], *ref[3:])
    tol = TOL[dtype]
    for name, a, b in zip(["y", "gx", "gw"] + [f"gk{i}" for i in range(len(ks))], got, want):
        assert a.shape == b.shape, name
        assert a.dtype == (w.dtype if name == "gw" else dtype), name
        # weight grads sum 1e5+ products: allow more for half types
        assert rel_err(a, b) < (tol if name in ("y", "gx") else 3 * tol), name


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", sorted(DW_SHAPES))
def test_depthwise_nhwc_kernels(shape, stride, dtype, channels_last):
    """The channels-last kernels (autotuned tiles) against float64, results in the input's layout."""
    x, ks, ds, w, _ = make_case(**DW_SHAPES[shape], dtype=dtype, device="cuda", seed=stride)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = w.float()
    mask = [i != 1 for i in range(len(ks))]
    y = tc.dw_forward_nhwc(x, ks, ds, w, stride, True, mask, 1e-5)
    gy = torch.randn_like(y)
    gx, gks, gw = tc.dw_backward_nhwc(gy, x, ks, ds, w, stride, True, mask, 1e-5)
    assert tc.is_channels_last(y) == channels_last and tc.is_channels_last(gx) == channels_last
    ref = _reference_grads(x, ks, ds, w, gy, stride, True, mask)
    tol = TOL[dtype]
    for name, a, b in zip(["y", "gx", "gw"] + [f"gk{i}" for i in range(len(ks))], (y, gx, gw, *gks), ref):
        assert a.shape == b.shape, name
        assert rel_err(a, b) < (tol if name in ("y", "gx") else 3 * tol), name


@pytest.mark.parametrize("num_warps", [2, 4, 8])
@pytest.mark.parametrize("cfg", [dict(c_in=16, c_out=24, groups=1, specs=NB201),
                                 dict(c_in=16, c_out=16, groups=2, specs=[(3, 1), (5, 1), (3, 2)]),
                                 dict(c_in=16, c_out=32, groups=16, specs=DARTS_DW, pointwise=True),
                                 dict(c_in=16, c_out=32, groups=16, specs=SINGLE_TAP, pointwise=True),
                                 dict(c_in=1, c_out=8, groups=1, specs=SINGLE_TAP)],
                         ids=["dense", "grouped", "factorized", "factorized-single-tap", "dense-one-channel"])
def test_weight_prep_kernel(cfg, num_warps):
    x, ks, ds, w, pw = make_case(n=2, h=16, w=16, **cfg, dtype=torch.float32, device="cuda")
    W = tc.merge(ks, ds, w, pw, True, None, 1e-5, num_warps=num_warps)
    ref = merge_kernels_reference([k.double() for k in ks], ds, w.double(),
                                  pointwise=[p.double() for p in pw] if pw else None, normalize=True)
    assert rel_err(W, ref) < 1e-5
    gW = torch.randn_like(ref)
    gks, gps, gw = merge_kernels_backward_reference(gW, ks, ds, w, pointwise=pw, normalize=True)
    assert all(torch.isfinite(g).all() for g in (*gks, *gps, gw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("cfg", [dict(c_in=16, groups=16, specs=DARTS_DW),
                                 dict(c_in=16, c_out=24, groups=1, specs=NB201),
                                 dict(c_in=16, c_out=32, groups=16, specs=DARTS_DW, pointwise=True)],
                         ids=["depthwise", "dense", "factorized"])
@pytest.mark.parametrize("layout", tc.DW_LAYOUTS)
def test_op_on_cuda_eager_and_compiled(cfg, dtype, layout):
    """The public op on CUDA (Triton path) matches the torch path, eager and under torch.compile."""
    if layout != "direct" and (cfg["groups"] != cfg["c_in"] or cfg.get("pointwise")):
        pytest.skip("the layout choice applies to the depthwise path only")
    x, ks, ds, w, pw = make_case(n=4, h=16, w=16, **cfg, dtype=dtype, device="cuda")
    w = w.float()
    leaves = [t.requires_grad_() for t in (x, w, *ks, *(pw or []))]
    n = len(ks)

    def f(x, w, *rest):
        return merged_conv(x, rest[:n], ds, w, stride=2, groups=cfg["groups"], pointwise=rest[n:] or None, normalize=True)

    with use_backend("torch"):
        y0 = f(*leaves)
        g0 = torch.autograd.grad(y0.float().square().sum(), leaves)
    torch._dynamo.reset()
    with tc.dw_layout(layout):
        y1 = f(*leaves)
        g1 = torch.autograd.grad(y1.float().square().sum(), leaves)
        cf = torch.compile(f, fullgraph=True)
        y2 = cf(*leaves)
        g2 = torch.autograd.grad(y2.float().square().sum(), leaves)
    tol = 5e-3 if dtype == torch.float32 else 5e-2  # cuDNN may use TF32 in the torch path
    for a, b, c in zip((y1, *g1), (y0, *g0), (y2, *g2)):
        assert rel_err(a, b) < tol
        assert rel_err(c, b) < tol


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(2, 16, 24, 16, 16, 3), (1, 5, 9, 15, 17, 9), (3, 64, 64, 32, 32, 3)],
                         ids=["small", "odd-9x9", "nb201"])
def test_implicit_gemm_forward(size, stride, dtype, channels_last):
    n, c, co, h, w, k = size
    x = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    W = torch.randn(co, c, k, k, device="cuda", dtype=dtype)
    y = tc.igemm_conv(x, W, stride)
    want = torch.nn.functional.conv2d(x.double(), W.double(), stride=stride, padding=k // 2)
    assert tc.is_channels_last(y) == channels_last
    assert rel_err(y, want) < (5e-3 if dtype == torch.float32 else 3e-2)  # tl.dot takes fp32 as TF32
