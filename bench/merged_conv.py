"""Benchmark of the merged convolution (issue 4): forward+backward time, peak memory, HBM fraction.

For each shape and dtype it times, with every gradient (input, candidate kernels, pointwise
kernels, weights) computed:
  naive    the mixed op as a DARTS supernet runs it: one (standardized) conv per candidate, weighted sum
  merged   merged (standardized) kernel in PyTorch + one cuDNN convolution (the reference)
  compiled the same merged path under torch.compile
  triton   the nasir::merged_conv op (Triton on CUDA), eager
  triton+c the op inside torch.compile
For depthwise shapes the triton rows are repeated per depthwise layout (``--layouts``), e.g.
``triton[nhwc]``; ``fwd ms`` is the op's forward alone (eager, no autograd) with its HBM fraction.
HBM fraction = the fewest activation bytes forward+backward must move (read x, write y; read
grad_y and x, write grad_x) / time / measured device-to-device copy bandwidth.
``--channels-last`` gives every path channels-last inputs (the op then needs no layout copies).

Usage: python bench/merged_conv.py [--tune] [--breakdown] [--shapes darts-dw,...] [--layouts direct,nhwc]
"""

from __future__ import annotations

import argparse
import datetime
import sys

import torch

from nasir.kernels import merged_conv, merged_conv_reference, naive_mixed_conv
from nasir.kernels import triton_conv as tc

DEVICE = "cuda"  # a dry run on CPU (TRITON_INTERPRET=1) may set another
DARTS = [(3, 1), (5, 1), (3, 2), (5, 2)]
SHAPES = {
    # name: (N, C_in, C_out, H, W, specs, stride, groups, pointwise)
    "darts-dw": (256, 64, 64, 32, 32, DARTS, 1, "dw", False),
    "darts-dw-s2": (256, 64, 64, 32, 32, DARTS, 2, "dw", False),
    "darts-dw-b1": (1, 64, 64, 32, 32, DARTS, 1, "dw", False),
    "mbconv-dw": (128, 240, 240, 14, 14, [(3, 1), (5, 1), (7, 1)], 1, "dw", False),
    "nb201-dense": (256, 64, 64, 32, 32, [(1, 1), (3, 1)], 1, 1, False),
    "darts-factorized": (64, 64, 64, 32, 32, DARTS, 1, "dw", True),
}


def _make(shape, dtype, channels_last=False):
    n, ci, co, h, w, specs, stride, groups, pw = SHAPES[shape]
    dev = DEVICE
    groups = ci if groups == "dw" else groups
    x = torch.randn(n, ci, h, w, device=dev, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    if pw:
        ks = [torch.randn(ci, 1, s, s, device=dev, dtype=dtype, requires_grad=True) for s, _ in specs]
        pws = [torch.randn(co, ci, 1, 1, device=dev, dtype=dtype, requires_grad=True) for _ in specs]
    else:
        ck = ci if groups == ci else co
        ks = [torch.randn(ck, ci // groups, s, s, device=dev, dtype=dtype, requires_grad=True) for s, _ in specs]
        pws = None
    wt = torch.softmax(torch.randn(len(specs), device=dev), 0).requires_grad_()
    kw = dict(stride=stride, groups=groups, pointwise=pws, normalize=True)
    return x, ks, [d for _, d in specs], wt, pws, kw


def _bench(fn, leaves):
    import triton.testing

    y = fn()
    gy = torch.randn_like(y)

    def step():
        out = fn()
        torch.autograd.grad(out, leaves, gy)

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    ms = triton.testing.do_bench(step, warmup=50, rep=300, return_mode="median")
    return ms, peak


def copy_bandwidth() -> float:
    import triton.testing

    a = torch.empty(2**28, device="cuda", dtype=torch.uint8).random_()
    b = torch.empty_like(a)
    ms = triton.testing.do_bench(lambda: b.copy_(a), warmup=25, rep=200, return_mode="median")
    return 2 * a.numel() / (ms * 1e-3)


def _forward_ms(fn):
    import triton.testing

    with torch.no_grad():
        return triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")


def run_shape(shape, dtype, bw, rows, layouts=("direct",), compile_layouts=None, channels_last=False, naive=True):
    """Time every path on one shape and dtype; rows get (shape, dtype, path, ms, peak, HBM, fwd ms, fwd HBM)."""
    x, ks, ds, wt, pws, kw = _make(shape, dtype, channels_last)
    leaves = [x, wt, *ks, *(pws or [])]
    ref = lambda: merged_conv_reference(x, ks, ds, wt, **kw)  # noqa: E731
    cref = torch.compile(lambda x, wt, ks, pws: merged_conv_reference(x, ks, ds, wt, **{**kw, "pointwise": pws}))
    op = lambda: merged_conv(x, ks, ds, wt, **kw)  # noqa: E731
    paths = {"naive": (lambda: naive_mixed_conv(x, ks, ds, wt, **kw), None)} if naive else {}
    paths.update({"merged": (ref, None), "compiled": (lambda: cref(x, wt, ks, pws), None)})
    depthwise = SHAPES[shape][7] == "dw" and not SHAPES[shape][8]
    compile_layouts = layouts if compile_layouts is None else compile_layouts
    for layout in layouts if depthwise else ("direct",):
        tag = f"[{layout}]" if depthwise and len(layouts) > 1 else ""
        paths[f"triton{tag}"] = (op, layout)
        if layout in compile_layouts or not depthwise:
            cop = torch.compile(lambda x, wt, ks, pws: merged_conv(x, ks, ds, wt, **{**kw, "pointwise": pws}))
            paths[f"triton+c{tag}"] = ((lambda cop=cop: cop(x, wt, ks, pws)), layout)
    y = ref()
    act = x.numel() * x.element_size()
    outb = y.numel() * y.element_size()
    min_bytes = 2 * act + 2 * outb + act  # fwd: x, y; bwd: gy, x, gx
    name_shape = shape + ("+cl" if channels_last else "")
    res = {}
    for name, (fn, layout) in paths.items():
        try:
            if layout is not None:
                torch._dynamo.reset()
                with tc.dw_layout(layout):
                    ms, peak = _bench(fn, leaves)
                    fwd = _forward_ms(fn) if "+c" not in name else None
            else:
                ms, peak = _bench(fn, leaves)
                fwd = None
        except Exception as e:  # report, keep going
            print(f"  {shape} {dtype} {name}: FAILED {type(e).__name__}: {str(e)[:3000]}", file=sys.stderr)
            continue
        res[name] = ms
        fwd_frac = (act + outb) / (fwd * 1e-3) / bw if fwd else None
        rows.append((name_shape, str(dtype).replace("torch.", ""), name, ms, peak, min_bytes / (ms * 1e-3) / bw,
                     fwd, fwd_frac))
    if "compiled" in res:
        for name, ms in res.items():
            if name.startswith("triton"):
                print(f"  {name_shape} {dtype}: {name} {ms:.3f} ms, compiled {res['compiled']:.3f} ms, "
                      f"speedup {res['compiled'] / ms:.1f}x", flush=True)


def breakdown(shape="darts-dw", dtype=torch.bfloat16):
    """Time each piece of the channels-last depthwise path: layout copies, forward, backward."""
    import triton.testing

    x, ks, ds, wt, _, kw = _make(shape, dtype)
    x, ks, wt = x.detach(), [k.detach() for k in ks], wt.detach()
    stride = kw["stride"]
    y = tc.dw_forward_nhwc(x, ks, ds, wt, stride, True, None, 1e-5)
    gy = torch.randn_like(y)
    xcl = x.contiguous(memory_format=torch.channels_last)
    gycl = gy.contiguous(memory_format=torch.channels_last)

    def t(fn):
        return triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")

    parts = {
        "NCHW -> channels-last copy of x": lambda: x.contiguous(memory_format=torch.channels_last),
        "merged-kernel prep": lambda: tc.merge(ks, ds, wt, None, True, None, 1e-5),
        "forward, NCHW in/out": lambda: tc.dw_forward_nhwc(x, ks, ds, wt, stride, True, None, 1e-5),
        "forward, channels-last in/out": lambda: tc.dw_forward_nhwc(xcl, ks, ds, wt, stride, True, None, 1e-5),
        "backward, NCHW in/out": lambda: tc.dw_backward_nhwc(gy, x, ks, ds, wt, stride, True, None, 1e-5),
        "backward, channels-last in/out": lambda: tc.dw_backward_nhwc(gycl, xcl, ks, ds, wt, stride, True, None, 1e-5),
        "direct forward (NCHW)": lambda: tc.dw_forward(x, ks, ds, wt, stride, True, None, 1e-5),
        "direct backward (NCHW)": lambda: tc.dw_backward(gy, x, ks, ds, wt, stride, True, None, 1e-5),
    }
    print(f"breakdown {shape} {dtype} (ms):")
    for name, fn in parts.items():
        print(f"  {name}: {t(fn):.4f}", flush=True)


def igemm_compare(shapes, dtypes):
    """Forward of a dense merged kernel: prep + cuDNN against prep + the Triton implicit GEMM."""
    import triton.testing

    print("\nimplicit GEMM vs cuDNN, forward with the merged kernel (ms, median):")
    print("| shape | dtype | input | cuDNN | Triton implicit GEMM | cuDNN / Triton |")
    print("|---|---|---|---:|---:|---:|")
    for shape in shapes:
        if SHAPES[shape][7] == "dw" and not SHAPES[shape][8]:
            continue  # depthwise: not a GEMM
        for dtype in dtypes:
            x, ks, ds, wt, pws, kw = _make(shape, dtype)
            x, ks, wt = x.detach(), [k.detach() for k in ks], wt.detach()
            pws = [p.detach() for p in pws] if pws else None
            W = tc.merge(ks, ds, wt, pws, True, None, 1e-5, dtype=dtype)
            s, p = kw["stride"], W.shape[-1] // 2
            for name, xi in (("NCHW", x), ("channels-last", x.contiguous(memory_format=torch.channels_last))):
                ref = torch.nn.functional.conv2d(xi, W, stride=s, padding=p)
                err = (tc.igemm_conv(xi, W, s).float() - ref.float()).norm() / ref.float().norm()
                a = triton.testing.do_bench(
                    lambda xi=xi, W=W, s=s, p=p: torch.nn.functional.conv2d(xi, W, stride=s, padding=p),
                    return_mode="median")
                b = triton.testing.do_bench(lambda xi=xi, W=W, s=s: tc.igemm_conv(xi, W, s), return_mode="median")
                print(f"| {shape} | {str(dtype).replace('torch.', '')} | {name} | {a:.4f} | {b:.4f} | {a / b:.2f} |"
                      f" (rel. err {err:.1e})", flush=True)


def print_autotune():
    """The tile/warp configuration the autotuner chose for each shape key of the strided kernel."""
    for name in ("dwn_conv_kernel", "igemm_conv_kernel"):
        kern = getattr(tc._kmod(), name)
        print(f"\nautotuned {name} (key: {', '.join(getattr(kern, 'keys', []))}, then argument dtypes):")
        for key, cfg in getattr(kern, "cache", {}).items():
            print(f"  {key}: {cfg}")


def tune(dtype=torch.bfloat16):
    """num_warps / tile sweep of the depthwise kernels on the DARTS shape."""
    import triton.testing

    x, ks, ds, wt, _, kw = _make("darts-dw", dtype)
    x, ks, wt = x.detach(), [k.detach() for k in ks], wt.detach()
    y = tc.dw_forward(x, ks, ds, wt, 1, True, None, 1e-5)
    gy = torch.randn_like(y)
    print("tune darts-dw bf16 (ms): fwd/bwd per config")
    for nw in (2, 4, 8):
        for block in ((32, 32), (16, 32), (8, 32)):
            f = triton.testing.do_bench(
                lambda nw=nw, block=block: tc.dw_forward(x, ks, ds, wt, 1, True, None, 1e-5, num_warps=nw, block=block),
                return_mode="median")
            print(f"  fwd nw={nw} block={block}: {f:.4f}")
        for nsplit, bp in ((None, None), (8, 64), (32, 64), (16, 32), (64, 64)):
            b = triton.testing.do_bench(
                lambda nw=nw, nsplit=nsplit, bp=bp: tc.dw_backward(gy, x, ks, ds, wt, 1, True, None, 1e-5, num_warps=nw,
                                                                  nsplit=nsplit, bp=bp),
                return_mode="median")
            print(f"  bwd nw={nw} nsplit={nsplit} bp={bp}: {b:.4f}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--dtypes", default="bf16,fp16,fp32")
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--layouts", default="direct,nhwc", help="depthwise layouts to time (direct, nhwc)")
    ap.add_argument("--compile-layouts", default=None,
                    help="layouts also timed under torch.compile (default: all; none: no compiled triton rows)")
    ap.add_argument("--channels-last", action="store_true", help="also time every path on channels-last inputs")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive per-candidate path")
    ap.add_argument("--igemm", action="store_true", help="also compare the implicit-GEMM forward with cuDNN")
    args = ap.parse_args(argv)
    import triton

    dev = torch.cuda.get_device_name()
    print(f"device {dev}; torch {torch.__version__}; triton {triton.__version__}; {datetime.date.today()}")
    bw = copy_bandwidth()
    print(f"device-to-device copy: {bw / 1e12:.2f} TB/s (read + write)")
    if args.tune:
        tune()
    if args.breakdown:
        breakdown()
    dts = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    layouts = tuple(args.layouts.split(","))
    clay = tuple(args.compile_layouts.split(",")) if args.compile_layouts else None
    rows = []
    for cl in (False, True) if args.channels_last else (False,):
        for shape in args.shapes.split(","):
            for d in args.dtypes.split(","):
                run_shape(shape, dts[d], bw, rows, layouts, clay, channels_last=cl, naive=not args.no_naive)
    if args.igemm:
        igemm_compare(args.shapes.split(","), [dts[d] for d in args.dtypes.split(",")])
    print_autotune()
    print("\n| shape | dtype | path | fwd+bwd ms | peak MiB | HBM fraction | fwd ms | fwd HBM fraction |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for shape, dt, name, ms, peak, frac, fwd, ffrac in rows:
        fw = f"{fwd:.3f} | {ffrac:.1%}" if fwd else " | "
        print(f"| {shape} | {dt} | {name} | {ms:.3f} | {peak:.0f} | {frac:.1%} | {fw} |")


if __name__ == "__main__":
    main()
