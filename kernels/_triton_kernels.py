"""Triton kernels of the merged convolution (imported lazily by :mod:`nasir.kernels.triton_conv`).

Candidates are passed in up to ``MAX_CAND`` fixed slots: one pointer per candidate kernel (``k0`` ..
``k7``) and, per slot, compile-time constants ``S`` (size), ``D`` (dilation), ``O`` (offset of its
first tap inside the merged K x K footprint), ``M`` (bit mask over the K*K taps it covers: bit
``ky*K+kx``) and ``N`` (standardize it or not).  Unused slots have ``M = 0`` and point at slot 0.
Fixed slots keep each configuration one compiled kernel without a device-side table, and let the
depthwise kernels unroll exactly the taps some candidate covers (41 of the 81 taps of the DARTS
9x9 merge) with each merged weight rebuilt from the candidates in registers.

Kept in its own module because ``triton.jit`` decides between compiling and interpreting when it
decorates; :mod:`triton_conv` loads a second copy of this file for ``TRITON_INTERPRET=1``.
"""

import os

import triton
import triton.language as tl

MAX_CAND = 8

# Tile and warp choices of the strided depthwise kernel, tuned per shape on the GPU; the
# interpreter (CI, CPU) has nothing to time and takes the first.
_DWN_CONFIGS = [triton.Config({"BP": bp}, num_warps=nw) for bp in (16, 32, 64) for nw in (2, 4, 8)]
if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
    _DWN_CONFIGS = _DWN_CONFIGS[1:2]


@triton.jit
def _dw_coef(kp, wp, c, I: tl.constexpr, S: tl.constexpr, NORM: tl.constexpr, eps, SSB: tl.constexpr):
    """Scalars (a, b) with w_i * N(k_i)[c, t] = a * k_i[c, t] + b, N the per-channel standardization
    times the gain 1 / S (``reference.normalize_kernel``; none for a single tap, S = 1: see
    ``reference.single_tap``)."""
    w = tl.load(wp + I).to(tl.float32)
    a = w
    b = w * 0.0
    if NORM:
        if S > 1:
            offs = tl.arange(0, SSB)
            m = offs < S * S
            k = tl.load(kp + c * (S * S) + offs, mask=m, other=0.0).to(tl.float32)
            mean = tl.sum(k, axis=0) / (S * S)
            u = tl.where(m, k - mean, 0.0)
            std = tl.sqrt(tl.sum(u * u, axis=0) / (S * S))
            a = w / ((std + eps) * S)  # times the gain 1 / sqrt(fan_in) = 1 / S
            b = -a * mean
    return a, b


@triton.jit
def _dw_tap(wt, kp, c, a, b, KY: tl.constexpr, KX: tl.constexpr, K: tl.constexpr, S: tl.constexpr, D: tl.constexpr,
            O: tl.constexpr, M: tl.constexpr):
    """Add candidate's contribution to the merged weight at tap (KY, KX) if the candidate covers it."""
    if (M >> (KY * K + KX)) & 1:
        wt = wt + tl.load(kp + c * (S * S) + ((KY - O) // D) * S + (KX - O) // D).to(tl.float32) * a + b
    return wt


@triton.jit
def _tap_source(oy, ox, ky, kx, H_src, W_src, STRIDE: tl.constexpr, PAD: tl.constexpr, TRANSPOSE: tl.constexpr):
    """Where tap (ky, kx) of destination pixel (oy, ox) reads its source, and whether it exists.

    Forward: the source pixel oy * STRIDE + ky - PAD.  Transposed (the input gradient): the output
    pixel whose tap (ky, kx) read this input pixel, if the stride lands on one.
    """
    if TRANSPOSE:
        ty = oy + (PAD - ky)
        tx = ox + (PAD - kx)
        if STRIDE == 1:
            iy = ty
            ix = tx
            m = (ty >= 0) & (ty < H_src) & (tx >= 0) & (tx < W_src)
        else:
            iy = ty // STRIDE
            ix = tx // STRIDE
            my = (ty >= 0) & (ty % STRIDE == 0) & (iy < H_src)
            mx = (tx >= 0) & (tx % STRIDE == 0) & (ix < W_src)
            m = my & mx
    else:
        iy = oy * STRIDE + (ky - PAD)
        ix = ox * STRIDE + (kx - PAD)
        m = (iy >= 0) & (iy < H_src) & (ix >= 0) & (ix < W_src)
    return iy, ix, m


@triton.jit
def dw_conv_kernel(
    src, dst, wp,
    k0, k1, k2, k3, k4, k5, k6, k7,
    C, H_src, W_src, H_dst, W_dst, eps,
    STRIDE: tl.constexpr, PAD: tl.constexpr, K: tl.constexpr, LIVE: tl.constexpr, SSB: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
    S4: tl.constexpr, S5: tl.constexpr, S6: tl.constexpr, S7: tl.constexpr,
    D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr,
    D4: tl.constexpr, D5: tl.constexpr, D6: tl.constexpr, D7: tl.constexpr,
    O0: tl.constexpr, O1: tl.constexpr, O2: tl.constexpr, O3: tl.constexpr,
    O4: tl.constexpr, O5: tl.constexpr, O6: tl.constexpr, O7: tl.constexpr,
    M0: tl.constexpr, M1: tl.constexpr, M2: tl.constexpr, M3: tl.constexpr,
    M4: tl.constexpr, M5: tl.constexpr, M6: tl.constexpr, M7: tl.constexpr,
    N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,
    N4: tl.constexpr, N5: tl.constexpr, N6: tl.constexpr, N7: tl.constexpr,
    BH: tl.constexpr, BW: tl.constexpr, TRANSPOSE: tl.constexpr,
):
    """Direct depthwise convolution with the merged kernel built in the prologue.

    Forward (TRANSPOSE=0): dst[n, c] = conv(src[n, c], W_c, stride, pad).  Input gradient
    (TRANSPOSE=1): dst = grad_input from src = grad_output, i.e. the transposed convolution.
    Grid: (N*C, spatial tiles of dst).  Accumulates in fp32 whatever the storage dtype.
    """
    pid = tl.program_id(0)
    pt = tl.program_id(1)
    c = pid % C
    a0, b0 = _dw_coef(k0, wp, c, 0, S0, N0, eps, SSB)
    a1, b1 = a0, b0
    a2, b2 = a0, b0
    a3, b3 = a0, b0
    a4, b4 = a0, b0
    a5, b5 = a0, b0
    a6, b6 = a0, b0
    a7, b7 = a0, b0
    if M1 != 0:
        a1, b1 = _dw_coef(k1, wp, c, 1, S1, N1, eps, SSB)
    if M2 != 0:
        a2, b2 = _dw_coef(k2, wp, c, 2, S2, N2, eps, SSB)
    if M3 != 0:
        a3, b3 = _dw_coef(k3, wp, c, 3, S3, N3, eps, SSB)
    if M4 != 0:
        a4, b4 = _dw_coef(k4, wp, c, 4, S4, N4, eps, SSB)
    if M5 != 0:
        a5, b5 = _dw_coef(k5, wp, c, 5, S5, N5, eps, SSB)
    if M6 != 0:
        a6, b6 = _dw_coef(k6, wp, c, 6, S6, N6, eps, SSB)
    if M7 != 0:
        a7, b7 = _dw_coef(k7, wp, c, 7, S7, N7, eps, SSB)

    n_tw = tl.cdiv(W_dst, BW)
    r = (pt // n_tw) * BH + tl.arange(0, BH)[:, None]
    q = (pt % n_tw) * BW + tl.arange(0, BW)[None, :]
    sbase = src + pid.to(tl.int64) * H_src * W_src
    acc = tl.zeros([BH, BW], dtype=tl.float32)
    for ky in tl.static_range(K):
        for kx in tl.static_range(K):
            if (LIVE >> (ky * K + kx)) & 1:
                wt = a0 * 0.0
                wt = _dw_tap(wt, k0, c, a0, b0, ky, kx, K, S0, D0, O0, M0)
                wt = _dw_tap(wt, k1, c, a1, b1, ky, kx, K, S1, D1, O1, M1)
                wt = _dw_tap(wt, k2, c, a2, b2, ky, kx, K, S2, D2, O2, M2)
                wt = _dw_tap(wt, k3, c, a3, b3, ky, kx, K, S3, D3, O3, M3)
                wt = _dw_tap(wt, k4, c, a4, b4, ky, kx, K, S4, D4, O4, M4)
                wt = _dw_tap(wt, k5, c, a5, b5, ky, kx, K, S5, D5, O5, M5)
                wt = _dw_tap(wt, k6, c, a6, b6, ky, kx, K, S6, D6, O6, M6)
                wt = _dw_tap(wt, k7, c, a7, b7, ky, kx, K, S7, D7, O7, M7)
                iy, ix, m = _tap_source(r, q, ky, kx, H_src, W_src, STRIDE, PAD, TRANSPOSE)
                v = tl.load(sbase + iy * W_src + ix, mask=m, other=0.0)
                acc += v.to(tl.float32) * wt
    dbase = dst + pid.to(tl.int64) * H_dst * W_dst
    tl.store(dbase + r * W_dst + q, acc.to(dst.dtype.element_ty), mask=(r < H_dst) & (q < W_dst))


@triton.jit
def dw_wgrad_kernel(
    x, gy, part, taps,
    N, C, H, W, HO, WO, NSPLIT, NT,
    STRIDE: tl.constexpr, PAD: tl.constexpr, K: tl.constexpr, TB: tl.constexpr, BP: tl.constexpr,
):
    """Partial gradient of the merged depthwise kernel: part[split, c, t] = sum over the split's
    images and all pixels of grad_out * shifted input, for the NT live taps listed in ``taps``
    (tap index ky*K+kx).  The [TB, BP] accumulator keeps every live tap's products in registers
    across images so the cross-thread reduction happens once per program, not once per tap.
    """
    c = tl.program_id(0)
    sp = tl.program_id(1)
    ti = tl.arange(0, TB)
    tm = ti < NT
    tap = tl.load(taps + ti, mask=tm, other=0)
    dy = (tap // K - PAD)[:, None]
    dx = (tap % K - PAD)[:, None]
    acc = tl.zeros([TB, BP], dtype=tl.float32)
    npix = HO * WO
    for n in range(sp, N, NSPLIT):
        xb = x + (n * C + c).to(tl.int64) * H * W
        gb = gy + (n * C + c).to(tl.int64) * npix
        for p0 in range(0, npix, BP):
            p = p0 + tl.arange(0, BP)
            pm = p < npix
            oh = (p // WO)[None, :]
            ow = (p % WO)[None, :]
            g = tl.load(gb + p, mask=pm, other=0.0).to(tl.float32)
            iy = oh * STRIDE + dy
            ix = ow * STRIDE + dx
            m = tm[:, None] & pm[None, :] & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            v = tl.load(xb + iy * W + ix, mask=m, other=0.0).to(tl.float32)
            acc += v * g[None, :]
    s = tl.sum(acc, axis=1)
    tl.store(part + (sp * C + c) * (K * K) + tap, s, mask=tm)


@triton.jit
def _dw_bwd_cand(part, NSPLIT, C, c, kp, gkp, wp, gwp, I: tl.constexpr, K: tl.constexpr, S: tl.constexpr,
                 D: tl.constexpr, O: tl.constexpr, NORM: tl.constexpr, eps, SSB: tl.constexpr, NSB: tl.constexpr,
                 MAXC: tl.constexpr):
    offs = tl.arange(0, SSB)
    m = offs < S * S
    t = (O + (offs // S) * D) * K + O + (offs % S) * D
    sp = tl.arange(0, NSB)[:, None]
    g = tl.sum(tl.load(part + (sp * C + c) * (K * K) + t[None, :], mask=(sp < NSPLIT) & m[None, :], other=0.0), axis=0)
    k = tl.load(kp + c * (S * S) + offs, mask=m, other=0.0).to(tl.float32)
    w = tl.load(wp + I).to(tl.float32)
    gw = tl.sum(g * k, axis=0)
    gk = w * g
    if NORM:
        if S > 1:  # a single tap is not standardized
            mean = tl.sum(k, axis=0) / (S * S)
            u = tl.where(m, k - mean, 0.0)
            sigma = tl.sqrt(tl.sum(u * u, axis=0) / (S * S))
            rr = 1.0 / (sigma + eps)
            gw = tl.sum(g * u, axis=0) * rr / S  # the gain 1 / S of reference.normalize_kernel
            gz = w * g / S
            gm = tl.sum(gz, axis=0) / (S * S)
            gu = tl.sum(gz * u, axis=0) / (S * S)
            coef = tl.where(sigma > 0, rr * rr * gu / tl.where(sigma > 0, sigma, 1.0), 0.0)
            gk = rr * (gz - gm) - coef * u
    tl.store(gkp + c * (S * S) + offs, gk.to(gkp.dtype.element_ty), mask=m)
    tl.store(gwp + c * MAXC + I, gw)


@triton.jit
def dw_bwd_prep_kernel(
    part, wp, gwp,
    k0, k1, k2, k3, k4, k5, k6, k7,
    g0, g1, g2, g3, g4, g5, g6, g7,
    C, NSPLIT, eps,
    K: tl.constexpr, NC: tl.constexpr, SSB: tl.constexpr, NSB: tl.constexpr, MAXC: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
    S4: tl.constexpr, S5: tl.constexpr, S6: tl.constexpr, S7: tl.constexpr,
    D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr,
    D4: tl.constexpr, D5: tl.constexpr, D6: tl.constexpr, D7: tl.constexpr,
    O0: tl.constexpr, O1: tl.constexpr, O2: tl.constexpr, O3: tl.constexpr,
    O4: tl.constexpr, O5: tl.constexpr, O6: tl.constexpr, O7: tl.constexpr,
    N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,
    N4: tl.constexpr, N5: tl.constexpr, N6: tl.constexpr, N7: tl.constexpr,
):
    """Per channel: reduce the wgrad partials and push them through merge and standardization to
    every candidate kernel (gk_i[c]) and to the weights (gwp[c, i], summed over c by the caller)."""
    c = tl.program_id(0)
    _dw_bwd_cand(part, NSPLIT, C, c, k0, g0, wp, gwp, 0, K, S0, D0, O0, N0, eps, SSB, NSB, MAXC)
    if NC > 1:
        _dw_bwd_cand(part, NSPLIT, C, c, k1, g1, wp, gwp, 1, K, S1, D1, O1, N1, eps, SSB, NSB, MAXC)
    if NC > 2:
        _dw_bwd_cand(part, NSPLIT, C, c, k2, g2, wp, gwp, 2, K, S2, D2, O2, N2, eps, SSB, NSB, MAXC)
    if NC > 3:
        _dw_bwd_cand(part, NSPLIT, C, c, k3, g3, wp, gwp, 3, K, S3, D3, O3, N3, eps, SSB, NSB, MAXC)
    if NC > 4:
        _dw_bwd_cand(part, NSPLIT, C, c, k4, g4, wp, gwp, 4, K, S4, D4, O4, N4, eps, SSB, NSB, MAXC)
    if NC > 5:
        _dw_bwd_cand(part, NSPLIT, C, c, k5, g5, wp, gwp, 5, K, S5, D5, O5, N5, eps, SSB, NSB, MAXC)
    if NC > 6:
        _dw_bwd_cand(part, NSPLIT, C, c, k6, g6, wp, gwp, 6, K, S6, D6, O6, N6, eps, SSB, NSB, MAXC)
    if NC > 7:
        _dw_bwd_cand(part, NSPLIT, C, c, k7, g7, wp, gwp, 7, K, S7, D7, O7, N7, eps, SSB, NSB, MAXC)


@triton.jit
def _prep_cand(acc, kp, pp, wp, o, ci, ky, kx, CIG, I: tl.constexpr, S: tl.constexpr, D: tl.constexpr,
               O: tl.constexpr, NORM: tl.constexpr, PW: tl.constexpr, eps):
    """acc[ci, tap] += w_i * E(N(k_i))[o] (plain) or w_i * E(N(PW_i DW_i))[o, ci] (factorized: the
    product is the candidate's reparameterized kernel); N standardizes filter o and multiplies it by
    the gain 1 / sqrt(fan_in), and leaves a filter of one number as it is (``reference.normalize_kernel``)."""
    ry = ky - O
    rx = kx - O
    on = (ry >= 0) & (rx >= 0) & (ry % D == 0) & (rx % D == 0) & (ry < D * S) & (rx < D * S) & (ci < CIG)
    src = (ry // D) * S + rx // D
    w = tl.load(wp + I).to(tl.float32)
    if PW:
        v = tl.load(kp + ci * (S * S) + src, mask=on, other=0.0).to(tl.float32)
        v = v * tl.load(pp + o * CIG + ci, mask=ci < CIG, other=0.0).to(tl.float32)
    else:
        v = tl.load(kp + (o * CIG + ci) * (S * S) + src, mask=on, other=0.0).to(tl.float32)
    if NORM:
        cnt = CIG * S * S
        mean = tl.sum(tl.sum(v, axis=1), axis=0) / cnt
        u = tl.where(on, v - mean, 0.0)
        std = tl.sqrt(tl.sum(tl.sum(u * u, axis=1), axis=0) / cnt)
        v = tl.where(cnt > 1, u / ((std + eps) * tl.sqrt(cnt * 1.0)), v)
    acc += w * v
    return acc


@triton.jit
def prep_kernel(
    out, wp,
    k0, k1, k2, k3, k4, k5, k6, k7,
    p0, p1, p2, p3, p4, p5, p6, p7,
    CIG, eps,
    K: tl.constexpr, NC: tl.constexpr, PW: tl.constexpr, CB: tl.constexpr, KKB: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
    S4: tl.constexpr, S5: tl.constexpr, S6: tl.constexpr, S7: tl.constexpr,
    D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr,
    D4: tl.constexpr, D5: tl.constexpr, D6: tl.constexpr, D7: tl.constexpr,
    O0: tl.constexpr, O1: tl.constexpr, O2: tl.constexpr, O3: tl.constexpr,
    O4: tl.constexpr, O5: tl.constexpr, O6: tl.constexpr, O7: tl.constexpr,
    N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,
    N4: tl.constexpr, N5: tl.constexpr, N6: tl.constexpr, N7: tl.constexpr,
):
    """Weight prep for the dense/grouped path: out[o] = merged (optionally standardized) filter o,
    written in out's dtype for cuDNN.  One program per output filter, the whole [C_in/g, K*K]
    filter in one [CB, KKB] tile (the caller falls back to the reference beyond that size)."""
    o = tl.program_id(0)
    ci = tl.arange(0, CB)[:, None]
    t = tl.arange(0, KKB)[None, :]
    ky = t // K
    kx = t % K
    acc = tl.zeros([CB, KKB], dtype=tl.float32)
    acc = _prep_cand(acc, k0, p0, wp, o, ci, ky, kx, CIG, 0, S0, D0, O0, N0, PW, eps)
    if NC > 1:
        acc = _prep_cand(acc, k1, p1, wp, o, ci, ky, kx, CIG, 1, S1, D1, O1, N1, PW, eps)
    if NC > 2:
        acc = _prep_cand(acc, k2, p2, wp, o, ci, ky, kx, CIG, 2, S2, D2, O2, N2, PW, eps)
    if NC > 3:
        acc = _prep_cand(acc, k3, p3, wp, o, ci, ky, kx, CIG, 3, S3, D3, O3, N3, PW, eps)
    if NC > 4:
        acc = _prep_cand(acc, k4, p4, wp, o, ci, ky, kx, CIG, 4, S4, D4, O4, N4, PW, eps)
    if NC > 5:
        acc = _prep_cand(acc, k5, p5, wp, o, ci, ky, kx, CIG, 5, S5, D5, O5, N5, PW, eps)
    if NC > 6:
        acc = _prep_cand(acc, k6, p6, wp, o, ci, ky, kx, CIG, 6, S6, D6, O6, N6, PW, eps)
    if NC > 7:
        acc = _prep_cand(acc, k7, p7, wp, o, ci, ky, kx, CIG, 7, S7, D7, O7, N7, PW, eps)
    tl.store(out + (o * CIG + ci) * (K * K) + t, acc.to(out.dtype.element_ty), mask=(ci < CIG) & (t < K * K))


# ---------------------------------------------------------------- strided depthwise kernels
#
# The kernels below take the merged kernel ready-made (``prep_kernel``, fp32 [C, 1, K, K]) and
# explicit (n, c, h, w) strides, so one kernel reads NCHW or channels-last tensors.  A program
# owns a [pixels x channels] tile; with channels-last storage (channel stride 1) every tap's load
# is a run of contiguous channels, so bounds masks and addresses are computed once per pixel and
# shared by a 16-byte vector of channels, unlike the direct kernels above whose per-tap loads along
# a row are misaligned scalars with a mask per element.


@triton.autotune(configs=_DWN_CONFIGS, key=["C", "H_src", "W_src", "H_dst", "W_dst", "s_c", "d_c", "STRIDE", "TRANSPOSE"])
@triton.jit
def dwn_conv_kernel(
    src, dst, wm,
    C, H_src, W_src, H_dst, W_dst,
    s_n, s_c, s_h, s_w, d_n, d_c, d_h, d_w,
    STRIDE: tl.constexpr, PAD: tl.constexpr, K: tl.constexpr, LIVE: tl.constexpr,
    BC: tl.constexpr, EVEN_C: tl.constexpr, TRANSPOSE: tl.constexpr, BP: tl.constexpr,
):
    """Depthwise convolution with a merged kernel ``wm`` (fp32, [K*K, C]: each tap's weights are one
    vector load) on a [BP pixels, BC channels] tile.

    Forward (TRANSPOSE=0): dst = conv(src, wm, stride, pad); input gradient (TRANSPOSE=1): dst =
    grad_input from src = grad_output.  Grid: (N * pixel blocks of dst, channel blocks).  Only the
    taps in the LIVE bit mask are visited; accumulation in fp32.
    """
    pn = tl.program_id(0)
    pc = tl.program_id(1)
    npix = H_dst * W_dst
    n_pb = tl.cdiv(npix, BP)
    n = pn // n_pb
    p = (pn % n_pb) * BP + tl.arange(0, BP)[:, None]
    c = pc * BC + tl.arange(0, BC)[None, :]
    pm = p < npix
    cm = c < C  # not used when EVEN_C: a mask that varies along channels would block vector loads
    oy = p // W_dst
    ox = p % W_dst
    sbase = src + n.to(tl.int64) * s_n + c * s_c
    acc = tl.zeros([BP, BC], dtype=tl.float32)
    for ky in tl.static_range(K):
        for kx in tl.static_range(K):
            if (LIVE >> (ky * K + kx)) & 1:
                if EVEN_C:
                    w = tl.load(wm + (ky * K + kx) * C + c)
                else:
                    w = tl.load(wm + (ky * K + kx) * C + c, mask=cm, other=0.0)
                iy, ix, m = _tap_source(oy, ox, ky, kx, H_src, W_src, STRIDE, PAD, TRANSPOSE)
                if EVEN_C:
                    v = tl.load(sbase + iy * s_h + ix * s_w, mask=m & pm, other=0.0)
                else:
                    v = tl.load(sbase + iy * s_h + ix * s_w, mask=m & pm & cm, other=0.0)
                acc += v.to(tl.float32) * w
    dptr = dst + n.to(tl.int64) * d_n + c * d_c + oy * d_h + ox * d_w
    if EVEN_C:
        tl.store(dptr, acc.to(dst.dtype.element_ty), mask=pm)
    else:
        tl.store(dptr, acc.to(dst.dtype.element_ty), mask=pm & cm)


@triton.jit
def dwn_wgrad_kernel(
    x, gy, part, taps,
    C, H, W, HO, WO, TOTAL, PER, NT,
    xs_n, xs_c, xs_h, xs_w, gs_n, gs_c, gs_h, gs_w,
    STRIDE: tl.constexpr, PAD: tl.constexpr, K: tl.constexpr, TB: tl.constexpr, BC: tl.constexpr,
    EVEN_C: tl.constexpr,
):
    """Partial merged-kernel gradient: part[split, c, tap] = sum over the split's output pixels
    (PER consecutive pixels of the N*HO*WO) of grad_out[c] * shifted x[c], for the NT live taps.

    One output pixel per iteration: a [TB taps, BC channels] tile of x against one grad_out vector,
    accumulated in registers, so there is no reduction inside the loop.  Grid: (channel blocks, splits).
    """
    pc = tl.program_id(0)
    sp = tl.program_id(1)
    ti = tl.arange(0, TB)[:, None]
    tm = ti < NT
    tap = tl.load(taps + ti, mask=tm, other=0)
    dy = tap // K - PAD
    dx = tap % K - PAD
    c = pc * BC + tl.arange(0, BC)[None, :]
    cm = c < C  # not used when EVEN_C (see dwn_conv_kernel)
    xc = x + c * xs_c
    gc = gy + c * gs_c
    acc = tl.zeros([TB, BC], dtype=tl.float32)
    start = sp * PER
    stop = tl.minimum(start + PER, TOTAL)
    plane = HO * WO
    for q in range(start, stop):
        n = q // plane
        r = q % plane
        oy = r // WO
        ox = r % WO
        iy = oy * STRIDE + dy
        ix = ox * STRIDE + dx
        m = tm & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        if EVEN_C:
            g = tl.load(gc + n.to(tl.int64) * gs_n + oy * gs_h + ox * gs_w).to(tl.float32)
            v = tl.load(xc + n.to(tl.int64) * xs_n + iy * xs_h + ix * xs_w, mask=m, other=0.0)
        else:
            g = tl.load(gc + n.to(tl.int64) * gs_n + oy * gs_h + ox * gs_w, mask=cm, other=0.0).to(tl.float32)
            v = tl.load(xc + n.to(tl.int64) * xs_n + iy * xs_h + ix * xs_w, mask=m & cm, other=0.0)
        acc += v.to(tl.float32) * g
    tl.store(part + (sp * C + c) * (K * K) + tap, acc, mask=tm & cm)


# ---------------------------------------------------------------- merge backward (dense, grouped, factorized)
#
# Given the gradient gW of the merged kernel (fp32 [C_out, C_in/g, K, K], from cuDNN), push it
# through the merge and the standardizations to every candidate: the same formulas as
# ``reference.merge_kernels_backward_reference``, in two launches instead of dozens of small ones.


@triton.jit
def _std_bwd_tile(g, u, on, cnt, rr, sigma):
    """d standardize over a whole 2-D tile: rr (g - mean g) - rr^2 mean(g u) / sigma * u; 0 off ``on``."""
    gm = tl.sum(tl.sum(g, axis=1), axis=0) / cnt
    gu = tl.sum(tl.sum(g * u, axis=1), axis=0) / cnt
    coef = tl.where(sigma > 0, rr * rr * gu / tl.where(sigma > 0, sigma, 1.0), 0.0)
    return tl.where(on, rr * (g - gm) - coef * u, 0.0)


@triton.jit
def _mbwd_row_cand(gt, kp, pp, gkp, gpp, wp, gwp, o, ci, c1, ky, kx, CIG, I: tl.constexpr, S: tl.constexpr,
                   D: tl.constexpr, O: tl.constexpr, NORM: tl.constexpr, PW: tl.constexpr, MAXC: tl.constexpr, eps):
    """Row o of candidate I: dense -> grad of k_I[o]; factorized -> grad of pw_I[o, :]; and gwp[o, I].
    ``ci`` is the channel index as a column [CB, 1], ``c1`` the same as a vector [CB]. Normalized
    factorized candidates do not come here (``triton_conv.merge_backward``)."""
    ry = ky - O
    rx = kx - O
    on = (ry >= 0) & (rx >= 0) & (ry % D == 0) & (rx % D == 0) & (ry < D * S) & (rx < D * S) & (ci < CIG)
    src = (ry // D) * S + rx // D
    w = tl.load(wp + I).to(tl.float32)
    g = tl.where(on, gt, 0.0)
    if PW:
        v = tl.load(kp + ci * (S * S) + src, mask=on, other=0.0).to(tl.float32)
        t = tl.sum(g * v, axis=1)  # [CB]: d W[o] / d (w_I PW_I[o, c]) summed over taps
        cm = c1 < CIG
        p = tl.load(pp + o * CIG + c1, mask=cm, other=0.0).to(tl.float32)
        gp = w * t
        tl.store(gwp + o * MAXC + I, tl.sum(t * p, axis=0))
        tl.store(gpp + o * CIG + c1, gp.to(gpp.dtype.element_ty), mask=cm)
    else:
        v = tl.load(kp + (o * CIG + ci) * (S * S) + src, mask=on, other=0.0).to(tl.float32)
        gz = w * g
        if NORM:
            cnt = CIG * S * S
            mean = tl.sum(tl.sum(v, axis=1), axis=0) / cnt
            u = tl.where(on, v - mean, 0.0)
            sigma = tl.sqrt(tl.sum(tl.sum(u * u, axis=1), axis=0) / cnt)
            rr = 1.0 / (sigma + eps)
            gain = 1.0 / tl.sqrt(cnt * 1.0)  # reference.normalize_kernel: standardized, times 1 / sqrt(fan_in)
            v = tl.where(cnt > 1, u * rr * gain, v)  # a one-number filter is not normalized
            gz = tl.where(cnt > 1, _std_bwd_tile(gz * gain, u, on, cnt, rr, sigma), gz)
        tl.store(gwp + o * MAXC + I, tl.sum(tl.sum(g * v, axis=1), axis=0))
        tl.store(gkp + (o * CIG + ci) * (S * S) + src, gz.to(gkp.dtype.element_ty), mask=on)


@triton.jit
def merge_bwd_rows_kernel(
    gW, wp, gwp,
    k0, k1, k2, k3, k4, k5, k6, k7,
    p0, p1, p2, p3, p4, p5, p6, p7,
    gk0, gk1, gk2, gk3, gk4, gk5, gk6, gk7,
    gp0, gp1, gp2, gp3, gp4, gp5, gp6, gp7,
    CIG, eps,
    K: tl.constexpr, NC: tl.constexpr, PW: tl.constexpr, CB: tl.constexpr, KKB: tl.constexpr, MAXC: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
    S4: tl.constexpr, S5: tl.constexpr, S6: tl.constexpr, S7: tl.constexpr,
    D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr,
    D4: tl.constexpr, D5: tl.constexpr, D6: tl.constexpr, D7: tl.constexpr,
    O0: tl.constexpr, O1: tl.constexpr, O2: tl.constexpr, O3: tl.constexpr,
    O4: tl.constexpr, O5: tl.constexpr, O6: tl.constexpr, O7: tl.constexpr,
    N0: tl.constexpr, N1: tl.constexpr, N2: tl.constexpr, N3: tl.constexpr,
    N4: tl.constexpr, N5: tl.constexpr, N6: tl.constexpr, N7: tl.constexpr,
):
    """One program per output filter o, its whole gW[o] in one [CB, KKB] tile (as ``prep_kernel``):
    dense/grouped candidates get their kernel gradient, factorized ones their pointwise gradient
    (the depthwise half needs a sum over o: ``merge_bwd_cols_kernel``); gwp[o, i] per candidate."""
    o = tl.program_id(0)
    c1 = tl.arange(0, CB)
    ci = c1[:, None]
    t = tl.arange(0, KKB)[None, :]
    ky = t // K
    kx = t % K
    gt = tl.load(gW + (o * CIG + ci) * (K * K) + t, mask=(ci < CIG) & (t < K * K), other=0.0)
    _mbwd_row_cand(gt, k0, p0, gk0, gp0, wp, gwp, o, ci, c1, ky, kx, CIG, 0, S0, D0, O0, N0, PW, MAXC, eps)
    if NC > 1:
        _mbwd_row_cand(gt, k1, p1, gk1, gp1, wp, gwp, o, ci, c1, ky, kx, CIG, 1, S1, D1, O1, N1, PW, MAXC, eps)
    if NC > 2:
        _mbwd_row_cand(gt, k2, p2, gk2, gp2, wp, gwp, o, ci, c1, ky, kx, CIG, 2, S2, D2, O2, N2, PW, MAXC, eps)
    if NC > 3:
        _mbwd_row_cand(gt, k3, p3, gk3, gp3, wp, gwp, o, ci, c1, ky, kx, CIG, 3, S3, D3, O3, N3, PW, MAXC, eps)
    if NC > 4:
        _mbwd_row_cand(gt, k4, p4, gk4, gp4, wp, gwp, o, ci, c1, ky, kx, CIG, 4, S4, D4, O4, N4, PW, MAXC, eps)
    if NC > 5:
        _mbwd_row_cand(gt, k5, p5, gk5, gp5, wp, gwp, o, ci, c1, ky, kx, CIG, 5, S5, D5, O5, N5, PW, MAXC, eps)
    if NC > 6:
        _mbwd_row_cand(gt, k6, p6, gk6, gp6, wp, gwp, o, ci, c1, ky, kx, CIG, 6, S6, D6, O6, N6, PW, MAXC, eps)
    if NC > 7:
        _mbwd_row_cand(gt, k7, p7, gk7, gp7, wp, gwp, o, ci, c1, ky, kx, CIG, 7, S7, D7, O7, N7, PW, MAXC, eps)


@triton.jit
def _mbwd_col_cand(gW, pp, gkp, wp, c, CO, CIG, I: tl.constexpr, K: tl.constexpr, S: tl.constexpr,
                   D: tl.constexpr, O: tl.constexpr, SSB: tl.constexpr, OB: tl.constexpr):
    """Depthwise half of factorized candidate I at channel c: w_I sum_o gW[o, c, taps] pw[o, c]
    (not normalized: ``triton_conv.merge_backward``)."""
    s = tl.arange(0, SSB)
    sm = s < S * S
    tap = (O + (s // S) * D) * K + O + (s % S) * D
    acc = tl.zeros([SSB], dtype=tl.float32)
    for o0 in range(0, CO, OB):
        o = o0 + tl.arange(0, OB)[:, None]
        om = o < CO
        pc = tl.load(pp + o * CIG + c, mask=om, other=0.0).to(tl.float32)  # [OB, 1]
        g = tl.load(gW + (o * CIG + c) * (K * K) + tap[None, :], mask=om & sm[None, :], other=0.0)
        acc += tl.sum(g * pc, axis=0)
    w = tl.load(wp + I).to(tl.float32)
    tl.store(gkp + c * (S * S) + s, (w * acc).to(gkp.dtype.element_ty), mask=sm)


@triton.jit
def merge_bwd_cols_kernel(
    gW, wp,
    p0, p1, p2, p3, p4, p5, p6, p7,
    gk0, gk1, gk2, gk3, gk4, gk5, gk6, gk7,
    CO, CIG,
    K: tl.constexpr, NC: tl.constexpr, SSB: tl.constexpr, OB: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
    S4: tl.constexpr, S5: tl.constexpr, S6: tl.constexpr, S7: tl.constexpr,
    D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr,
    D4: tl.constexpr, D5: tl.constexpr, D6: tl.constexpr, D7: tl.constexpr,
    O0: tl.constexpr, O1: tl.constexpr, O2: tl.constexpr, O3: tl.constexpr,
    O4: tl.constexpr, O5: tl.constexpr, O6: tl.constexpr, O7: tl.constexpr,
):
    """Factorized candidates (not normalized): the depthwise kernels' gradients, one program per input channel."""
    c = tl.program_id(0)
    _mbwd_col_cand(gW, p0, gk0, wp, c, CO, CIG, 0, K, S0, D0, O0, SSB, OB)
    if NC > 1:
        _mbwd_col_cand(gW, p1, gk1, wp, c, CO, CIG, 1, K, S1, D1, O1, SSB, OB)
    if NC > 2:
        _mbwd_col_cand(gW, p2, gk2, wp, c, CO, CIG, 2, K, S2, D2, O2, SSB, OB)
    if NC > 3:
        _mbwd_col_cand(gW, p3, gk3, wp, c, CO, CIG, 3, K, S3, D3, O3, SSB, OB)
    if NC > 4:
        _mbwd_col_cand(gW, p4, gk4, wp, c, CO, CIG, 4, K, S4, D4, O4, SSB, OB)
    if NC > 5:
        _mbwd_col_cand(gW, p5, gk5, wp, c, CO, CIG, 5, K, S5, D5, O5, SSB, OB)
    if NC > 6:
        _mbwd_col_cand(gW, p6, gk6, wp, c, CO, CIG, 6, K, S6, D6, O6, SSB, OB)
    if NC > 7:
        _mbwd_col_cand(gW, p7, gk7, wp, c, CO, CIG, 7, K, S7, D7, O7, SSB, OB)


# ---------------------------------------------------------------- implicit-GEMM dense convolution (forward)
#
# The alternative to cuDNN for a dense merged kernel: y[pixels, C_out] = sum over (tap, channel
# block) of x[shifted pixels, channels] @ W[tap, channels, C_out], with x read in place (no im2col
# buffer).  Measured against prep + cuDNN by bench/merged_conv.py --igemm to choose between them.

_IGEMM_CONFIGS = [
    triton.Config({"BM": bm, "BN": bn, "BK": bk}, num_warps=nw, num_stages=st)
    for bm, bn, bk, nw, st in ((128, 64, 64, 4, 3), (128, 64, 32, 4, 4), (64, 64, 64, 4, 3), (128, 128, 64, 8, 3),
                               (256, 64, 64, 8, 3), (64, 32, 32, 2, 4))
]
if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
    _IGEMM_CONFIGS = [triton.Config({"BM": 16, "BN": 16, "BK": 16}, num_warps=4)]


@triton.autotune(configs=_IGEMM_CONFIGS, key=["C", "H", "W", "HO", "WO", "CO", "xs_c"])
@triton.jit
def igemm_conv_kernel(
    x, wt, y,
    NPIX, C, H, W, HO, WO, CO,
    xs_n, xs_c, xs_h, xs_w, ys_n, ys_c, ys_h, ys_w,
    STRIDE: tl.constexpr, PAD: tl.constexpr, K: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):
    """y = conv(x, W) (groups 1, padding PAD) as an implicit GEMM; ``wt`` is W as [K*K, C, CO]."""
    pm = tl.program_id(0)
    pn = tl.program_id(1)
    m = pm * BM + tl.arange(0, BM)
    mm = m < NPIX
    img = m // (HO * WO)
    r = m % (HO * WO)
    oy = r // WO
    ox = r % WO
    co = pn * BN + tl.arange(0, BN)
    com = co < CO
    kb = tl.arange(0, BK)
    ncb = tl.cdiv(C, BK)
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for it in range(0, K * K * ncb):
        tap = it // ncb
        c = (it % ncb) * BK + kb
        cm = c < C
        iy = oy * STRIDE + (tap // K - PAD)
        ix = ox * STRIDE + (tap % K - PAD)
        valid = mm & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        a = tl.load(x + (img.to(tl.int64) * xs_n + iy * xs_h + ix * xs_w)[:, None] + c[None, :] * xs_c,
                    mask=valid[:, None] & cm[None, :], other=0.0)
        b = tl.load(wt + (tap * C + c)[:, None] * CO + co[None, :], mask=cm[:, None] & com[None, :], other=0.0)
        acc = tl.dot(a, b, acc)
    img2 = img.to(tl.int64)
    dst = y + (img2 * ys_n + oy * ys_h + ox * ys_w)[:, None] + co[None, :] * ys_c
    tl.store(dst, acc.to(y.dtype.element_ty), mask=mm[:, None] & com[None, :])
