"""Exact forms of one factorized (depthwise -> pointwise) choice, forward + backward.

    python bench/factorized_merge.py [--device cpu] [--batch 16] [--channels 16] [--size 32] [--repeat 5]

The DARTS separable/dilated candidates sum_i w_i pw_i(dw_i(x)) can be computed exactly as

* ``naive``: every pair separately, then the weighted sum (what an unmerged supernet does);
* ``merged``: one dense C_out x C_in x K x K kernel (``nasir.kernels.merged_conv``, what the
  ``reparam`` pass lowers to; K = 9 for a 5x5 kernel with dilation 2);
* ``stacked``: one depthwise conv with n channels per input channel (every dw kernel embedded in
  K x K), then one pointwise conv over the n*C stacked channels carrying the weights;
* ``separate``: the n depthwise convs at their own size, then one pointwise conv over their
  concatenation.

Prints the mean milliseconds per forward + backward and the largest difference from ``naive``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from nasir.kernels import merged_conv
from nasir.kernels.reference import embed

CANDIDATES = [(3, 1), (5, 1), (3, 2), (5, 2)]  # (kernel, dilation): sep 3x3, sep 5x5, dil 3x3, dil 5x5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c, n, dev = args.channels, len(CANDIDATES), args.device
    x = torch.randn(args.batch, c, args.size, args.size, device=dev, requires_grad=True)
    dws = [torch.randn(c, 1, k, k, device=dev, requires_grad=True) for k, _ in CANDIDATES]
    pws = [torch.randn(c, c, 1, 1, device=dev, requires_grad=True) for _ in CANDIDATES]
    w = torch.softmax(torch.randn(n, device=dev), 0).requires_grad_()
    dil = [d for _, d in CANDIDATES]
    big = max(d * (k - 1) + 1 for k, d in CANDIDATES)

    def naive():
        return sum(wi * F.conv2d(F.conv2d(x, k, padding=d * (k.shape[-1] - 1) // 2, dilation=d, groups=c), p)
                   for wi, k, d, p in zip(w, dws, dil, pws))

    def merged():
        return merged_conv(x, dws, dil, w, groups=c, pointwise=pws)

    def stacked():
        dw = torch.stack([embed(k[:, 0], d, big) for k, d in zip(dws, dil)], 1).reshape(c * n, 1, big, big)
        pw = torch.stack([wi * p[:, :, 0, 0] for wi, p in zip(w, pws)], 2).reshape(c, c * n, 1, 1)
        return F.conv2d(F.conv2d(x, dw, padding=big // 2, groups=c), pw)

    def separate():
        z = torch.cat([F.conv2d(x, k, padding=d * (k.shape[-1] - 1) // 2, dilation=d, groups=c)
                       for k, d in zip(dws, dil)], 1)
        return F.conv2d(z, torch.cat([wi * p for wi, p in zip(w, pws)], 1))

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    print(f"# {platform.machine()} {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"x {list(x.shape)}, candidates {CANDIDATES}")
    with torch.no_grad():
        reference = naive()
    for fn in (naive, merged, stacked, separate):
        with torch.no_grad():
            err = float((fn() - reference).abs().max())
        for _ in range(2):
            fn().sum().backward()
        sync()
        start = time.perf_counter()
        for _ in range(args.repeat):
            fn().sum().backward()
        sync()
        ms = (time.perf_counter() - start) / args.repeat * 1e3
        print(f"{fn.__name__:<9} {ms:9.1f} ms   max |diff| {err:.1e}")


if __name__ == "__main__":
    main()
