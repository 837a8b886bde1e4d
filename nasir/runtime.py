"""Modules and samplers that lowered graphs call at run time.

Lowered code is plain PyTorch; this file holds the few pieces that have no ``torch.nn`` equivalent:
DARTS' zero op and factorized reduction, the choice module that mixes or samples candidates, the
merged convolution wrapper, the DANCE channel gate, the layers whose weights width choices slice
and the width mask, the path samplers (uniform for SPOS/DNA, Gumbel for GDAS, fixed for rating
one path), and what evaluation networks need in training: drop path and the auxiliary output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nasir.ir.width import WidthUse


class Zero(nn.Module):
    """DARTS 'none': zeros shaped like the (strided) input."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class AuxOutput(NamedTuple):
    """What a network with an auxiliary head returns in training mode (DARTS' NetworkCIFAR returns the
    same pair); in eval mode it returns the logits alone, so exported networks have one output."""

    logits: torch.Tensor
    aux_logits: torch.Tensor


class AuxHead(nn.Module):
    """The auxiliary head of a lowered network (the nodes only an ``aux_output`` needs), in ``head``.

    The network's graph ends in this module, given the logits and the feature maps the head reads:
    in training mode it runs the head and returns ``AuxOutput(logits, aux_logits)``; in eval mode it
    returns the logits and the head computes nothing (DARTS' NetworkCIFAR runs its head only in
    training), so an exported network has one output."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head
        #: whether training mode runs the head (``set_auxiliary_head``): a run whose loss leaves the
        #: head out switches it off, so that no parameter goes without a gradient (which
        #: DistributedDataParallel refuses) and no time is spent on it
        self.active = True

    def forward(self, logits: torch.Tensor, *features: torch.Tensor) -> torch.Tensor | AuxOutput:
        if not self.training or not self.active:
            return logits
        return AuxOutput(logits, self.head(*features))


def _set_on_every(module: nn.Module, kind: type[nn.Module], **values: Any) -> int:
    """Set the attributes ``values`` on every submodule of ``module`` that is a ``kind``; returns how many."""
    found = [m for m in module.modules() if isinstance(m, kind)]
    for m in found:
        for name, value in values.items():
            setattr(m, name, value)
    return len(found)


def set_auxiliary_head(module: nn.Module, active: bool) -> int:
    """Switch every ``AuxHead`` in ``module`` on or off (off: training mode returns the logits
    alone); returns how many there are."""
    return _set_on_every(module, AuxHead, active=active)


class DropPath(nn.Module):
    """Drop a whole path per sample with probability ``drop_prob`` in training, scaling kept samples by
    ``1 / (1 - drop_prob)`` (DARTS' ``drop_path``). The probability is set from outside as training goes
    on (DARTS raises it linearly with the epoch): see ``set_drop_path``. The identity in eval mode.

    The probability lives in a tensor (a buffer outside the ``state_dict``), so a ``torch.compile``d
    network keeps its graph when the probability changes; only switching drop path on or off
    (``active``, a Python flag) compiles again. ``rows``: this process's rows of the global batch
    (``rank, processes``, see ``nasir.distributed``): every process draws the mask of the whole
    batch and keeps its rows, so N processes drop the samples one process would drop.
    """

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.register_buffer("probability", torch.tensor(float(drop_prob)), persistent=False)
        self._drop_prob = float(drop_prob)  # as given (the buffer holds it in float32)
        self.active = drop_prob > 0.0
        self.rows = (0, 1)

    @property
    def drop_prob(self) -> float:
        return self._drop_prob

    @drop_prob.setter
    def drop_prob(self, value: float) -> None:
        self.probability.fill_(value)
        self._drop_prob = float(value)
        self.active = value > 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.active:
            return x
        keep = 1.0 - self.probability
        rank, world = self.rows
        n = x.shape[0]
        draws = torch.rand((n * world,) + (1,) * (x.dim() - 1), device=x.device)[rank * n:(rank + 1) * n]
        return x / keep.to(x.dtype) * (draws < keep).to(x.dtype)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def set_drop_path(module: nn.Module, drop_prob: float) -> int:
    """Set the probability of every ``DropPath`` in ``module``; returns how many there are."""
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop path probability must be in [0, 1), got {drop_prob}")
    return _set_on_every(module, DropPath, drop_prob=drop_prob)


def share_drop_path(module: nn.Module, rank: int, world: int) -> None:
    """Make every ``DropPath`` in ``module`` keep rows ``rank`` of ``world`` equal shares of each
    batch's mask (``DropPath.rows``)."""
    _set_on_every(module, DropPath, rows=(rank, world))


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second on the input shifted by one pixel), concat, BN.

    The DARTS reference fails on an odd size: its first conv gives ceil(H / 2) rows, the shifted
    one floor(H / 2). Here the shifted input gets one zero row (column) at the end when the size is
    odd, so both give ceil(H / 2), what every other stride-2 candidate of a DARTS edge gives (conv,
    pools and zero with 'same' padding). On even sizes nothing is padded: the output is the
    reference's, bit for bit.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = x[:, :, 1:, 1:]
        odd_h, odd_w = x.shape[2] % 2, x.shape[3] % 2
        if odd_h or odd_w:
            shifted = F.pad(shifted, (0, odd_w, 0, odd_h))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


_WEIGHT_MATRICES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def weight_matrices(covers: Sequence[Sequence[int]], domain: Sequence[int], n: int, device: torch.device,
                    dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 matrices C [candidates, n] and d [n] with weights = C p / (d . p), cached per device.

    Matrix products instead of indexing with Python lists: list indexing copies the index to the
    device and synchronises on every forward, once per choice.
    """
    key = (tuple(map(tuple, covers)), tuple(domain), n, device, dtype)
    mats = _WEIGHT_MATRICES.get(key)
    if mats is None:
        cover = torch.zeros(len(covers), n, dtype=dtype)
        for j, c in enumerate(covers):
            cover[j, list(c)] = 1
        dom = torch.zeros(n, dtype=dtype)
        dom[list(domain)] = 1
        mats = (cover.to(device), dom.to(device))
        _WEIGHT_MATRICES[key] = mats
    return mats


def derived_weights(p: torch.Tensor, covers: Sequence[Sequence[int]], domain: Sequence[int]) -> torch.Tensor:
    """Candidate weights sum(p[covers_j]) / sum(p[domain]) (TopoNAS P_S and q_i = p_i / P_S)."""
    cover, dom = weight_matrices(covers, domain, p.numel(), p.device, p.dtype)
    return (cover @ p) / (dom @ p)


def is_plain_softmax(covers: Sequence[Sequence[int]], domain: Sequence[int], n: int) -> bool:
    """True when candidate j is original index j and the domain is everything: weights = p."""
    return len(covers) == n and all(list(c) == [j] for j, c in enumerate(covers)) and sorted(domain) == list(range(n))


class ChoiceModule(nn.Module):
    """A choice among candidate sub-modules, all reading the same inputs.

    ``mode="supernet"``: weighted sum of every candidate (zero candidates skipped: they add
    nothing). ``mode="sampled"``: ``weights`` is a (straight-through) one-hot vector from a
    sampler; only the candidate covering the hot index runs, scaled by its weight so that GDAS
    gradients reach the architecture parameters.

    ``forward(*inputs, *arch_vectors)``: the first ``n_inputs`` arguments are tensors of the
    graph, the rest are weight vectors of the architecture parameters named in ``arch_args``.
    ``cand_args[j]`` lists which of them candidate j needs (nested choices).
    """

    def __init__(self, candidates: Mapping[str, nn.Module], covers: list[list[int]], domain: list[int],
                 arch: str, arch_args: list[str], cand_args: list[list[str]], zero: list[bool],
                 n_inputs: int, mode: str):
        super().__init__()
        self._names = list(candidates)
        for name, mod in candidates.items():
            self.add_module(name, mod)
        self._covers = covers
        self._domain = domain
        self._arch = arch
        self._arch_args = arch_args
        self._cand_args = cand_args
        self._zero = zero
        self._n_inputs = n_inputs
        self._mode = mode
        self._trivial: bool | None = None  # known once the parameter's size is seen

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        inputs = args[: self._n_inputs]
        vectors = dict(zip(self._arch_args, args[self._n_inputs:]))
        p = vectors[self._arch]
        if self._mode == "sampled":
            hot = int(torch.argmax(p.detach()))
            for j, cover in enumerate(self._covers):
                if hot in cover:
                    return derived_weights(p, self._covers, self._domain)[j] * self._run(j, inputs, vectors)
            raise RuntimeError(f"choice over {self._arch!r}: sampled index {hot} is not among its candidates")
        if self._trivial is None:
            self._trivial = is_plain_softmax(self._covers, self._domain, p.numel())
        weights = p if self._trivial else derived_weights(p, self._covers, self._domain)
        out = None
        for j in range(len(self._names)):
            if self._zero[j]:
                continue
            term = weights[j] * self._run(j, inputs, vectors)
            out = term if out is None else out + term
        if out is None:  # every candidate is zero
            return self._run(0, inputs, vectors) * weights[0]
        return out

    def _run(self, j: int, inputs, vectors) -> torch.Tensor:
        return getattr(self, self._names[j])(*inputs, *(vectors[a] for a in self._cand_args[j]))

    def extra_repr(self) -> str:
        return f"arch={self._arch!r}, mode={self._mode!r}"


class MergedConv(nn.Module):
    """A choice of linear convolutions computed as one convolution with a merged kernel.

    Holds each candidate's kernel (and pointwise kernel for depthwise->pointwise pairs) under the
    candidate's name, and calls the ``nasir.kernels`` op, which runs Triton on CUDA. Fixed
    candidates (identity, uniform average pooling) are constants built per call: in dense/grouped mode a
    [C_out, C_in/groups, k, k] kernel on the channel diagonal; in factorized mode (any candidate has a
    pointwise conv) a depthwise kernel plus an identity pointwise matrix, so every candidate has the
    depthwise->pointwise form the op expects. A candidate conv with a bias keeps it under its name
    in ``biases``; the biases are added after the merged convolution, weighted like their kernels:
    sum_i q_i (W_i * x + b_i) = (sum_i q_i W_i) * x + sum_i q_i b_i.
    """

    def __init__(self, c_in: int, c_out: int, specs: list[dict], covers: list[list[int]], domain: list[int],
                 arch: str, stride: int, groups: int, normalize: bool):
        super().__init__()
        self.kernels = nn.ParameterDict()
        self.pointwise = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        self._specs = specs
        self._covers = covers
        self._domain = domain
        self._arch = arch
        self._stride = stride
        # factorized candidates are depthwise (groups = C_in) before their pointwise convs
        self._factorized = any(s["pointwise"] for s in specs)
        self._groups = c_in if self._factorized else groups
        self._normalize = normalize
        self._c_in, self._c_out = c_in, c_out
        for s in specs:
            k = s["kernel"]
            if s["source"] != "conv":
                continue  # built per call in the input's dtype (fixed_kernel): exact in float64 too
            k_in = 1 if s["pointwise"] else c_in // self._groups
            k_out = c_in if s["pointwise"] else c_out
            self.kernels[s["name"]] = nn.Parameter(torch.empty(k_out, k_in, k, k))
            nn.init.kaiming_uniform_(self.kernels[s["name"]], a=5**0.5)
            if s["pointwise"]:
                self.pointwise[s["name"]] = nn.Parameter(torch.empty(c_out, c_in, 1, 1))
                nn.init.kaiming_uniform_(self.pointwise[s["name"]], a=5**0.5)
            if s.get("bias"):  # initialized as nn.Conv2d initializes its bias
                bound = 1 / (k_in * k * k) ** 0.5
                self.biases[s["name"]] = nn.Parameter(torch.empty(c_out).uniform_(-bound, bound))

    def _fixed_kernel(self, spec: dict, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The constant kernel of an identity (centred delta) or uniform-pool candidate."""
        k = spec["kernel"]
        value = 1.0 if spec["source"] == "identity" else 1.0 / (k * k)
        opts = dict(dtype=like.dtype, device=like.device)
        if self._factorized:
            eye = torch.eye(self._c_out, self._c_in, **opts).view(self._c_out, self._c_in, 1, 1)
            return torch.full((self._c_in, 1, k, k), value, **opts), eye
        cig = self._c_in // self._groups
        fixed = torch.zeros(self._c_out, cig, k, k, **opts)
        rows = torch.arange(self._c_out, device=like.device)
        fixed[rows, rows % cig] = value
        return fixed, None

    def _kernel_list(self, like: torch.Tensor | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        if like is None:
            like = next(iter(self.kernels.values()))
        ks: list[torch.Tensor] = []
        pws: list[torch.Tensor] = []
        for s in self._specs:
            if s["source"] == "conv":
                ks.append(self.kernels[s["name"]])
                if self._factorized:
                    pws.append(self.pointwise[s["name"]])
            else:
                k, pw = self._fixed_kernel(s, like)
                ks.append(k)
                if pw is not None:
                    pws.append(pw)
        return ks, (pws if self._factorized else None)

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        from nasir.kernels import merged_conv

        weights = derived_weights(p, self._covers, self._domain)
        kernels, pointwise = self._kernel_list(x)
        out = merged_conv(
            x, kernels, [s["dilation"] for s in self._specs], weights, stride=self._stride,
            groups=self._groups, pointwise=pointwise, normalize=self._normalize,
            normalize_mask=[s["source"] == "conv" for s in self._specs],
        )
        if len(self.biases):
            bias = sum(weights[j] * self.biases[s["name"]] for j, s in enumerate(self._specs) if s["name"] in self.biases)
            out = out + bias.to(out.dtype).view(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        names = ", ".join(f"{s['name']}:{s['kernel']}x{s['kernel']}/d{s['dilation']}" for s in self._specs)
        return f"arch={self._arch!r}, [{names}], stride={self._stride}, normalize={self._normalize}"


class ChannelGate(nn.Module):
    """Multiplies channels by a 0/1 mask (a buffer, so a DANCE controller can set it)."""

    def __init__(self, channels: int, group: str):
        super().__init__()
        self.group = group
        self.register_buffer("mask", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x * self.mask.view(shape).to(x.dtype)


# -- width choices ---------------------------------------------------------------------------
#: One segment of a width mask: (channels, repeat, index of its architecture vector or -1, widths).
MaskSegment = tuple[int, int, int, tuple[int, ...]]

_KEEP_MATRICES: dict[tuple, torch.Tensor] = {}


def _keep_matrix(widths: tuple[int, ...], size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """0/1 matrix [candidates, size]: row j keeps the first widths[j] channels (cached per device)."""
    key = (widths, size, device, dtype)
    mat = _KEEP_MATRICES.get(key)
    if mat is None:
        mat = (torch.arange(size).unsqueeze(0) < torch.tensor(widths).unsqueeze(1)).to(device=device, dtype=dtype)
        _KEEP_MATRICES[key] = mat
    return mat


def width_mask(x: torch.Tensor, *vectors: torch.Tensor, segments: tuple[MaskSegment, ...]) -> torch.Tensor:
    """Supernet mode (FBNetV2): ``x`` with every channel weighted by the probability that the width
    choices keep it, ``sum_j p_j mask_j``; ``x`` is computed once at the largest widths.

    Applied where a conv or linear reads channels of width choices, so a one-hot ``p`` zeroes exactly
    the channels the sampled (sliced) network does not have.
    """
    parts = []
    for size, repeat, arg, widths in segments:
        if arg < 0:
            parts.append(x.new_ones(size * repeat))
            continue
        p = vectors[arg]
        keep = p @ _keep_matrix(widths, size, p.device, p.dtype)
        parts.append(keep.repeat_interleave(repeat) if repeat > 1 else keep)
    mask = parts[0] if len(parts) == 1 else torch.cat(parts)
    return x * mask.view(1, -1, *([1] * (x.dim() - 2)))


def _take(t: torch.Tensor | None, dim: int, index: int | torch.Tensor | None) -> torch.Tensor | None:
    """``t`` cut along ``dim`` to ``index``: the first ``index`` entries (a view), or those listed."""
    if t is None or index is None:
        return t
    if isinstance(index, int):
        return t.narrow(dim, 0, index)
    return t.index_select(dim, index)


class _FollowsWidths:
    """Sampled mode: a layer whose weights width choices slice on every forward.

    ``forward(x, *arch_vectors)`` receives the one-hot vectors of ``use.archs``; the picked widths
    say which weight rows and columns run (``WidthUse.dims``: the first channels of each width
    segment). A layer choosing its own width scales its output by its vector's picked entry, 1 in
    value, so GDAS gradients reach the architecture parameter as they do through ``ChoiceModule``.
    """

    _use: WidthUse
    _cache: dict

    def follow_widths(self, use: WidthUse) -> None:
        self._use = use
        self._cache = {}

    def _picks(self, vectors: Sequence[torch.Tensor]) -> dict[str, int]:
        return {a: int(torch.argmax(v.detach())) for a, v in zip(self._use.archs, vectors)}

    def _dims(self, picks: dict[str, int], device: torch.device) -> tuple:
        """Per weight dimension 0 and 1: None (whole), a count (a prefix: a view) or an index tensor."""
        key = (tuple(picks.values()), device)
        dims = self._cache.get(key)
        if dims is None:
            dims = tuple(_index(kept, device) for kept in self._use.dims(picks))
            self._cache[key] = dims
        return dims

    def _scaled(self, y: torch.Tensor, picks: dict[str, int], vectors: Sequence[torch.Tensor]) -> torch.Tensor:
        if self._use.out is None:
            return y
        return y * vectors[0][picks[self._use.out[0]]]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, follows widths of {', '.join(map(repr, self._use.archs))}"


def _index(kept: list[int] | None, device: torch.device) -> int | torch.Tensor | None:
    if kept is None:
        return None
    if kept == list(range(len(kept))):
        return len(kept)
    return torch.tensor(kept, dtype=torch.long, device=device)


class SlicedConv2d(_FollowsWidths, nn.Conv2d):
    """``nn.Conv2d`` at the largest widths, run with the rows (outputs) and columns (inputs) of the
    picked widths; a depthwise conv keeps its picked channels."""

    def forward(self, x: torch.Tensor, *vectors: torch.Tensor) -> torch.Tensor:
        picks = self._picks(vectors)
        d0, d1 = self._dims(picks, x.device)
        weight = _take(_take(self.weight, 0, d0), 1, d1)
        groups = weight.shape[0] if self._use.channelwise else self.groups
        y = F.conv2d(x, weight, _take(self.bias, 0, d0), self.stride, self.padding, self.dilation, groups)
        return self._scaled(y, picks, vectors)


class SlicedLinear(_FollowsWidths, nn.Linear):
    """``nn.Linear`` at the largest widths, run with the rows and columns of the picked widths."""

    def forward(self, x: torch.Tensor, *vectors: torch.Tensor) -> torch.Tensor:
        picks = self._picks(vectors)
        d0, d1 = self._dims(picks, x.device)
        y = F.linear(x, _take(_take(self.weight, 0, d0), 1, d1), _take(self.bias, 0, d0))
        return self._scaled(y, picks, vectors)


class _SlicedNorm(_FollowsWidths):
    """BatchNorm over the picked channels: weights and running statistics of those channels (OFA's
    dynamic BatchNorm). A prefix of the channels is a view, updated in place; channels picked from
    several segments (after a concat) are gathered and their statistics written back."""

    def forward(self, x: torch.Tensor, *vectors: torch.Tensor) -> torch.Tensor:
        picks = self._picks(vectors)
        keep, _ = self._dims(picks, x.device)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        mean = _take(self.running_mean, 0, keep) if track else None
        var = _take(self.running_var, 0, keep) if track else None
        y = F.batch_norm(x, mean, var, _take(self.weight, 0, keep), _take(self.bias, 0, keep), use_batch, factor,
                         self.eps)
        if isinstance(keep, torch.Tensor) and self.training and mean is not None:
            with torch.no_grad():
                self.running_mean.index_copy_(0, keep, mean)
                self.running_var.index_copy_(0, keep, var)
        return y


class SlicedBatchNorm2d(_SlicedNorm, nn.BatchNorm2d):
    pass


class SlicedBatchNorm1d(_SlicedNorm, nn.BatchNorm1d):
    pass


#: The sampled-mode layer standing for each module class an op lowers to when width choices slice its weights.
SLICED_MODULES: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv2d: SlicedConv2d, nn.Linear: SlicedLinear, nn.BatchNorm2d: SlicedBatchNorm2d,
    nn.BatchNorm1d: SlicedBatchNorm1d,
}


# -- samplers --------------------------------------------------------------------------------
class Sampler(nn.Module):
    """Turns an architecture parameter into a per-forward weight vector for sampled mode.

    Called once per forward for each parameter, so every choice tied to it sees the same pick.
    """

    def forward(self, alpha: torch.Tensor, name: str) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class UniformSampler(Sampler):
    """Single-path one-shot (SPOS, DNA): a uniformly random path, no gradient to alpha."""

    def __init__(self, generator: torch.Generator | None = None):
        super().__init__()
        self.generator = generator

    def forward(self, alpha: torch.Tensor, name: str) -> torch.Tensor:
        idx = torch.randint(alpha.numel(), (1,), generator=self.generator).item()
        return F.one_hot(torch.tensor(idx), alpha.numel()).to(alpha.dtype).to(alpha.device)


class GumbelSampler(Sampler):
    """GDAS: hard Gumbel-softmax with a straight-through gradient to alpha."""

    def __init__(self, tau: float = 10.0):
        super().__init__()
        self.tau = tau

    def forward(self, alpha: torch.Tensor, name: str) -> torch.Tensor:
        return F.gumbel_softmax(alpha, tau=self.tau, hard=True)


class FixedSampler(Sampler):
    """Always the given path: ``{arch name: candidate index}``; used to rate or train one path."""

    def __init__(self, arch: Mapping[str, int]):
        super().__init__()
        self.arch = dict(arch)

    def forward(self, alpha: torch.Tensor, name: str) -> torch.Tensor:
        return F.one_hot(torch.tensor(self.arch[name]), alpha.numel()).to(alpha.dtype).to(alpha.device)
