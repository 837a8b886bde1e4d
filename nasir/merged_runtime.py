"""Merged convolutions in supernet and sampled lowerings: each computed in its form, kernels built in batches.

``MergedChoice`` holds the same parameters under the same names as ``nasir.runtime.MergedConv`` (so
weights carry over and checkpoints load either way) and computes sum_i w_i O_i(x) in the form
``nasir.ir.merge_forms`` describes, chosen per device kind (``forms``: the IR's ``form``, or the cost
model's pick for CPU and for CUDA). Every form is exact; with ``normalize`` every learnable
candidate's reparameterized kernel is normalized as ``nasir.kernels.reference`` defines it.

Depthwise -> pointwise candidates (and the fixed kernels that join them) are computed in plain
PyTorch, and what their convolutions need (the dense kernel, or the stacked depthwise kernels and
the weight-scaled pointwise matrix) is built by :func:`prepare` with a handful of batched ops for
*every* merged conv of the network that has the same signature (candidates, channels, form): in a
supernet lowering one ``MergeBank`` per signature stacks all their kernels, computes all their
derived weights with one matrix product, normalizes all their products at once (mean and second
moment of PW[o, c] DW[c] from two matrix products over the taps, without building the product),
embeds all depthwise kernels in K x K with one product by a constant 0/1 placement matrix, and hands
each merged conv its share. The mean that normalization subtracts is a box filter on the channel sum
of x, which the grouped and separate forms add as extra input channels of their pointwise convolution.

Other merged convs (dense or grouped convolution candidates) build their kernels themselves: the
dense form calls the fused ``nasir.kernels`` op (Triton on CUDA), the separate form runs one
convolution per candidate. Sampled mode runs only the candidate holding the sampled index, scaled by
its weight (as ``ChoiceModule`` does), or zeros when the index belongs to a dropped zero candidate.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from nasir.ir.graph import Graph
from nasir.ir.merge_forms import DEVICE_KINDS, choose_form
from nasir.ir.nodes import MergedConvNode
from nasir.kernels.reference import footprint, normalize_kernel
from nasir.runtime import MergedConv, derived_weights, weight_matrices

#: Below this the variance of a normalized product counts as 0 (its gradient is then dropped
#: instead of being 0/0), as ``reference.standardize_backward`` does for a constant filter.
_TINY_VARIANCE = 1e-30
_EPS = 1e-5


def slot_order(specs: Sequence[dict]) -> list[int]:
    """Candidates in the order the batched kernels hold them: learnable ones first, then fixed ones."""
    return [i for i, s in enumerate(specs) if s["source"] == "conv"] + \
        [i for i, s in enumerate(specs) if s["source"] != "conv"]


def _factorized_constants(module: nn.Module, specs: Sequence[dict], c_in: int, c_out: int, normalize: bool) -> None:
    """Register, as non-persistent buffers of ``module`` (they follow ``.to()`` and ``.double()`` but stay
    out of state dicts), the constants of depthwise -> pointwise candidates in :func:`slot_order`:
    ``place`` (tap -> position in K x K), ``member`` (tap -> candidate), ``box`` (each learnable
    candidate's taps in K x K, [L, 1, K, K]), ``ones`` (fixed depthwise taps), ``eye`` (their pointwise),
    ``fan_in`` and ``normalized`` of each candidate."""
    order = [specs[i] for i in slot_order(specs)]
    K = footprint([s["kernel"] for s in order], [s["dilation"] for s in order])
    taps = [s["kernel"] ** 2 for s in order]
    n, total = len(order), sum(taps)
    place = torch.zeros(total, n, K * K)
    member = torch.zeros(total, n)
    start = 0
    for i, s in enumerate(order):
        k, d = s["kernel"], s["dilation"]
        off = (K - d * (k - 1) - 1) // 2
        for t in range(k * k):
            place[start + t, i, (off + d * (t // k)) * K + off + d * (t % k)] = 1.0
        member[start : start + k * k, i] = 1.0
        start += k * k
    learnable = sum(s["source"] == "conv" for s in order)
    module.register_buffer("_place", place.view(total, n * K * K), persistent=False)
    module.register_buffer("_member", member, persistent=False)
    module.register_buffer("_box", place.sum(0)[:learnable].view(learnable, 1, K, K), persistent=False)
    module.register_buffer("_ones", torch.ones(c_in, total), persistent=False)
    module.register_buffer("_eye", torch.eye(c_out, c_in), persistent=False)
    # a product of one number (one channel, one tap) is not normalized (reference.single_tap)
    module.register_buffer("_fan_in", torch.tensor([float(c_in * t) for t in taps]), persistent=False)
    normalized = [s["source"] == "conv" and normalize and c_in * t > 1 for s, t in zip(order, taps)]
    module.register_buffer("_normalized", torch.tensor(normalized), persistent=False)
    module._boxed = any(normalized)  # a Python bool: reading the buffer would wait for the device


class _Batch:
    """The stacked inputs of :func:`prepare` for E merged convs of one signature, in slot order."""

    def __init__(self, consts: nn.Module, specs: Sequence[dict], kernels: Sequence[Sequence[torch.Tensor]],
                 pointwise: Sequence[Sequence[torch.Tensor]]):
        order = [specs[i] for i in slot_order(specs)]
        E, learnable = len(kernels), len(kernels[0])
        parts = [torch.stack([ks[j] for ks in kernels]).flatten(2) for j in range(learnable)]  # [E, C, s^2] each
        start = sum(s["kernel"] ** 2 for s in order[:learnable])
        for s in order[learnable:]:  # identity: a 1x1 tap of 1; uniform pool: 1 / k^2 on every tap
            t = s["kernel"] ** 2
            part = consts._ones[:, start : start + t]
            parts.append((part if s["source"] == "identity" else part * (1.0 / t)).expand(E, -1, -1))
            start += t
        self.taps = torch.cat(parts, 2) if len(parts) > 1 else parts[0]  # [E, C, sum of taps]
        mats = torch.stack([p for ps in pointwise for p in ps]).view(E, learnable, *consts._eye.shape)
        if len(order) > learnable:
            mats = torch.cat([mats, consts._eye.expand(E, len(order) - learnable, -1, -1)], 1)
        self.mats = mats  # [E, n, O, C]


def prepare(consts: nn.Module, form: str, weights: torch.Tensor, batch: _Batch, K: int) -> list[torch.Tensor]:
    """What the convolutions of E merged convs (depthwise -> pointwise candidates) need, batched over E.

    ``weights`` [E, n] are the candidates' derived weights in slot order. Returns, stacked over E:
    dense ``[W]`` (the merged kernel, [E, O, C, K, K]); grouped ``[D, P]`` (the depthwise kernels
    [E, C n, 1, K, K], channel c n + i, and the pointwise matrix [E, O, C n (+ L), 1, 1]); separate
    ``[P]`` (the pointwise matrix [E, O, n C (+ L), 1, 1] over the candidates' depthwise outputs in slot
    order). The "+ L" columns, with normalization, weigh the box channels of the L learnable
    candidates (``MergedChoice._boxes``).
    """
    taps, mats = batch.taps, batch.mats
    E, n, O, C = mats.shape
    scale = weights[:, :, None]
    shift = None
    if consts._boxed:
        # mean and second moment over (c, taps) of each output filter of PW_i[o, c] DW_i[c]
        sums = (taps @ consts._member).transpose(1, 2)[:, :, None, :]  # [E, n, 1, C]
        squares = ((taps * taps) @ consts._member).transpose(1, 2)[:, :, None, :]
        mean = (mats * sums).sum(-1) / consts._fan_in[:, None]  # [E, n, O]
        var = (mats * mats * squares).sum(-1) / consts._fan_in[:, None] - mean * mean
        norm = consts._fan_in.rsqrt()[:, None] / (var.clamp_min(_TINY_VARIANCE).sqrt() + _EPS)
        mask = consts._normalized[:, None]
        scale = torch.where(mask, norm, 1.0) * scale
        learnable = consts._box.shape[0]
        shift = torch.where(mask, mean, 0.0)[:, :learnable] * scale[:, :learnable]  # [E, L, O]
    pe = scale[..., None] * mats  # [E, n, O, C]: the weight-scaled (normalized) pointwise matrices
    if form == "dense":
        emb = (taps @ consts._place).view(E, C, n, K * K)
        W = (pe.permute(0, 3, 2, 1) @ emb).transpose(1, 2)  # [E, O, C, K*K]
        if shift is not None:
            W = W - (shift.transpose(1, 2) @ consts._box.view(-1, K * K))[:, :, None, :]
        return [W.reshape(E, O, C, K, K)]
    if form == "grouped":
        depthwise = (taps @ consts._place).view(E, C * n, 1, K, K)
        pointwise = pe.permute(0, 2, 3, 1).reshape(E, O, C * n)
    else:
        depthwise = None
        pointwise = pe.permute(0, 2, 1, 3).reshape(E, O, n * C)
    if shift is not None:
        pointwise = torch.cat([pointwise, -shift.transpose(1, 2)], 2)
    pointwise = pointwise[..., None, None]
    return [pointwise] if depthwise is None else [depthwise, pointwise]


def _form(forms: Mapping[str, str], device: torch.device) -> str:
    """The form for ``device``'s kind (other kinds than CPU and CUDA: the CPU form)."""
    return forms.get(device.type, forms["cpu"])


class MergeBank(nn.Module):
    """Builds what E merged convs of one signature need, in one batch (:func:`prepare`).

    ``forward(*vectors, *params)``: the probability vectors of the architecture parameters the members
    use, then each member's learnable kernels, each followed by its pointwise kernel (spec order).
    Returns, for each member, the tuple of tensors of its form (``prepare``).
    """

    def __init__(self, specs: list[dict], c_in: int, c_out: int, normalize: bool, covers: list[list[int]],
                 domain: list[int], arch_size: int, member_vectors: list[int], forms: Mapping[str, str]):
        super().__init__()
        self._specs = specs
        self._forms = dict(forms)
        self._members = len(member_vectors)
        self._K = footprint([s["kernel"] for s in specs], [s["dilation"] for s in specs])
        self._learnable = sum(s["source"] == "conv" for s in specs)
        _factorized_constants(self, specs, c_in, c_out, normalize)
        order = slot_order(specs)
        cover, dom = weight_matrices([covers[i] for i in order], domain, arch_size, torch.device("cpu"), torch.float32)
        self.register_buffer("_cover", cover.t().contiguous(), persistent=False)  # [m, n]
        self.register_buffer("_dom", dom.clone(), persistent=False)  # [m]
        self.register_buffer("_which", torch.tensor(member_vectors), persistent=False)  # member -> vector

    def forward(self, *args: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ...]:
        count = len(args) - 2 * self._learnable * self._members
        probs = torch.stack(args[:count])[self._which] if count > 1 else args[0].expand(self._members, -1)
        weights = (probs @ self._cover) / (probs @ self._dom)[:, None]  # [E, n] derived weights, slot order
        params = args[count:]
        step = 2 * self._learnable
        kernels = [params[e * step : (e + 1) * step : 2] for e in range(self._members)]
        pointwise = [params[e * step + 1 : (e + 1) * step : 2] for e in range(self._members)]
        out = prepare(self, _form(self._forms, probs.device), weights, _Batch(self, self._specs, kernels, pointwise),
                      self._K)
        per_member = [t.unbind(0) for t in out]
        return tuple(tuple(t[e] for t in per_member) for e in range(self._members))

    def extra_repr(self) -> str:
        return f"members={self._members}, forms={self._forms}"


class MergedChoice(MergedConv):
    """A merged convolution computed in the form picked for the device kind of its input.

    ``forms`` maps a device type (``"cpu"``, ``"cuda"``) to a form; other devices use the CPU form.
    ``mode`` is ``"supernet"`` (weighted sum of every candidate) or ``"sampled"`` (the sampled one).
    ``forward(x, p)`` takes the probability vector of its architecture parameter; in a supernet
    lowering a depthwise -> pointwise merged conv gets instead the tuple its ``MergeBank`` built.
    """

    def __init__(self, c_in: int, c_out: int, specs: list[dict], covers: list[list[int]], domain: list[int],
                 arch: str, stride: int, groups: int, normalize: bool, forms: Mapping[str, str], mode: str):
        super().__init__(c_in, c_out, specs, covers, domain, arch, stride, groups, normalize)
        self._forms = dict(forms)
        self._mode = mode
        if self._factorized:
            self._K = footprint([s["kernel"] for s in specs], [s["dilation"] for s in specs])
            self._order = slot_order(specs)
            _factorized_constants(self, specs, c_in, c_out, normalize)

    def learnable_parameters(self) -> list[nn.Parameter]:
        """Each learnable candidate's kernel then its pointwise kernel, in spec order (what a bank reads)."""
        return [p for s in self._specs if s["source"] == "conv"
                for p in (self.kernels[s["name"]], self.pointwise[s["name"]])]

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, p: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self._mode == "sampled":
            return self._sampled(x, p)
        form = _form(self._forms, x.device)
        if isinstance(p, tuple):  # built by the bank
            return self._convolve(x, form, list(p), range(len(self._specs)))
        if self._factorized:
            return self._convolve(x, form, self._prepare(form, derived_weights(p, self._covers, self._domain)),
                                  range(len(self._specs)))
        if form == "dense":
            return super().forward(x, p)  # the fused op: Triton on CUDA
        return self._separate_convs(x, derived_weights(p, self._covers, self._domain), range(len(self._specs)))

    def _prepare(self, form: str, weights: torch.Tensor) -> list[torch.Tensor]:
        """:func:`prepare` for this merged conv alone (``weights`` in spec order)."""
        params = self.learnable_parameters()
        batch = _Batch(self, self._specs, [params[0::2]], [params[1::2]])
        return [t[0] for t in prepare(self, form, weights[self._order][None], batch, self._K)]

    def _sampled(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        hot = int(torch.argmax(p.detach()))  # one path per forward: a host sync, as in ChoiceModule
        picked = [j for j, cover in enumerate(self._covers) if hot in cover]
        if not picked:  # a zero candidate the merge dropped
            size = [(n - 1) // self._stride + 1 for n in x.shape[2:]]
            return x.new_zeros(x.shape[0], self._c_out, *size)
        weights = derived_weights(p, self._covers, self._domain)
        if not self._factorized:
            return self._separate_convs(x, weights, picked)
        return self._convolve(x, "separate", self._prepare("separate", weights), [self._order.index(picked[0])])

    # -- depthwise -> pointwise candidates ----------------------------------------------------------
    def _convolve(self, x: torch.Tensor, form: str, prepared: list[torch.Tensor], slots) -> torch.Tensor:
        """The convolutions of ``form`` given what :func:`prepare` built; ``slots`` (slot order) limits
        the separate form to some candidates (sampled mode)."""
        K, stride = self._K, self._stride
        if form == "dense":
            return F.conv2d(x, prepared[0], stride=stride, padding=K // 2)
        n, C, learnable = len(self._specs), self._c_in, self._box.shape[0]
        slots = list(slots)
        if form == "grouped":
            parts = [F.conv2d(x, prepared[0], stride=stride, padding=K // 2, groups=C)]
            pointwise = prepared[1]
        else:
            parts = [self._depthwise(x, self._order[j]) for j in slots]
            pointwise = prepared[0]
            if len(slots) < n:  # sampled: the columns of the picked candidates (and of their box channels)
                cols = [j * C + c for j in slots for c in range(C)]
                pointwise = pointwise[:, cols + [n * C + j for j in slots if self._boxed and j < learnable]]
        if self._boxed:
            parts += self._boxes(x, [j for j in slots if j < learnable] if form == "separate" else range(learnable))
        z = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        return F.conv2d(z, pointwise)

    def _boxes(self, x: torch.Tensor, slots) -> list[torch.Tensor]:
        """Box filters of the learnable candidates in ``slots`` on the channel sum of x, [B, 1, H', W']
        each: the means normalization subtracts (``prepare``'s "+ L" columns weigh them). The images
        go in as the channels of one depthwise convolution per candidate (a CPU runs that several
        times faster than a convolution over one channel)."""
        b = x.shape[0]
        total = x.sum(1)[None]  # [1, B, H, W]
        out = []
        for j in slots:
            s = self._specs[self._order[j]]
            k, d = s["kernel"], s["dilation"]
            box = F.conv2d(total, x.new_ones(b, 1, k, k), stride=self._stride, padding=d * (k - 1) // 2, dilation=d,
                           groups=b)
            out.append(box.view(b, 1, *box.shape[2:]))
        return out

    def _depthwise(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Candidate i's depthwise part at its own size: its kernel, the input (identity), or the pool."""
        s = self._specs[i]
        k, d, stride = s["kernel"], s["dilation"], self._stride
        if s["source"] == "identity":
            return x[:, :, ::stride, ::stride] if stride > 1 else x
        if s["source"] == "avg_pool":
            return F.avg_pool2d(x, k, stride, k // 2, count_include_pad=True)
        return F.conv2d(x, self.kernels[s["name"]], stride=stride, padding=d * (k - 1) // 2, dilation=d,
                        groups=self._c_in)

    # -- other candidates ---------------------------------------------------------------------------
    def _separate_convs(self, x: torch.Tensor, weights: torch.Tensor, which) -> torch.Tensor:
        """sum over ``which`` of w_j O_j(x), one convolution (or the input, or a pool) each."""
        out = None
        for j in which:
            s = self._specs[j]
            k, d, stride = s["kernel"], s["dilation"], self._stride
            if s["source"] == "identity":
                y = x[:, :, ::stride, ::stride] if stride > 1 else x
            elif s["source"] == "avg_pool":
                y = F.avg_pool2d(x, k, stride, k // 2, count_include_pad=True)
            else:
                kernel = self.kernels[s["name"]]
                if self._normalize:
                    kernel = normalize_kernel(kernel, _EPS)
                y = F.conv2d(x, kernel, self.biases[s["name"]] if s["name"] in self.biases else None, stride=stride,
                             padding=d * (k - 1) // 2, dilation=d, groups=self._groups)
            y = weights[j] * y
            out = y if out is None else out + y
        return out

    def extra_repr(self) -> str:
        forms = ", ".join(f"{dev}:{form}" for dev, form in self._forms.items())
        return f"{super().extra_repr()}, mode={self._mode!r}, forms={{{forms}}}"


def node_forms(node: MergedConvNode, input_shape: list[int]) -> dict[str, str]:
    """Device kind -> form of ``node`` (input [C, H, W]): the IR's form, or the cost model's pick."""
    c_in, h, w = input_shape
    return {dev: node.form or choose_form(node, c_in, (h, w), dev) for dev in DEVICE_KINDS}


def merged_choice(node: MergedConvNode, input_shape: list[int], specs: list[dict], mode: str) -> MergedChoice:
    """The module of ``node`` in a supernet or sampled lowering."""
    return MergedChoice(input_shape[0], node.out_channels, specs, node.covers, node.domain, node.arch, node.stride,
                        node.groups, node.normalize, node_forms(node, input_shape), mode)


def _specs(node: MergedConvNode) -> list[dict]:
    """The candidate specs a merged conv module takes (ParameterDict keys as names)."""
    from nasir.module_names import module_name

    return [dict(k.model_dump(), name=module_name(k.name)) for k in node.kernels]


def emit_merge_banks(g: fx.Graph, root: nn.Module, graph: Graph, paths: Mapping[str, str],
                     vectors: Mapping[str, fx.Node]) -> dict[str, fx.Node]:
    """Supernet lowering: one ``MergeBank`` (at ``merge_banks.<i>``) per signature of the graph's
    depthwise -> pointwise merged convs, called once per forward. Returns, by module path, the
    node each of those merged convs takes instead of its probability vector."""
    from nasir.module_names import install

    groups: dict[tuple, list[tuple[str, MergedConvNode, list[int]]]] = {}
    for path, node, region in graph.walk():
        if isinstance(node, MergedConvNode) and any(k.pointwise for k in node.kernels):
            shape = region[node.inputs[0]].shape
            signature = (tuple((k.kernel, k.dilation, k.source) for k in node.kernels), shape[0], node.out_channels,
                         node.normalize, tuple(map(tuple, node.covers)), tuple(node.domain),
                         graph.arch[node.arch].size, tuple(sorted(node_forms(node, shape).items())))
            groups.setdefault(signature, []).append((paths[path], node, shape))
    prepared: dict[str, fx.Node] = {}
    for i, members in enumerate(groups.values()):
        first, shape = members[0][1], members[0][2]
        arches = sorted({node.arch for _, node, _ in members})
        bank = MergeBank(_specs(first), shape[0], first.out_channels, first.normalize, first.covers, first.domain,
                         graph.arch[first.arch].size, [arches.index(node.arch) for _, node, _ in members],
                         node_forms(first, shape))
        install(root, f"merge_banks.{i}", bank)
        params = [g.get_attr(f"{target}.{part}.{spec['name']}") for target, node, _ in members
                  for spec in _specs(node) if spec["source"] == "conv" for part in ("kernels", "pointwise")]
        call = g.create_node("call_module", f"merge_banks.{i}", tuple(vectors[a] for a in arches) + tuple(params),
                             name=f"merge_bank_{i}")
        for e, (target, _, _) in enumerate(members):
            prepared[target] = g.create_node("call_function", operator.getitem, (call, e), name=f"merge_bank_{i}_{e}")
    return prepared
