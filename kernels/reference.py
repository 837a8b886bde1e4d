"""Torch reference of the merged (TopoNAS) convolution.

This module is the ground truth the Triton kernels are tested against and the implementation the
``nasir::merged_conv`` op runs off CUDA.  Everything is plain, differentiable PyTorch so that
``torch.autograd.gradcheck`` can compare it with the naive mixed op (a weighted sum of separate
convolutions) in float64.

Notation (DESIGN.md, "TopoNAS formulas"): candidate i has kernel k_i of odd size s_i and dilation
d_i; its footprint is d_i (s_i - 1) + 1 and the merged footprint is K = max_i of those.  E(k_i)
embeds k_i centred into K x K with taps every d_i.  The merged kernel is W = sum_i w_i E(N(k_i))
where N is kernel normalization (Eq. 28) or the identity.  Factorized candidates (depthwise ->
pointwise) merge into the dense W[o, c] = sum_i w_i E(N(PW_i[o, c] DW_i[c])).

Kernel normalization N (TopoNAS Eq. 28, "normalize the reparameterized kernels") acts on each
candidate's *reparameterized* kernel, the dense (or grouped) kernel the candidate is equal to: its
own kernel for a convolution, the product PW_i[o, c] DW_i[c] for a depthwise -> pointwise pair.
Each output filter of it is standardized over its input channels and taps, then multiplied by the
gain 1 / sqrt(fan_in) (fan_in = the entries of one filter), so that a normalized candidate passes
on the variance it receives, as a freshly initialized convolution does and as the fixed identity
and pooling kernels do; without the gain a 5x5 candidate would outweigh a 3x3 one 5:3 at equal
architecture weights. Standardizing the depthwise and pointwise factors one by one instead (what
nasir did first) forces every depthwise filter to sum to zero, i.e. to be a pure high-pass filter,
and every pointwise row to cancel the channels' common part: a DARTS supernet built that way barely
learns (issue 17), while the product's standardization removes one direction per output filter.
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


def single_tap(k: Tensor, first: int = 1) -> bool:
    """Whether each filter of ``k`` (its dimensions from ``first`` on) holds one number.

    Such a filter (a 1x1 depthwise kernel, a pointwise kernel over one channel) is left as it is by
    :func:`standardize`: standardizing one number gives 0 whatever it is, which would turn the
    candidate into a zero op, and subtracting its mean alone would too. Without a spread to divide
    by, only its scale could be normalized, to a sign with no gradient; keeping it learnable wins.
    """
    return all(n == 1 for n in k.shape[first:])


def standardize(k: Tensor, eps: float = 1e-5, first: int = 1) -> Tensor:
    """Per-output-filter weight standardization (k - mean) / (std + eps), std with unbiased=False.

    The statistics run over every dimension from ``first`` on (input channels and taps), which is
    what TopoNAS' kernel normalization (Eq. 28) and weight standardization do; ``first=2``
    standardizes a stack of same-shaped kernels at once. Single-number filters are returned
    unchanged (see :func:`single_tap`).
    """
    if single_tap(k, first):
        return k
    dims = tuple(range(first, k.dim()))
    mean = k.mean(dim=dims, keepdim=True)
    std = k.std(dim=dims, keepdim=True, unbiased=False)
    return (k - mean) / (std + eps)


def standardize_backward(k: Tensor, grad: Tensor, eps: float = 1e-5, first: int = 1) -> Tensor:
    """Gradient of :func:`standardize` w.r.t. ``k`` given the gradient ``grad`` of its output.

    With u = k - mean, sigma = sqrt(mean(u^2)) and r = 1 / (sigma + eps):
    dk = r (g - mean(g)) - r^2 mean(g u) / sigma * u.  Where sigma is 0 (a constant filter) the
    second term is 0 because u is, so it is dropped instead of producing 0/0 like autograd's
    std backward would.  Used by the reference backward of the op and mirrored by the Triton
    kernels. A single-number filter is not standardized, so its gradient passes through.
    """
    if single_tap(k, first):
        return grad
    dims = tuple(range(first, k.dim()))
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


def _same_shape_groups(tensors: Sequence[Tensor], mask: Sequence[bool]) -> list[list[int]]:
    """Indices of the masked tensors, grouped by shape (each group is standardized as one stack)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (t, m) in enumerate(zip(tensors, mask)):
        if m:
            groups.setdefault(tuple(t.shape), []).append(i)
    return list(groups.values())


def gain(k: Tensor, first: int = 1) -> float:
    """The gain 1 / sqrt(fan_in) that kernel normalization applies after standardizing (module
    docstring); 1 for single-number filters, which are not standardized."""
    fan_in = 1
    for n in k.shape[first:]:
        fan_in *= n
    return fan_in ** -0.5


def normalize_kernel(k: Tensor, eps: float = 1e-5, first: int = 1) -> Tensor:
    """N(k): per-output-filter standardization times :func:`gain` (the module docstring's N)."""
    return standardize(k, eps, first) * gain(k, first)


def _standardize_all(tensors: Sequence[Tensor], mask: Sequence[bool], eps: float) -> list[Tensor]:
    """N(t_i) where mask[i], t_i elsewhere: one stacked normalization per shape."""
    out = list(tensors)
    for group in _same_shape_groups(tensors, mask):
        for i, z in zip(group, normalize_kernel(torch.stack([tensors[i] for i in group]), eps, first=2).unbind(0)):
            out[i] = z
    return out


def _standardize_backward_all(tensors: Sequence[Tensor], grads: Sequence[Tensor], mask: Sequence[bool],
                              eps: float) -> list[Tensor]:
    """The gradients w.r.t. the raw t_i of :func:`_standardize_all` given those of its outputs."""
    out = list(grads)
    for group in _same_shape_groups(tensors, mask):
        stacked = torch.stack([tensors[i] for i in group])
        scaled = torch.stack([grads[i] for i in group]) * gain(stacked, first=2)
        for i, g in zip(group, standardize_backward(stacked, scaled, eps, first=2).unbind(0)):
            out[i] = g
    return out


def _products(kernels: Sequence[Tensor], pointwise: Sequence[Tensor]) -> list[Tensor]:
    """The reparameterized kernel PW_i[o, c] DW_i[c] ([C_out, C, s, s]) of each factorized candidate."""
    return [p[:, :, 0, 0, None, None] * k[None, :, 0] for k, p in zip(kernels, pointwise)]


def _stacked_factors(kernels: Sequence[Tensor], dilations: Sequence[int], pointwise: Sequence[Tensor] | None,
                     mask: Sequence[bool], eps: float, dt: torch.dtype, K: int
                     ) -> tuple[list[Tensor], Tensor, list[Tensor], Tensor | None]:
    """(raw kernels, E, raw pointwise kernels, P) in ``dt``: the candidates normalized where masked,
    embedded in K x K and stacked. Without pointwise, or with pointwise and some candidate normalized,
    E is [n, C_out, C_in/g, K, K] (the products PW_i DW_i for factorized candidates) and P None;
    with pointwise and no normalization E is the depthwise taps [n, C, K, K] and P the pointwise
    matrices [n, O, C], so that the dense product is never built."""
    raw = [k.to(dt) for k in kernels]
    if pointwise is None:
        z = _standardize_all(raw, mask, eps)
        return raw, torch.stack([embed(zi, int(d), K) for zi, d in zip(z, dilations)]), [], None
    raw_p = [p.to(dt) for p in pointwise]
    if any(mask):
        z = _standardize_all(_products(raw, raw_p), mask, eps)
        return raw, torch.stack([embed(zi, int(d), K) for zi, d in zip(z, dilations)]), raw_p, None
    P = torch.stack(raw_p)[:, :, :, 0, 0]
    E = torch.stack([embed(k[:, 0], int(d), K) for k, d in zip(raw, dilations)])
    return raw, E, raw_p, P


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


def normalized_kernel(k: Tensor, pointwise: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """N(k) as the merged convolution computes it (in fp32, fp64 for fp64), in ``k``'s dtype: the
    weight of the plain convolution a normalized merged convolution folds into at a fixed architecture.
    With ``pointwise`` ([C_out, C, 1, 1]; ``k`` the depthwise kernel [C, 1, s, s]) it is N of the
    reparameterized kernel, the dense product PW[o, c] DW[c] ([C_out, C, s, s])."""
    acc = k.to(_acc_dtype(k))
    if pointwise is not None:
        acc = pointwise.to(acc.dtype)[:, :, 0, 0, None, None] * acc[None, :, 0]
    return normalize_kernel(acc, eps).to(k.dtype)


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
    _, E, _, P = _stacked_factors(kernels, dilations, pointwise, mask, eps, dt, K)
    if P is None:
        return torch.einsum("n,nabyx->abyx", w, E)
    return torch.einsum("n,noc,ncyx->ocyx", w, P, E)


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
    n, K = len(kernels), gW.shape[-1]
    mask = _mask(n, normalize, normalize_mask)
    w = weights.to(dt)
    raw, E, raw_p, P = _stacked_factors(kernels, dilations, pointwise, mask, eps, dt, K)
    sizes = [k.shape[-1] for k in kernels]
    if P is None:
        gw = torch.einsum("abyx,nabyx->n", gW, E)
        gz = [w[i] * extract(gW, sizes[i], int(d)) for i, d in enumerate(dilations)]
        if pointwise is None:
            gks = _standardize_backward_all(raw, gz, mask, eps)
            return [g.to(k.dtype, copy=True) for g, k in zip(gks, kernels)], [], gw.to(weights.dtype)
        # normalized products PW_i DW_i: back through N, then through the product to both factors
        gprod = _standardize_backward_all(_products(raw, raw_p), gz, mask, eps)
        gks = [torch.einsum("octyx,oc->ctyx", g[:, :, None], p[:, :, 0, 0]) for g, p in zip(gprod, raw_p)]
        gps = [torch.einsum("ocyx,cyx->oc", g, k[:, 0])[:, :, None, None] for g, k in zip(gprod, raw)]
        return ([g.to(k.dtype, copy=True) for g, k in zip(gks, kernels)],
                [g.to(p.dtype, copy=True) for g, p in zip(gps, pointwise)], gw.to(weights.dtype))
    T = torch.einsum("ocyx,ncyx->noc", gW, E)  # d W / d (w_i P_i), summed over taps
    gw = (T * P).sum(dim=(1, 2))
    gP = w[:, None, None] * T
    gDemb = w[:, None, None, None] * torch.einsum("ocyx,noc->ncyx", gW, P)  # [n, C, K, K]
    gks = [extract(gDemb[i], sizes[i], int(d))[:, None] for i, d in enumerate(dilations)]
    # copies: the op's outputs may not alias one another (slices of one stacked gradient would)
    return ([g.to(k.dtype, copy=True) for g, k in zip(gks, kernels)],
            [g[:, :, None, None].to(p.dtype, copy=True) for g, p in zip(gP.unbind(0), pointwise)], gw.to(weights.dtype))


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
        pad = d * (k.shape[-1] - 1) // 2
        if pointwise is None:
            kk = normalize_kernel(k, eps) if mask[i] else k
            y = F.conv2d(x, kk, stride=stride, padding=pad, dilation=d, groups=groups)
        elif mask[i]:  # the normalized product is a dense kernel
            y = F.conv2d(x, normalize_kernel(_products([k], [pointwise[i]])[0], eps), stride=stride, padding=pad,
                         dilation=d)
        else:
            y = F.conv2d(x, k, stride=stride, padding=pad, dilation=d, groups=x.shape[1])
            y = F.conv2d(y, pointwise[i])
        y = weights[i].to(y.dtype) * y
        out = y if out is None else out + y
    return out
