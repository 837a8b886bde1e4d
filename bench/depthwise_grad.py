"""Where a depthwise convolution's training time goes on CPU: forward, input gradient, weight gradient.

    python bench/depthwise_grad.py [--threads 1] [--repeat 21] [--json out.json]

For the depthwise shapes of the DARTS supernet (C=16, 8 layers, batch 8: 16 channels at 32x32, 32
at 16x16, 64 at 8x8; 3x3 and 5x5 kernels, dilation 1 and 2) it times, with process CPU time, the
forward convolution, the input gradient and the weight gradient (``torch.autograd.grad`` for one of
them at a time), the whole step in channels-last, and the weight gradient written as one
multiply-and-sum per tap (``tap_weight_grad``, checked against autograd). Medians of ``--repeat``
runs, the variants interleaved. The point (docs/benchmarks.md, issue 17): on CPU the weight
gradient of a 5x5 or dilated depthwise kernel costs many times its forward, in the plain and the
rewritten supernet alike.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [(8, 16, 32, 3, 1), (8, 16, 32, 5, 1), (8, 16, 32, 3, 2), (8, 16, 32, 5, 2), (8, 32, 16, 5, 1),
          (8, 64, 8, 5, 1)]


def tap_weight_grad(x: torch.Tensor, grad: torch.Tensor, k: int, dilation: int) -> torch.Tensor:
    """The weight gradient of a stride-1, same-padded depthwise convolution, one product-sum per tap."""
    n, c, h, w = x.shape
    pad = dilation * (k - 1) // 2
    padded = F.pad(x, (pad,) * 4)
    out = x.new_empty(c, k * k)
    for i in range(k):
        for j in range(k):
            window = padded[:, :, i * dilation : i * dilation + h, j * dilation : j * dilation + w]
            out[:, i * k + j] = (window * grad).sum((0, 2, 3))
    return out.view(c, 1, k, k)


def variants(shape: tuple[int, int, int, int, int]) -> dict:
    n, c, size, k, d = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, size, size, generator=gen, requires_grad=True)
    weight = torch.randn(c, 1, k, k, generator=gen, requires_grad=True)
    grad = torch.randn(n, c, size, size, generator=gen)
    x_last = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    grad_last = grad.to(memory_format=torch.channels_last)
    pad = d * (k - 1) // 2

    def conv(inp):
        return F.conv2d(inp, weight, padding=pad, dilation=d, groups=c)

    reference = torch.autograd.grad(conv(x), (weight,), grad)[0]
    error = (tap_weight_grad(x.detach(), grad, k, d) - reference).abs().max().item()
    return {
        "forward": lambda: conv(x.detach()),
        "input grad": lambda: torch.autograd.grad(conv(x), (x,), grad),
        "weight grad": lambda: torch.autograd.grad(conv(x), (weight,), grad),
        "both grads": lambda: torch.autograd.grad(conv(x), (x, weight), grad),
        "both, channels-last": lambda: torch.autograd.grad(conv(x_last), (x_last, weight), grad_last),
        "tap weight grad": lambda: tap_weight_grad(x.detach(), grad, k, d),
    }, error


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for shape in SHAPES:
        fns, error = variants(shape)
        times: dict[str, list[float]] = {name: [] for name in fns}
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(args.repeat):
            for name, fn in fns.items():
                t = time.process_time()
                fn()
                times[name].append((time.process_time() - t) * 1e3)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        rows.append({"shape": dict(zip(("batch", "channels", "size", "kernel", "dilation"), shape)),
                     "ms": medians, "tap_error": error})
        n, c, size, k, d = shape
        print(f"[{n},{c},{size},{size}] {k}x{k} dil {d}: " + "  ".join(f"{name} {ms:.2f}" for name, ms in medians.items())
              + f"  (ms; tap error {error:.1e})")
    if args.json:
        meta = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "python": platform.python_version(),
                "machine": platform.machine(), "threads": args.threads}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
