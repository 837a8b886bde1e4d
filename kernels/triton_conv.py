"""Launchers of the Triton merged-convolution kernels.

Importing this module does not import Triton; the kernels module is loaded on first use, so
``nasir.kernels`` works on machines without Triton or a GPU.  Under ``TRITON_INTERPRET=1`` the
same launchers run the kernels in Triton's interpreter on CPU tensors (how CI tests them).

Two paths:
- depthwise (groups == C_in == C_k, no pointwise): Triton kernels for forward, input gradient and
  kernel gradient, in one of two layouts (:data:`DW_LAYOUTS`, chosen with :func:`dw_layout`;
  by default nhwc for channels-last inputs, direct otherwise):
  "direct" works on NCHW planes and rebuilds the merged (normalized) kernel in each program;
  "nhwc" builds the merged kernel once (the weight-prep kernel), works on channels-last tensors
  (copying NCHW inputs, returning results in the input's layout) with vector loads over channels.
- everything else (dense, grouped, factorized depthwise->pointwise): a Triton weight-prep kernel
  builds the merged kernel, cuDNN does the convolution (forward and both gradients), and Triton
  kernels push the merged kernel's gradient back to the candidates (:func:`merge_backward`, the
  twin of the explicit torch formula in :mod:`nasir.kernels.reference`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nasir.kernels import reference as ref

MAX_CAND = 8
_MODS: dict[bool, object] = {}


def interpreting() -> bool:
    """True when Triton would interpret instead of compile (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def available() -> bool:
    """Whether Triton can be imported at all."""
    return importlib.util.find_spec("triton") is not None


def _kmod():
    """The kernels module, compiled or interpreted according to TRITON_INTERPRET *now*.

    ``triton.jit`` fixes the choice when it decorates, so the interpreted kernels are a second
    copy of the same file loaded under another module name.
    """
    interp = interpreting()
    mod = _MODS.get(interp)
    if mod is None:
        if not interp:
            from nasir.kernels import _triton_kernels as mod
        else:
            path = os.path.join(os.path.dirname(__file__), "_triton_kernels.py")
            name = "nasir.kernels._triton_kernels_interpreted"
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        _MODS[interp] = mod
    return mod


def _eager(like: Tensor) -> bool:
    """A plain tensor with no dispatch mode active: not being traced by torch.compile or export."""
    return type(like) is torch.Tensor and torch._C._len_torch_dispatch_stack() == 0


def _launch(kernel, like: Tensor):
    """The kernel, launchable.  While tracing (torch.compile/export: fake or functional tensors, or
    a dispatch mode active) it goes through ``wrap_triton`` so the launch becomes a graph node; on
    plain tensors in eager mode it is launched directly, since the traced path's dispatch costs
    about half a millisecond of host time per launch (torch 2.11 on an H100), more than the
    kernels themselves.  The interpreter needs the raw kernel.
    """
    if interpreting() or _eager(like):
        return kernel
    return torch.library.wrap_triton(kernel)


_TAP_TENSORS: dict[tuple, Tensor] = {}


def _tap_tensor(taps: Sequence[int], like: Tensor) -> Tensor:
    """The live-tap list on the device.  Eager calls reuse one copy per device and list: building it
    from a Python list is a host-to-device copy that waits for the GPU to drain, once per step."""
    if not _eager(like):
        return torch.tensor(list(taps), device=like.device, dtype=torch.int32)
    key = (like.device, tuple(taps))
    t = _TAP_TENSORS.get(key)
    if t is None:
        t = _TAP_TENSORS[key] = torch.tensor(list(taps), device=like.device, dtype=torch.int32)
    return t


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class Plan:
    """Compile-time description of a candidate set (sizes, dilations, offsets, tap masks)."""

    K: int
    sizes: tuple[int, ...]
    dilations: tuple[int, ...]
    norms: tuple[bool, ...]

    @property
    def n(self) -> int:
        return len(self.sizes)

    def offsets(self) -> tuple[int, ...]:
        return tuple((self.K - (d * (s - 1) + 1)) // 2 for s, d in zip(self.sizes, self.dilations))

    def masks(self) -> tuple[int, ...]:
        out = []
        for s, d, o in zip(self.sizes, self.dilations, self.offsets()):
            m = 0
            for iy in range(s):
                for ix in range(s):
                    m |= 1 << ((o + iy * d) * self.K + o + ix * d)
            out.append(m)
        return tuple(out)

    def live(self) -> int:
        m = 0
        for x in self.masks():
            m |= x
        return m

    def live_taps(self) -> list[int]:
        live = self.live()
        return [t for t in range(self.K * self.K) if (live >> t) & 1]

    def slot_kwargs(self, with_masks: bool = True) -> dict:
        """S*, D*, O*, (M*), N* constexprs for all MAX_CAND slots (unused slots: mask 0)."""
        kw = {}
        offs, masks = self.offsets(), self.masks()
        for j in range(MAX_CAND):
            used = j < self.n
            kw[f"S{j}"] = self.sizes[j] if used else 1
            kw[f"D{j}"] = self.dilations[j] if used else 1
            kw[f"O{j}"] = offs[j] if used else 0
            if with_masks:
                kw[f"M{j}"] = masks[j] if used else 0
            kw[f"N{j}"] = bool(self.norms[j]) if used else False
        return kw


def make_plan(kernels: Sequence[Tensor], dilations: Sequence[int], normalize: bool,
              normalize_mask: Sequence[bool] | None) -> Plan:
    sizes = tuple(int(k.shape[-1]) for k in kernels)
    dil = tuple(int(d) for d in dilations)
    return Plan(ref.footprint(sizes, dil), sizes, dil, tuple(ref._mask(len(sizes), normalize, normalize_mask)))


def _slots(tensors: Sequence[Tensor]) -> list[Tensor]:
    ts = list(tensors)
    return ts + [ts[0]] * (MAX_CAND - len(ts))


def is_depthwise(x: Tensor, kernels: Sequence[Tensor], groups: int, pointwise) -> bool:
    c = x.shape[1]
    return pointwise is None and groups == c and kernels[0].shape[0] == c and kernels[0].shape[1] == 1


def supported(x: Tensor, kernels: Sequence[Tensor], dilations: Sequence[int], groups: int, pointwise) -> bool:
    """Shapes the Triton path handles; the op falls back to the reference otherwise.

    More than MAX_CAND candidates, or a dense filter too large for the one-tile prep kernel
    (C_in/groups * K*K over 64K elements), go to the reference.
    """
    if len(kernels) > MAX_CAND or x.dim() != 4:
        return False
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    if is_depthwise(x, kernels, groups, pointwise):
        return True
    cig = pointwise[0].shape[1] if pointwise is not None else kernels[0].shape[1]
    K = ref.footprint([int(k.shape[-1]) for k in kernels], [int(d) for d in dilations])
    return _pow2(cig) * _pow2(K * K) <= 65536


def _out_hw(h: int, w: int, K: int, stride: int) -> tuple[int, int]:
    p = K // 2
    return (h + 2 * p - K) // stride + 1, (w + 2 * p - K) // stride + 1


def _tile(h: int, w: int, bh: int | None, bw: int | None) -> tuple[int, int]:
    """Spatial tile of the direct depthwise kernels: 512 outputs, up to 32 wide.

    Measured on an H100 (DARTS 9x9 merge, 256x64x32x32 bf16, 4 warps): 16x32 tiles 0.38 ms,
    32x32 0.67 ms (bench/merged_conv.py --tune, 2026-11-22).
    """
    bw = bw or min(_pow2(w), 32)
    bh = bh or min(_pow2(h), max(1, 512 // bw))
    return bh, bw


# ---------------------------------------------------------------- depthwise path

DW_LAYOUTS = ("auto", "direct", "nhwc")
#: "auto": nhwc for channels-last inputs (no layout copies; 0.96 ms fwd+bwd on the DARTS shape, bf16,
#: H100), direct for NCHW ones, where the nhwc path pays two layout copies each way and measured
#: slower (docs/benchmarks.md, 2026-11-26).
_DW_LAYOUT = "auto"


@contextlib.contextmanager
def dw_layout(name: str) -> Iterator[None]:
    """Run the depthwise path in layout ``name`` ("auto", "direct" or "nhwc") inside the block."""
    global _DW_LAYOUT
    if name not in DW_LAYOUTS:
        raise ValueError(f"unknown depthwise layout {name!r}; known: {', '.join(DW_LAYOUTS)}")
    old, _DW_LAYOUT = _DW_LAYOUT, name
    try:
        yield
    finally:
        _DW_LAYOUT = old


def current_dw_layout() -> str:
    return _DW_LAYOUT


def _use_nhwc(x: Tensor) -> bool:
    return _DW_LAYOUT == "nhwc" or (_DW_LAYOUT == "auto" and is_channels_last(x))


def is_channels_last(t: Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _as_channels_last(t: Tensor) -> Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _like_input(t: Tensor, x: Tensor) -> Tensor:
    """``t`` (channels-last) in the memory format of ``x``, as PyTorch's own convolutions return."""
    return t if is_channels_last(x) else t.contiguous()


def _dwn_conv(src: Tensor, dst: Tensor, wm: Tensor, plan: Plan, stride: int, transpose: bool) -> None:
    """Launch the strided depthwise kernel: dst = conv(src) (or its transpose) with merged kernel wm."""
    km = _kmod()
    C = dst.shape[1]
    bc = min(_pow2(C), 64)
    npix = dst.shape[2] * dst.shape[3]

    def grid(meta):
        return (dst.shape[0] * triton_cdiv(npix, meta["BP"]), triton_cdiv(C, bc))

    _launch(km.dwn_conv_kernel, src)[grid](
        src, dst, wm, C, src.shape[2], src.shape[3], dst.shape[2], dst.shape[3], *src.stride(), *dst.stride(),
        STRIDE=stride, PAD=plan.K // 2, K=plan.K, LIVE=plan.live(), BC=bc, EVEN_C=C % bc == 0, TRANSPOSE=transpose)


def _merged_taps_by_channel(kernels, dilations, weights, normalize: bool, normalize_mask, eps: float) -> Tensor:
    """The merged depthwise kernel (weight-prep kernel) as fp32 [K*K, C], channels contiguous per tap."""
    wm = merge(kernels, dilations, weights, None, normalize, normalize_mask, eps)
    return wm.view(wm.shape[0], -1).t().contiguous()


def dw_forward_nhwc(x: Tensor, kernels: Sequence[Tensor], dilations: Sequence[int], weights: Tensor, stride: int,
                    normalize: bool, normalize_mask, eps: float) -> Tensor:
    """Depthwise merged convolution in channels-last: weight prep, then one strided-kernel launch."""
    plan = make_plan(kernels, dilations, normalize, normalize_mask)
    wm = _merged_taps_by_channel(kernels, dilations, weights, normalize, normalize_mask, eps)
    N, C, H, W = x.shape
    HO, WO = _out_hw(H, W, plan.K, stride)
    src = _as_channels_last(x)
    y = torch.empty((N, C, HO, WO), device=x.device, dtype=x.dtype, memory_format=torch.channels_last)
    _dwn_conv(src, y, wm, plan, stride, transpose=False)
    return _like_input(y, x)


def dw_backward_nhwc(grad: Tensor, x: Tensor, kernels: Sequence[Tensor], dilations: Sequence[int], weights: Tensor,
                     stride: int, normalize: bool, normalize_mask, eps: float, *, nsplit: int | None = None,
                     num_warps: int = 4):
    """(grad_x, [grad_k_i], grad_weights) in channels-last: input gradient, kernel gradient, chain rule."""
    km = _kmod()
    plan = make_plan(kernels, dilations, normalize, normalize_mask)
    wm = _merged_taps_by_channel(kernels, dilations, weights, normalize, normalize_mask, eps)
    N, C, H, W = x.shape
    HO, WO = grad.shape[-2:]
    xs, gs = _as_channels_last(x), _as_channels_last(grad)
    gx = torch.empty(x.shape, device=x.device, dtype=x.dtype, memory_format=torch.channels_last)
    _dwn_conv(gs, gx, wm, plan, stride, transpose=True)
    taps = plan.live_taps()
    bc = min(_pow2(C), 64)
    cblocks = triton_cdiv(C, bc)
    total = N * HO * WO
    if nsplit is None:
        nsplit = max(1, min(total, triton_cdiv(4 * _sm_count(x.device), cblocks)))
    per = triton_cdiv(total, nsplit)
    nsplit = triton_cdiv(total, per)
    part = torch.empty((nsplit, C, plan.K * plan.K), device=x.device, dtype=torch.float32)
    tap_t = _tap_tensor(taps, x)
    _launch(km.dwn_wgrad_kernel, xs)[(cblocks, nsplit)](
        xs, gs, part, tap_t, C, H, W, HO, WO, total, per, len(taps), *xs.stride(), *gs.stride(),
        STRIDE=stride, PAD=plan.K // 2, K=plan.K, TB=_pow2(len(taps)), BC=bc, EVEN_C=C % bc == 0,
        num_warps=num_warps)
    gks, gw = _dw_chain_rule(part.sum(0, keepdim=True), kernels, weights, plan, eps, num_warps)
    return _like_input(gx, x), gks, gw


def _dw_chain_rule(part: Tensor, kernels: Sequence[Tensor], weights: Tensor, plan: Plan, eps: float,
                   num_warps: int) -> tuple[list[Tensor], Tensor]:
    """Merged-kernel gradient partials [splits, C, K*K] -> gradients of every candidate kernel and the weights."""
    km = _kmod()
    ks = [k.contiguous() for k in kernels]
    C, nsplit = part.shape[1], part.shape[0]
    gks = [torch.empty_like(k) for k in ks]
    gwp = torch.empty((C, MAX_CAND), device=part.device, dtype=torch.float32)
    _launch(km.dw_bwd_prep_kernel, part)[(C,)](
        part, weights.contiguous(), gwp, *_slots(ks), *_slots(gks), C, nsplit, eps,
        K=plan.K, NC=plan.n, SSB=_pow2(max(plan.sizes) ** 2), NSB=_pow2(nsplit), MAXC=MAX_CAND,
        **plan.slot_kwargs(with_masks=False), num_warps=num_warps)
    return gks, gwp[:, : plan.n].sum(0).to(weights.dtype)


def dw_forward(x: Tensor, kernels: Sequence[Tensor], dilations: Sequence[int], weights: Tensor, stride: int,
               normalize: bool, normalize_mask, eps: float, *, num_warps: int = 4, block: tuple | None = None) -> Tensor:
    """Depthwise merged convolution: one Triton launch, merged weights rebuilt per program."""
    if _use_nhwc(x) and block is None:
        return dw_forward_nhwc(x, kernels, dilations, weights, stride, normalize, normalize_mask, eps)
    km = _kmod()
    plan = make_plan(kernels, dilations, normalize, normalize_mask)
    N, C, H, W = x.shape
    HO, WO = _out_hw(H, W, plan.K, stride)
    x = x.contiguous()
    y = torch.empty((N, C, HO, WO), device=x.device, dtype=x.dtype)
    bh, bw = _tile(HO, WO, *(block or (None, None)))
    grid = (N * C, triton_cdiv(HO, bh) * triton_cdiv(WO, bw))
    ks = [k.contiguous() for k in kernels]
    _launch(km.dw_conv_kernel, x)[grid](
        x, y, weights.contiguous(), *_slots(ks), C, H, W, HO, WO, eps,
        STRIDE=stride, PAD=plan.K // 2, K=plan.K, LIVE=plan.live(), SSB=_pow2(max(plan.sizes) ** 2),
        **plan.slot_kwargs(), BH=bh, BW=bw, TRANSPOSE=False, num_warps=num_warps)
    return y


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def dw_backward(grad: Tensor, x: Tensor, kernels: Sequence[Tensor], dilations: Sequence[int], weights: Tensor,
                stride: int, normalize: bool, normalize_mask, eps: float, *, num_warps: int = 4,
                block: tuple | None = None, nsplit: int | None = None, bp: int | None = None):
    """(grad_x, [grad_k_i], grad_weights) of the depthwise merged convolution; three launches."""
    if _use_nhwc(x) and block is None and bp is None:
        return dw_backward_nhwc(grad, x, kernels, dilations, weights, stride, normalize, normalize_mask, eps,
                                nsplit=nsplit, num_warps=num_warps)
    km = _kmod()
    plan = make_plan(kernels, dilations, normalize, normalize_mask)
    N, C, H, W = x.shape
    HO, WO = grad.shape[-2:]
    x = x.contiguous()
    grad = grad.contiguous()
    ks = [k.contiguous() for k in kernels]
    w = weights.contiguous()
    # input gradient: transposed direct convolution
    gx = torch.empty_like(x)
    bh, bw = _tile(H, W, *(block or (None, None)))
    _launch(km.dw_conv_kernel, x)[(N * C, triton_cdiv(H, bh) * triton_cdiv(W, bw))](
        grad, gx, w, *_slots(ks), C, HO, WO, H, W, eps,
        STRIDE=stride, PAD=plan.K // 2, K=plan.K, LIVE=plan.live(), SSB=_pow2(max(plan.sizes) ** 2),
        **plan.slot_kwargs(), BH=bh, BW=bw, TRANSPOSE=True, num_warps=num_warps)
    # merged-kernel gradient, split over images, live taps only
    taps = plan.live_taps()
    if nsplit is None:
        # ~8 programs per SM; measured 1.48 ms (16 splits, 32-pixel blocks) vs 1.99 ms (9, 64) on the DARTS shape
        nsplit = max(1, min(N, triton_cdiv(8 * _sm_count(x.device), C)))
    part = torch.empty((nsplit, C, plan.K * plan.K), device=x.device, dtype=torch.float32)
    tap_t = _tap_tensor(taps, x)
    tb = _pow2(len(taps))
    bp = bp or max(16, min(_pow2(HO * WO), 2048 // tb))
    _launch(km.dw_wgrad_kernel, x)[(C, nsplit)](
        x, grad, part, tap_t, N, C, H, W, HO, WO, nsplit, len(taps),
        STRIDE=stride, PAD=plan.K // 2, K=plan.K, TB=tb, BP=bp, num_warps=num_warps)
    # chain rule through merge and standardization, per channel
    gks, gw = _dw_chain_rule(part, ks, w, plan, eps, num_warps)
    return gx, gks, gw


def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


# ---------------------------------------------------------------- dense / grouped / factorized path


def merge(kernels: Sequence[Tensor], dilations: Sequence[int], weights: Tensor, pointwise, normalize: bool,
          normalize_mask, eps: float, *, dtype: torch.dtype | None = None, num_warps: int = 4) -> Tensor:
    """Triton weight prep: the merged kernel (what :func:`reference.merge_kernels_reference` gives)."""
    km = _kmod()
    plan = make_plan(kernels, dilations, normalize, normalize_mask)
    ks = [k.contiguous() for k in kernels]
    if pointwise is not None:
        pws = [p.contiguous() for p in pointwise]
        co, cig = pws[0].shape[0], pws[0].shape[1]
    else:
        pws = ks
        co, cig = ks[0].shape[0], ks[0].shape[1]
    out = torch.empty((co, cig, plan.K, plan.K), device=ks[0].device, dtype=dtype or torch.float32)
    kw = plan.slot_kwargs(with_masks=False)
    _launch(km.prep_kernel, out)[(co,)](
        out, weights.contiguous(), *_slots(ks), *_slots(pws), cig, eps,
        K=plan.K, NC=plan.n, PW=pointwise is not None, CB=_pow2(cig), KKB=_pow2(plan.K * plan.K), **kw,
        num_warps=num_warps)
    return out


def merge_backward(grad_merged: Tensor, kernels, dilations, weights, pointwise, normalize: bool, normalize_mask,
                   eps: float, *, num_warps: int = 4) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """Triton twin of :func:`reference.merge_kernels_backward_reference`: (grads of kernels, grads of
    pointwise kernels (empty without), grad of weights) from the merged kernel's gradient.

    One launch over output filters (dense/grouped kernel gradients, or the pointwise ones), and for
    factorized candidates one over input channels (the depthwise gradients, a sum over filters).
    Normalized factorized candidates take the reference VJP: normalizing the product PW DW needs
    each filter's statistics in both launches (the supernet lowering builds factorized kernels in
    PyTorch, ``nasir.merged_runtime``, so only direct calls of the op come here).
    """
    plan = make_plan(kernels, dilations, normalize, normalize_mask)
    if pointwise is not None and any(plan.norms):
        return ref.merge_kernels_backward_reference(grad_merged, kernels, dilations, weights, pointwise=pointwise,
                                                    normalize=normalize, normalize_mask=normalize_mask, eps=eps)
    km = _kmod()
    ks = [k.contiguous() for k in kernels]
    gW = grad_merged.contiguous().float()
    gks = [torch.empty_like(k) for k in ks]
    if pointwise is not None:
        pws = [p.contiguous() for p in pointwise]
        co, cig = pws[0].shape[0], pws[0].shape[1]
        gps = [torch.empty_like(p) for p in pws]
    else:
        pws, gps = ks, []
        co, cig = ks[0].shape[0], ks[0].shape[1]
    w = weights.contiguous()
    gwp = torch.empty((co, MAX_CAND), device=gW.device, dtype=torch.float32)
    kw = plan.slot_kwargs(with_masks=False)
    _launch(km.merge_bwd_rows_kernel, gW)[(co,)](
        gW, w, gwp, *_slots(ks), *_slots(pws), *_slots(gks), *_slots(gps or gks), cig, eps,
        K=plan.K, NC=plan.n, PW=pointwise is not None, CB=_pow2(cig), KKB=_pow2(plan.K * plan.K), MAXC=MAX_CAND,
        **kw, num_warps=num_warps)
    if pointwise is not None:
        cols = {k: v for k, v in kw.items() if not k.startswith("N")}  # not normalized (above): no flags
        _launch(km.merge_bwd_cols_kernel, gW)[(cig,)](
            gW, w, *_slots(pws), *_slots(gks), co, cig,
            K=plan.K, NC=plan.n, SSB=_pow2(max(plan.sizes) ** 2), OB=max(1, min(_pow2(co), 4096 // _pow2(cig))),
            **cols, num_warps=num_warps)
    return gks, gps, gwp[:, : plan.n].sum(0).to(weights.dtype)


def dense_forward(x: Tensor, kernels, dilations, weights, stride: int, groups: int, pointwise, normalize: bool,
                  normalize_mask, eps: float) -> Tensor:
    """Triton weight prep + cuDNN convolution."""
    W = merge(kernels, dilations, weights, pointwise, normalize, normalize_mask, eps, dtype=x.dtype)
    g = 1 if pointwise is not None else groups
    return torch.nn.functional.conv2d(x, W, stride=stride, padding=W.shape[-1] // 2, groups=g)


def igemm_conv(x: Tensor, W: Tensor, stride: int) -> Tensor:
    """Dense convolution (groups 1, padding K // 2) by the Triton implicit-GEMM kernel, forward only.

    Reads x channels-last (copying an NCHW input), returns y in x's memory format.  Kept beside
    cuDNN for the measured choice of bench/merged_conv.py --igemm; the op's dense path uses cuDNN.
    """
    km = _kmod()
    N, C, H, Wd = x.shape
    CO, K = W.shape[0], W.shape[-1]
    HO, WO = _out_hw(H, Wd, K, stride)
    xs = _as_channels_last(x)
    wt = W.permute(2, 3, 1, 0).reshape(K * K, C, CO).to(x.dtype).contiguous()
    y = torch.empty((N, CO, HO, WO), device=x.device, dtype=x.dtype, memory_format=torch.channels_last)
    npix = N * HO * WO

    def grid(meta):
        return (triton_cdiv(npix, meta["BM"]), triton_cdiv(CO, meta["BN"]))

    _launch(km.igemm_conv_kernel, xs)[grid](
        xs, wt, y, npix, C, H, Wd, HO, WO, CO, *xs.stride(), *y.stride(), STRIDE=stride, PAD=K // 2, K=K)
    return _like_input(y, x)


def dense_backward(grad: Tensor, x: Tensor, kernels, dilations, weights, stride: int, groups: int, pointwise,
                   normalize: bool, normalize_mask, eps: float):
    """cuDNN gradients of the single merged convolution, then the Triton merge backward."""
    W = merge(kernels, dilations, weights, pointwise, normalize, normalize_mask, eps, dtype=x.dtype)
    g = 1 if pointwise is not None else groups
    p = W.shape[-1] // 2
    gx, gW, _ = torch.ops.aten.convolution_backward(
        grad, x, W, None, [stride, stride], [p, p], [1, 1], False, [0, 0], g, [True, True, False])
    gks, gps, gw = merge_backward(gW, kernels, dilations, weights, pointwise, normalize, normalize_mask, eps)
    return gx, gks, gps, gw
