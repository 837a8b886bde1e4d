"""Torch reference of the merged (TopoNAS) convolution.

This module is the ground truth the Triton kernels are tested against and the implementation the
``nasir::merged_conv`` op runs off CUDA.  Everything is plain, differentiable PyTorch so that
``torch.autograd.gradcheck`` can compare it with the naive mixed op (a weighted sum of separate
convolutions) in float64.

Notation (DESIGN.md, "TopoNAS formulas"): candidate i has kernel k_i of odd size s_i and dilation
d_i; its footprint is d_i (s_i - 1) + 1 and the merged footprint is K = max_i of those.  E(k_i)
embeds k_i centred into K x K with taps every d_i.  The merged kernel is W = sum_i w_i E(N(k_i))
where N is per-output-filter standardization (Eq. 28) or the identity.  Factorized candidates
(depthwise -> pointwise) merge into the dense W[o, c] = sum_i w_i PW_i[o, c] E(DW_i[c]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def footprint(sizes: Sequence[int], dilations: Sequence[int]) -> int:
    """Merged footprint K = max_i d_i (s_i - 1) + 1 (always odd because every s_i is odd)."""
    return max(d * (s - 1) + 1 for s, d in zip(sizes, dilations))


def embed(k: Tensor, dilation: int, K: int) -> Tensor:
    """E(k): place the taps of ``k`` (.., s, s) every ``dilation`` pixels, centred in K x K.

    Written as a slice assignment into zeros so autograd (and torch.compile) see a plain
    scatter whose backward is the strided slice of the incoming gradient.
    """
    s = k.shape[-1]
    span = dilation * (s - 1) + 1
    off = (K - span) // 2
    out = k.new_zeros(*k.shape[:-2], K, K)
    out[..., off : off + span : dilation, off : off + span : dilation] = k
    return out


def extract(g: Tensor, size: int, dilation: int) -> Tensor:
    """E^T(g): the adjoint of :func:`embed`, picking a candidate's taps out of a K x K tensor."""
    K = g.shape[-1]
    span = dilation * (size - 1) + 1
    off = (K - span) // 2
    return g[..., off : off + span : dilation, off : off + span : dilation]


def standardize(k: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-output-filter weight standardization (k - mean) / (std + eps), std with unbiased=False.

    The statistics run over every dimension but the first (input channels and taps), which is
    what TopoNAS' kernel normalization (Eq. 28) and weight standardization do.
    """
    dims = tuple(range(1, k.dim()))
    mean = k.mean(dim=dims, keepdim=True)
    std = k.std(dim=dims, keepdim=True, unbiased=False)
    return (k - mean) / (std + eps)


def standardize_backward(k: Tensor, grad: Tensor, eps: float = 1e-5) -> Tensor:
    """Gradient of :func:`standardize` w.r.t. ``k`` given the gradient ``grad`` of its output.

    With u = k - mean, sigma = sqrt(mean(u^2)) and r = 1 / (sigma + eps):
    dk = r (g - mean(g)) - r^2 mean(g u) / sigma * u.  Where sigma is 0 (a constant filter) the
    second term is 0 because u is, so it is dropped instead of producing 0/0 like autograd's
    std backward would.  Used by the reference backward of the op and mirrored by the Triton
    kernels.
    """
    dims = tuple(range(1, k.dim()))
    u = k - k.mean(dim=dims, keepdim=True)
    sigma = u.square().mean(dim=dims, keepdim=True).sqrt()
    r = 1.0 / (sigma + eps)
    gm = grad.mean(dim=dims, keepdim=True)
    gu = (grad * u).mean(dim=dims, keepdim=True)
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    return r * (grad - gm) - torch.where(sigma > 0, r * r * gu / safe, torch.zeros_like(sigma)) * u


def _mask(n: int, normalize: bool, normalize_mask: Sequence[bool] | None) -> list[bool]:
    if not normalize:
        return [False] * n
    if normalize_mask is None:
        return [True] * n
    if len(normalize_mask) != n:
        raise ValueError(f"normalize_mask has {len(normalize_mask)} entries for {n} candidates")
    return [bool(m) for m in normalize_mask]


def check_args(
    kernels: Sequence[Tensor],
    dilations: Sequence[int],
    weights: Tensor,
    groups: int,
    pointwise: Sequence[Tensor] | None,
    x: Tensor | None = None,
) -> None:
    """Raise ValueError for argument combinations the merged convolution does not define."""
    n = len(kernels)
    if n == 0:
        raise ValueError("merged_conv needs at least one candidate kernel")
    if len(dilations) != n:
        raise ValueError(f"{len(dilations)} dilations for {n} kernels")
    if weights.dim() != 1 or weights.shape[0] != n:
        raise ValueError(f"weights must have shape [{n}], got {list(weights.shape)}")
    co, cig = kernels[0].shape[:2]
    for i, (k, d) in enumerate(zip(kernels, dilations)):
        if k.dim() != 4 or k.shape[-1] != k.shape[-2] or k.shape[-1] % 2 != 1:
            raise ValueError(f"kernel {i} must be [C_k, C_in/groups, s, s] with odd s, got {list(k.shape)}")
        if k.shape[:2] != (co, cig):
            raise ValueError(f"kernel {i} has channels {list(k.shape[:2])}, kernel 0 has {[co, cig]}")
        if int(d) < 1:
            raise ValueError(f"dilation {i} must be >= 1, got {d}")
    if pointwise is not None:
        if len(pointwise) != n:
            raise ValueError(f"{len(pointwise)} pointwise kernels for {n} candidates")
        if cig != 1:
            raise ValueError("factorized candidates need depthwise kernels [C, 1, s, s]")
        cout = pointwise[0].shape[0]
        for i, p in enumerate(pointwise):
            if p.dim() != 4 or tuple(p.shape[1:]) != (co, 1, 1) or p.shape[0] != cout:
                raise ValueError(f"pointwise {i} must be [{cout}, {co}, 1, 1], got {list(p.shape)}")
        if x is not None and (x.shape[1] != co or groups != co):
            raise ValueError(f"factorized candidates need groups == C_in == C_k ({co}), got groups={groups}")
    elif x is not None and x.shape[1] != cig * groups:
        raise ValueError(f"input has {x.shape[1]} channels, kernels expect {cig * groups} (groups={groups})")


def _acc_dtype(t: Tensor) -> torch.dtype:
    """fp32 for half types and fp32, fp64 stays fp64 (gradcheck)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def merge_kernels_reference(
    kernels: Sequence[Tensor],
    dilations: Sequence[int],
    weights: Tensor,
    *,
    pointwise: Sequence[Tensor] | None = None,
    normalize: bool = False,
    normalize_mask: Sequence[bool] | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """The merged kernel in fp32 (fp64 for fp64 inputs); differentiable by autograd.

    Without ``pointwise``: [C_k, C_in/groups, K, K].  With it: the dense [C_out, C_in, K, K].
    """
    dt = _acc_dtype(kernels[0])
    mask = _mask(len(kernels), normalize, normalize_mask)
    K = footprint([k.shape[-1] for k in kernels], dilations)
    w = weights.to(dt)
    merged = None
    for i, (k, d) in enumerate(zip(kernels, dilations)):
        k = k.to(dt)
        if mask[i]:
            k = standardize(k, eps)
        if pointwise is None:
            term = w[i] * embed(k, int(d), K)
        else:
            p = pointwise[i].to(dt)
            if mask[i]:
                p = standardize(p, eps)
            term = w[i] * p[:, :, 0, 0, None, None] * embed(k[:, 0], int(d), K)[None]
        merged = term if merged is None else merged + term
    return merged


def merged_conv_reference(
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
    """One convolution with the merged kernel, "same" padding K // 2 and the given stride."""
    W = merge_kernels_reference(kernels, dilations, weights, pointwise=pointwise, normalize=normalize,
                                normalize_mask=normalize_mask, eps=eps)
    g = 1 if pointwise is not None else groups
    return F.conv2d(x, W.to(x.dtype), stride=stride, padding=W.shape[-1] // 2, groups=g)


def merge_kernels_backward_reference(
    grad_merged: Tensor,
    kernels: Sequence[Tensor],
    dilations: Sequence[int],
    weights: Tensor,
    *,
    pointwise: Sequence[Tensor] | None = None,
    normalize: bool = False,
    normalize_mask: Sequence[bool] | None = None,
    eps: float = 1e-5,
) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """Explicit vector-Jacobian product of :func:`merge_kernels_reference`.

    Returns (grads of kernels, grads of pointwise kernels (empty without them), grad of weights),
    each in its input's dtype.  Written out by hand instead of calling autograd so that it can
    run inside the op's backward under torch.compile, and so the Triton backward kernels have a
    formula-by-formula twin to be tested against.
    """
    dt = grad_merged.dtype if grad_merged.dtype == torch.float64 else torch.float32
    gW = grad_merged.to(dt)
    mask = _mask(len(kernels), normalize, normalize_mask)
    w = weights.to(dt)
    gks: list[Tensor] = []
    gps: list[Tensor] = []
    gws: list[Tensor] = []
    for i, (k, d) in enumerate(zip(kernels, dilations)):
        kk = k.to(dt)
        z = standardize(kk, eps) if mask[i] else kk
        gE = extract(gW, k.shape[-1], int(d))
        if pointwise is None:
            gws.append((gE * z).sum())
            gz = w[i] * gE
            gk = standardize_backward(kk, gz, eps) if mask[i] else gz
        else:
            pp = pointwise[i].to(dt)
            P = (standardize(pp, eps) if mask[i] else pp)[:, :, 0, 0]  # [O, C]
            D = z[:, 0]  # [C, s, s]
            gws.append(torch.einsum("ocyx,oc,cyx->", gE, P, D))
            gP = (w[i] * torch.einsum("ocyx,cyx->oc", gE, D))[:, :, None, None]
            gD = (w[i] * torch.einsum("ocyx,oc->cyx", gE, P))[:, None]
            gp = standardize_backward(pp, gP, eps) if mask[i] else gP
            gk = standardize_backward(kk, gD, eps) if mask[i] else gD
            gps.append(gp.to(pointwise[i].dtype))
        gks.append(gk.to(k.dtype))
    return gks, gps, torch.stack(gws).to(weights.dtype)


def naive_mixed_conv(
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
    """The mixed op as a DARTS supernet computes it: sum_i w_i O_i(x), one convolution each.

    This is the definition the merged convolution must reproduce (exactly, up to rounding).
    """
    mask = _mask(len(kernels), normalize, normalize_mask)
    out = None
    for i, (k, d) in enumerate(zip(kernels, dilations)):
        d = int(d)
        kk = standardize(k, eps) if mask[i] else k
        pad = d * (k.shape[-1] - 1) // 2
        if pointwise is None:
            y = F.conv2d(x, kk, stride=stride, padding=pad, dilation=d, groups=groups)
        else:
            y = F.conv2d(x, kk, stride=stride, padding=pad, dilation=d, groups=x.shape[1])
            p = standardize(pointwise[i], eps) if mask[i] else pointwise[i]
            y = F.conv2d(y, p)
        y = weights[i].to(y.dtype) * y
        out = y if out is None else out + y
    return out
