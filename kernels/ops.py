"""The public op ``torch.ops.nasir.merged_conv`` and its autograd formula.

Both the forward and the backward are ``torch.library.triton_op`` s: their bodies launch Triton
kernels through ``wrap_triton``, so ``torch.compile`` and ``torch.export`` trace through them
(the kernels become graph nodes Inductor can schedule) instead of treating them as opaque calls.
The bodies pick an implementation at trace/run time:

- CUDA tensors, Triton importable, shape supported -> Triton (:mod:`nasir.kernels.triton_conv`):
  direct depthwise kernels, or Triton weight prep + cuDNN for dense/grouped/factorized;
- anything else -> the torch reference (:mod:`nasir.kernels.reference`).

:func:`use_backend` forces one side ("torch", "triton", "auto"); tests use "triton" on CPU under
``TRITON_INTERPRET=1`` and "torch" to compare.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from nasir.kernels import reference as ref
from nasir.kernels import triton_conv as tc

_BACKEND = "auto"


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Force the implementation the op dispatches to inside the block ("auto", "torch", "triton")."""
    global _BACKEND
    if name not in ("auto", "torch", "triton"):
        raise ValueError(f"unknown backend {name!r}")
    old, _BACKEND = _BACKEND, name
    try:
        yield
    finally:
        _BACKEND = old


def _triton_path(x: Tensor, kernels, dilations, groups: int, pointwise) -> bool:
    if _BACKEND == "torch":
        return False
    if _BACKEND == "triton":
        if not (x.is_cuda or tc.interpreting()):
            raise RuntimeError("backend 'triton' needs CUDA tensors or TRITON_INTERPRET=1")
        if not tc.supported(x, kernels, dilations, groups, pointwise):
            raise RuntimeError("backend 'triton' does not support these shapes/dtypes")
        return True
    return x.is_cuda and tc.available() and tc.supported(x, kernels, dilations, groups, pointwise)


def _opt(xs: list) -> list | None:
    """The schema has no optional lists, so an empty list stands for None (no pointwise / mask)."""
    return list(xs) if len(xs) else None


@torch.library.triton_op("nasir::merged_conv", mutates_args=())
def _merged_conv(
    x: Tensor,
    kernels: list[Tensor],
    dilations: list[int],
    weights: Tensor,
    stride: int,
    groups: int,
    pointwise: list[Tensor],
    normalize: bool,
    normalize_mask: list[bool],
    eps: float,
) -> Tensor:
    pointwise, normalize_mask = _opt(pointwise), _opt(normalize_mask)
    if _triton_path(x, kernels, dilations, groups, pointwise):
        if tc.is_depthwise(x, kernels, groups, pointwise):
            return tc.dw_forward(x, kernels, dilations, weights, stride, normalize, normalize_mask, eps)
        return tc.dense_forward(x, kernels, dilations, weights, stride, groups, pointwise, normalize, normalize_mask, eps)
    return ref.merged_conv_reference(x, kernels, dilations, weights, stride=stride, groups=groups, pointwise=pointwise,
                                     normalize=normalize, normalize_mask=normalize_mask, eps=eps)


@torch.library.triton_op("nasir::merged_conv_backward", mutates_args=())
def _merged_conv_backward(
    grad: Tensor,
    x: Tensor,
    kernels: list[Tensor],
    dilations: list[int],
    weights: Tensor,
    stride: int,
    groups: int,
    pointwise: list[Tensor],
    normalize: bool,
    normalize_mask: list[bool],
    eps: float,
) -> tuple[Tensor, list[Tensor], list[Tensor], Tensor]:
    """(grad_x, grads of kernels, grads of pointwise kernels (empty without), grad_weights)."""
    pointwise, normalize_mask = _opt(pointwise), _opt(normalize_mask)
    if _triton_path(x, kernels, dilations, groups, pointwise):
        if tc.is_depthwise(x, kernels, groups, pointwise):
            gx, gks, gw = tc.dw_backward(grad, x, kernels, dilations, weights, stride, normalize, normalize_mask, eps)
            return gx, gks, [], gw
        return tc.dense_backward(grad, x, kernels, dilations, weights, stride, groups, pointwise, normalize,
                                 normalize_mask, eps)
    W = ref.merge_kernels_reference(kernels, dilations, weights, pointwise=pointwise, normalize=normalize,
                                    normalize_mask=normalize_mask, eps=eps).to(x.dtype)
    g = 1 if pointwise is not None else groups
    p = W.shape[-1] // 2
    gx, gW, _ = torch.ops.aten.convolution_backward(
        grad, x, W, None, [stride, stride], [p, p], [1, 1], False, [0, 0], g, [True, True, False])
    gks, gps, gw = ref.merge_kernels_backward_reference(
        gW, kernels, dilations, weights, pointwise=pointwise, normalize=normalize, normalize_mask=normalize_mask, eps=eps)
    return gx, gks, gps, gw


def _setup_context(ctx, inputs, output):
    x, kernels, dilations, weights, stride, groups, pointwise, normalize, normalize_mask, eps = inputs
    pw = list(pointwise)
    ctx.save_for_backward(x, weights, *kernels, *pw)
    ctx.n = len(kernels)
    ctx.has_pw = len(pw) > 0
    ctx.args = (list(dilations), stride, groups, normalize, list(normalize_mask), eps)
    ctx.mask_empty = len(normalize_mask) == 0


def _backward(ctx, grad):
    x, weights, *rest = ctx.saved_tensors
    kernels, pw = list(rest[: ctx.n]), list(rest[ctx.n :])
    dilations, stride, groups, normalize, mask, eps = ctx.args
    grad = grad if tc.is_channels_last(grad) else grad.contiguous()
    gx, gks, gps, gw = torch.ops.nasir.merged_conv_backward(
        grad, x, kernels, dilations, weights, stride, groups, pw, normalize, mask, eps)
    # register_autograd wants the inputs' structure back: a list of grads for each tensor list,
    # and [] for an empty list argument (pointwise / normalize_mask standing for None)
    return (gx, list(gks), None, gw, None, None, list(gps), None, [] if ctx.mask_empty else None, None)


_merged_conv.register_autograd(_backward, setup_context=_setup_context)


def _as_weights(weights, like: Tensor) -> Tensor:
    if isinstance(weights, Tensor):
        return weights
    return torch.as_tensor(weights, dtype=torch.float32, device=like.device)


def merged_conv(
    x: Tensor,
    kernels: Sequence[Tensor],
    dilations: Sequence[int],
    weights: Tensor,
    *,
    stride: int = 1,
    groups: int = 1,
    pointwise: Sequence[Tensor] | None = None,
    normalize: bool = False,
    normalize_mask: Sequence[bool] | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """sum_i weights[i] * O_i(x) computed as one convolution with the merged kernel.

    O_i is ``conv2d(x, N(kernels[i]), stride, padding=d_i (s_i - 1) / 2, dilation=d_i, groups)``,
    or with ``pointwise`` the depthwise->pointwise pair ``pw_i(dw_i(x))`` (then ``groups`` must be
    C_in).  With ``normalize`` the candidate's reparameterized kernel (its kernel, or the product
    pw_i dw_i) is normalized instead: each output filter standardized and times 1 / sqrt(fan_in)
    (``reference.normalize_kernel``; ``normalize_mask[i]`` False exempts candidate i, e.g. a fixed
    identity delta).  ``weights`` are used as given (already
    softmaxed / conditional); gradients flow to x, every kernel, every pointwise kernel and the
    weights.  Dispatches to Triton on CUDA and to the torch reference elsewhere.
    """
    weights = _as_weights(weights, x)
    kernels = list(kernels)
    pointwise = list(pointwise) if pointwise is not None else None
    ref.check_args(kernels, dilations, weights, groups, pointwise, x)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    mask = None if normalize_mask is None else [bool(m) for m in normalize_mask]
    if mask is not None and len(mask) != len(kernels):
        raise ValueError(f"normalize_mask has {len(mask)} entries for {len(kernels)} candidates")
    return torch.ops.nasir.merged_conv(x, kernels, [int(d) for d in dilations], weights, int(stride), int(groups),
                                       pointwise or [], bool(normalize), mask or [], float(eps))


def merge_kernels(
    kernels: Sequence[Tensor],
    dilations: Sequence[int],
    weights: Tensor,
    *,
    stride: int = 1,
    groups: int = 1,
    pointwise: Sequence[Tensor] | None = None,
    normalize: bool = False,
    normalize_mask: Sequence[bool] | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """The merged kernel of :func:`merged_conv` (same arguments minus ``x``), in the kernels' dtype.

    For the reparameterization pass and for exporting a fixed architecture: convolving with it
    (padding K // 2, the same stride; groups, or 1 with ``pointwise``) gives the mixed op.
    Differentiable by plain autograd; ``stride`` is accepted for symmetry and unused.
    """
    del stride
    weights = _as_weights(weights, kernels[0])
    kernels = list(kernels)
    pointwise = list(pointwise) if pointwise is not None else None
    ref.check_args(kernels, dilations, weights, groups, pointwise)
    W = ref.merge_kernels_reference(kernels, dilations, weights, pointwise=pointwise, normalize=normalize,
                                    normalize_mask=normalize_mask, eps=eps)
    return W.to(kernels[0].dtype)
