"""The exact forms a merged convolution can be computed in, what each costs, and the choice between them.

A ``merged_conv`` computes sum_i w_i O_i(x) over its candidates (``nasir.ir.nodes.MergedConvNode``).
It can be emitted in three exact forms:

* ``dense``: one convolution with the merged K x K kernel (K the largest footprint). For
  depthwise -> pointwise candidates this kernel is dense, C_out x C_in x K x K: its MACs grow with
  C_in * C_out * K^2, about 5-10x those of the separate pairs in DARTS.
* ``grouped`` (depthwise -> pointwise candidates only): every candidate's depthwise kernel embedded
  in K x K and stacked, one grouped convolution with n filters per input channel, then one
  pointwise convolution over the n * C_in stacked channels with the weight-scaled pointwise kernels.
* ``separate``: every candidate's convolution at its own size and dilation; depthwise -> pointwise
  candidates share one pointwise convolution over their concatenated depthwise outputs.

Normalized factorized candidates (``reparam{kernel_norm=true}``) add, in the grouped and separate
forms, one box filter per candidate over the channel sum of x and a small pointwise convolution for
it: the mean the normalization subtracts from the product PW DW (``nasir.kernels.reference``).

The cost of a form is a list of :class:`Work` items (forward and backward together: a convolution's
backward computes the input gradient and the weight gradient, two more convolutions' worth of
MACs), turned into seconds by a :class:`DeviceModel`: per item the larger of its MACs at the rate of
its kind and its bytes at the memory bandwidth, plus a fixed cost per launched op. The kinds matter
because devices run them at very different rates: on a CPU a depthwise convolution runs about ten
times fewer MACs per second than a dense one, and one with several filters per channel (the grouped
form's) about twenty-five times fewer (``CPU`` says how that was measured). Building the kernels
costs per step, not per sample, and is counted once per step (``batch`` samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nasir.ir.nodes import MergedConvNode, MergeForm

FORMS: tuple[MergeForm, ...] = ("dense", "grouped", "separate")
DeviceKind = Literal["cpu", "cuda"]
DEVICE_KINDS: tuple[DeviceKind, ...] = ("cpu", "cuda")
#: Bytes per element: costs are counted for float32.
_ELEMENT = 4


@dataclass(frozen=True)
class DeviceModel:
    """Throughputs of one device kind: MACs per second by kind of work, bytes per second, seconds per op."""

    dense: float
    depthwise: float
    multiplier: float
    pointwise: float
    bandwidth: float
    launch: float

    def seconds(self, work: Work, batch: int) -> float:
        rate = {"dense": self.dense, "depthwise": self.depthwise, "multiplier": self.multiplier,
                "pointwise": self.pointwise, "memory": float("inf")}[work.kind]
        scale = batch if work.per_sample else 1
        return max(scale * work.macs / rate, scale * work.bytes / self.bandwidth) + work.launches * self.launch


#: One CPU thread (fp32, torch 2.13 oneDNN): fastest of 11 interleaved forward + backward runs per
#: shape on the developer box (2 cores, shared): dense convolutions 13-33 GMAC/s (C = 16..64, 3x3 to
#: 9x9), depthwise 0.5-5 GMAC/s (3x3 fastest, dilated slowest), depthwise with 2 filters per channel
#: 0.6-1.3 GMAC/s, 1x1 convolutions 10-27 GMAC/s; op overhead ~20 us eager.
CPU = DeviceModel(dense=15e9, depthwise=1.2e9, multiplier=0.6e9, pointwise=12e9, bandwidth=8e9, launch=20e-6)
#: An H100 in eager mode, from the merged-conv bench (docs/benchmarks.md): dense cuDNN convolutions
#: ~16 TMAC/s, depthwise ~1 TMAC/s; 2.5 TB/s; ~8 us per launched op (launch-bound at C = 16).
#: Not yet calibrated on a lent device (issue 17, item 5).
CUDA = DeviceModel(dense=16e12, depthwise=1e12, multiplier=1e12, pointwise=16e12, bandwidth=2.5e12, launch=8e-6)
DEVICE_MODELS: dict[DeviceKind, DeviceModel] = {"cpu": CPU, "cuda": CUDA}


@dataclass(frozen=True)
class Work:
    """One operation of a form, forward and backward: MACs and bytes moved (per sample when
    ``per_sample``, else per step) and the ops it launches per step."""

    kind: Literal["dense", "depthwise", "multiplier", "pointwise", "memory"]
    macs: int = 0
    bytes: int = 0
    launches: int = 0
    per_sample: bool = True


@dataclass(frozen=True)
class FormCost:
    """What a form of one merged conv does per step (forward + backward) at a batch size."""

    form: MergeForm
    macs: int
    bytes: int
    launches: int
    seconds: float


def factorized(node: MergedConvNode) -> bool:
    """Whether the candidates are depthwise -> pointwise pairs (fixed kernels joining them as depthwise)."""
    return any(k.pointwise for k in node.kernels)


def available_forms(node: MergedConvNode) -> tuple[MergeForm, ...]:
    """The forms ``node`` can be emitted in: grouped only for depthwise -> pointwise candidates."""
    return FORMS if factorized(node) else ("dense", "separate")


def _conv(kind: str, c_in: int, in_pix: int, c_out: int, out_pix: int, taps_per_out: int, launches: int = 3) -> Work:
    """A convolution, forward + backward: 3x the forward MACs; reads x twice and the output gradient,
    writes y and the input gradient; a forward and a backward op (input and weight gradients)."""
    return Work(kind, 3 * out_pix * c_out * taps_per_out, _ELEMENT * (3 * c_in * in_pix + 2 * c_out * out_pix), launches)


def _prep(n_ops: int, elements: int) -> Work:
    """Building the kernels: ``n_ops`` small ops per step (forward + backward) over ``elements`` values."""
    return Work("memory", 0, _ELEMENT * 4 * elements, n_ops, per_sample=False)


#: Ops per step a depthwise -> pointwise merged conv adds to its bank's batched kernel building (its
#: share of the bank's output, forward and backward); the bank's own few dozen ops are shared by
#: every merged conv of the same signature, dozens in a DARTS supernet.
_BANK_SHARE = 4


def form_works(node: MergedConvNode, c_in: int, in_hw: tuple[int, int], form: MergeForm) -> list[Work]:
    """The work list of ``node`` (input channels ``c_in``, input size ``in_hw``) computed in ``form``."""
    if form not in available_forms(node):
        raise ValueError(f"merged conv {node.name!r} has no {form!r} form")
    o = node.out_channels
    q = in_hw[0] * in_hw[1]
    p = node.shape[1] * node.shape[2] if node.shape else q
    n = len(node.kernels)
    K = max(k.dilation * (k.kernel - 1) + 1 for k in node.kernels)
    norm = node.normalize and any(k.source == "conv" for k in node.kernels)
    if not factorized(node):
        cig = c_in // node.groups
        depthwise = node.groups == c_in == o
        kind = "depthwise" if depthwise else "dense"
        if form == "dense":
            return [_conv(kind, c_in, q, o, p, cig * K * K), _prep(8 + 4 * n + (8 if norm else 0), n * o * cig * K * K)]
        works = [_conv(kind, c_in, q, o, p, cig * k.kernel**2) for k in node.kernels if k.source == "conv"]
        works += [Work("memory", 0, _ELEMENT * 3 * o * p, 1) for k in node.kernels if k.source == "avg_pool"]
        works.append(Work("memory", 0, _ELEMENT * 4 * o * p * (n - 1), 2 * n))  # weighted sum
        return works + [_prep(2 * n + (8 if norm else 0), sum(o * cig * k.kernel**2 for k in node.kernels))]
    if form == "dense":
        return [_conv("dense", c_in, q, o, p, c_in * K * K), _prep(_BANK_SHARE, n * c_in * (o + K * K) + o * c_in * K * K)]
    box = []
    if norm:  # channel sum, box filters over it (one tiny convolution), extra pointwise input channels
        box = [Work("memory", 0, _ELEMENT * (c_in * q + q), 2), _conv("depthwise", 1, q, n, p, K * K)]
    pointwise = _conv("pointwise", n * c_in + (n if norm else 0), p, o, p, n * c_in + (n if norm else 0))
    if form == "grouped":
        kind = "multiplier" if n > 1 else "depthwise"
        return [_conv(kind, c_in, q, n * c_in, p, K * K), pointwise, *box, _prep(_BANK_SHARE, n * c_in * (o + K * K))]
    works = []
    for k in node.kernels:
        if k.source == "conv":
            works.append(_conv("depthwise", c_in, q, c_in, p, k.kernel**2))
        elif k.source == "avg_pool":
            works.append(Work("memory", 0, _ELEMENT * 3 * (c_in * q + c_in * p), 2))
    works.append(Work("memory", 0, _ELEMENT * 2 * n * c_in * p, 1))  # concatenation
    return works + [pointwise, *box, _prep(_BANK_SHARE, n * c_in * (o + 1))]


def forward_macs(node: MergedConvNode, c_in: int, in_hw: tuple[int, int], form: MergeForm) -> int:
    """Multiply-accumulates of one sample's forward pass through ``node`` in ``form``."""
    return sum(w.macs // 3 for w in form_works(node, c_in, in_hw, form) if w.per_sample)


def form_cost(node: MergedConvNode, c_in: int, in_hw: tuple[int, int], form: MergeForm,
              device: DeviceKind | DeviceModel = "cpu", batch: int = 64) -> FormCost:
    """Per-step cost of ``node`` in ``form`` on ``device`` (a kind, or a model) for ``batch`` samples."""
    model = device if isinstance(device, DeviceModel) else DEVICE_MODELS[device]
    works = form_works(node, c_in, in_hw, form)
    per = [batch if w.per_sample else 1 for w in works]
    return FormCost(form, sum(w.macs * s for w, s in zip(works, per)), sum(w.bytes * s for w, s in zip(works, per)),
                    sum(w.launches for w in works), sum(model.seconds(w, batch) for w in works))


def choose_form(node: MergedConvNode, c_in: int, in_hw: tuple[int, int], device: DeviceKind | DeviceModel = "cpu",
                batch: int = 64) -> MergeForm:
    """The cheapest available form of ``node`` on ``device`` (ties go to the earlier of ``FORMS``)."""
    costs = [form_cost(node, c_in, in_hw, f, device, batch) for f in available_forms(node)]
    return min(costs, key=lambda c: c.seconds).form
