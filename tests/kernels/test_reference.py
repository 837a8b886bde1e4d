"""The torch reference and the op's autograd formula against the naive mixed op, in float64."""

from __future__ import annotations

import pytest
import torch

from nasir.kernels import embed, footprint, merge_kernels, merged_conv, merged_conv_reference, naive_mixed_conv, use_backend
from nasir.kernels.reference import standardize, standardize_backward

from ._cases import DARTS_DW, MBCONV_DW, NB201, SINGLE_TAP, make_case

CONFIGS = {
    "dw-darts": dict(c_in=4, groups=4, specs=DARTS_DW),
    "dw-mbconv": dict(c_in=3, groups=3, specs=MBCONV_DW, h=8, w=7),
    "dense-nb201": dict(c_in=3, c_out=5, groups=1, specs=NB201),
    "grouped": dict(c_in=4, c_out=6, groups=2, specs=[(3, 1), (3, 2)]),
    "factorized": dict(c_in=4, c_out=3, groups=4, specs=DARTS_DW, pointwise=True),
    # filters of one number (1x1 depthwise, pointwise or dense over one channel) are not standardized
    "dw-single-tap": dict(c_in=3, groups=3, specs=SINGLE_TAP),
    "factorized-single-tap": dict(c_in=3, c_out=4, groups=3, specs=SINGLE_TAP, pointwise=True),
    "dense-one-channel": dict(c_in=1, c_out=3, groups=1, specs=SINGLE_TAP),
}


def test_embed_places_dilated_taps_in_the_centre():
    k = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    e = embed(k, 2, 7)
    assert e.shape == (1, 1, 7, 7)
    assert e[0, 0, 1, 1] == 1 and e[0, 0, 1, 3] == 2 and e[0, 0, 5, 5] == 9 and e[0, 0, 2, 2] == 0
    assert e.sum() == k.sum() and footprint([3, 5, 3, 5], [1, 1, 2, 2]) == 9


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("normalize", [False, True])
def test_reference_equals_naive_mixed_op(name, stride, normalize):
    cfg = dict(CONFIGS[name])
    x, ks, ds, w, pw = make_case(**cfg)
    kw = dict(stride=stride, groups=cfg["groups"], pointwise=pw, normalize=normalize)
    y = merged_conv_reference(x, ks, ds, w, **kw)
    y0 = naive_mixed_conv(x, ks, ds, w, **kw)
    assert y.shape == y0.shape
    torch.testing.assert_close(y, y0, rtol=1e-10, atol=1e-10)
    # the exported merged kernel gives the same convolution
    W = merge_kernels(ks, ds, w, groups=cfg["groups"], pointwise=pw, normalize=normalize)
    g = 1 if pw is not None else cfg["groups"]
    y1 = torch.nn.functional.conv2d(x, W, stride=stride, padding=W.shape[-1] // 2, groups=g)
    torch.testing.assert_close(y1, y0, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_op_gradcheck(name):
    """gradcheck of the op's hand-written backward (x, every kernel, pointwise kernels, weights)."""
    cfg = dict(CONFIGS[name])
    x, ks, ds, w, pw = make_case(**{**cfg, "n": 1, "h": 6, "w": 5})
    pw = pw or []
    n = len(ks)
    mask = [True] * n
    mask[0] = False  # one exempt candidate (e.g. a fixed identity kernel)
    leaves = [t.requires_grad_() for t in (x, w, *ks, *pw)]

    def f(x, w, *rest):
        return merged_conv(x, rest[:n], ds, w, stride=2, groups=cfg["groups"], pointwise=rest[n:] or None,
                           normalize=True, normalize_mask=mask)

    with use_backend("torch"):
        assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["dw-darts", "factorized"])
def test_op_gradients_equal_naive(name):
    cfg = dict(CONFIGS[name])
    x, ks, ds, w, pw = make_case(**cfg)
    kw = dict(stride=1, groups=cfg["groups"], pointwise=pw, normalize=True)
    leaves = [t.requires_grad_() for t in (x, w, *ks, *(pw or []))]
    gy = torch.randn(merged_conv_reference(x, ks, ds, w, **kw).shape, dtype=x.dtype)
    g_naive = torch.autograd.grad(naive_mixed_conv(x, ks, ds, w, **kw), leaves, gy)
    with use_backend("torch"):
        g_op = torch.autograd.grad(merged_conv(x, ks, ds, w, **kw), leaves, gy)
    for a, b in zip(g_op, g_naive):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_standardize_backward_of_constant_filter_is_finite():
    k = torch.ones(2, 3, 3, 3, dtype=torch.float64)
    k[1] = torch.randn(3, 3, 3, dtype=torch.float64)
    g = torch.randn_like(k)
    gk = standardize_backward(k, g)
    assert torch.isfinite(gk).all()
    kk = k[1:].clone().requires_grad_()
    (ref,) = torch.autograd.grad(standardize(kk), kk, g[1:])
    torch.testing.assert_close(gk[1:], ref)


def test_single_number_filters_are_left_as_they_are():
    """Standardizing one number gives 0 whatever it is: a dwconv(1) candidate became a zero op."""
    k = torch.randn(4, 1, 1, 1, dtype=torch.float64)
    g = torch.randn_like(k)
    assert torch.equal(standardize(k), k) and torch.equal(standardize_backward(k, g), g)
    stacked = torch.randn(2, 4, 1, 1, 1, dtype=torch.float64)
    assert torch.equal(standardize(stacked, first=2), stacked)
    x, ks, ds, w, _ = make_case(c_in=3, groups=3, specs=SINGLE_TAP)
    with use_backend("torch"):
        only_tap = merged_conv(x, ks, ds, torch.tensor([1.0, 0.0], dtype=torch.float64), groups=3, normalize=True)
    torch.testing.assert_close(only_tap, torch.nn.functional.conv2d(x, ks[0], groups=3))


def test_stacked_standardization_equals_per_kernel():
    """The batched merge standardizes same-shaped kernels as one stack (``first=2``)."""
    ks = torch.randn(3, 4, 2, 5, 5, dtype=torch.float64)
    gs = torch.randn_like(ks)
    torch.testing.assert_close(standardize(ks, first=2), torch.stack([standardize(k) for k in ks]))
    torch.testing.assert_close(standardize_backward(ks, gs, first=2),
                               torch.stack([standardize_backward(k, g) for k, g in zip(ks, gs)]))


def test_bad_arguments_are_rejected():
    x, ks, ds, w, _ = make_case(c_in=4, groups=4)
    with pytest.raises(ValueError, match="odd"):
        merged_conv(x, [torch.randn(4, 1, 2, 2, dtype=x.dtype)], [1], w[:1], groups=4)
    with pytest.raises(ValueError, match="weights"):
        merged_conv(x, ks, ds, w[:2], groups=4)
    with pytest.raises(ValueError, match="channels"):
        merged_conv(x, ks, ds, w, groups=2)


def test_op_under_torch_compile_and_export():
    """The op traces (triton_op body visible) and compiles with its backward on CPU."""
    x, ks, ds, w, _ = make_case(c_in=4, groups=4, dtype=torch.float32)
    leaves = [t.requires_grad_() for t in (x, w, *ks)]

    def f(x, w, *ks):
        return merged_conv(x, ks, ds, w, groups=4, normalize=True)

    eager = f(*leaves)
    ge = torch.autograd.grad(eager.square().sum(), leaves)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")(*leaves)
    gc = torch.autograd.grad(compiled.square().sum(), leaves)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(gc, ge):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ks = torch.nn.ParameterList([torch.nn.Parameter(k.detach()) for k in ks])

        def forward(self, x, w):
            return merged_conv(x, list(self.ks), ds, w, groups=4, normalize=True)

    ep = torch.export.export(M(), (x.detach(), w.detach()))
    assert "nasir.merged_conv" in str(ep.graph) or "triton_kernel_wrapper" in str(ep.graph) or "convolution" in str(ep.graph)
    torch.testing.assert_close(ep.module()(x.detach(), w.detach()), eager.detach())
