"""Primitive operations: one typed attribute model per op type.

Each model knows its positional DSL arguments (``positional``), its output shape for a given input
shape, its cost (parameters and multiply-accumulates) and the torch call that runs it
(``torch_call``). Facts about an op type that passes, statistics and lowering ask about are
class-level *traits* declared once on its class (see ``OpAttrs``), never string sets of op names.
Shapes exclude the batch dimension: feature maps are ``[C, H, W]``, flat features ``[F]``.

Attribute value ranges are declared on the fields (``Positive``, ``Padding``, ``Field(gt=0)``), so an
out-of-range attribute fails where the model is built: at its DSL text, at its JSON path when an IR
file is loaded, and in the verifier for attributes a pass built without validation.

FLOPs throughout nasir are multiply-accumulates (MACs), the unit NAS papers (DARTS, DNA, DANCE)
report as "FLOPs".
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Shape = list[int]

#: A count or a size that torch needs at least 1 of: channels, features, kernel, stride, dilation, groups.
Positive = Annotated[int, Field(ge=1)]
#: Explicit zero-padding on each side; ``None`` is the op's default ('same' for odd kernels).
Padding = Annotated[int, Field(ge=0)] | None


class ShapeError(ValueError):
    """Raised by shape rules; the verifier turns it into a located ``VerificationError``."""


def _conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out <= 0:
        raise ShapeError(f"spatial size {size} too small for kernel {kernel} (dilation {dilation})")
    return out


def _need_map(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{op} expects a feature map [C, H, W], got {shape}")
    return shape[0], shape[1], shape[2]


@dataclass(frozen=True)
class TorchCall:
    """What lowering emits for an op, as data: the IR layer imports no torch, ``nasir.lowering`` resolves it.

    ``target`` is a dotted path. An ``nn.Module`` class (``torch.nn.Conv2d``, ``nasir.runtime.Zero``)
    is built as ``target(*args, **kwargs)``, installed under the node's path and called on the input;
    a ``torch.Tensor`` method (``torch.Tensor.mean``) is called on the input as ``x.mean(*args)``; any
    other function as ``target(x, *args, **kwargs)``. ``None``: the op is its input, nothing is emitted.
    """

    target: str | None
    args: tuple = ()
    kwargs: Mapping[str, object] = field(default_factory=dict)


class OpAttrs(BaseModel):
    """Attributes of one primitive; subclasses declare the op's traits as class variables.

    Traits are facts about the op type whatever its attributes; where an attribute matters (a
    BatchNorm without affine weights has no parameters) ask the instance (``params``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: DSL arguments that may be given by position, in order.
    positional: ClassVar[tuple[str, ...]] = ()
    #: A linear map of its input (bias aside): a weighted sum of its outputs is its output on the
    #: weighted sum, so sharing it after a mixture is exact (trailing PMS).
    linear: ClassVar[bool] = False
    #: Holds no learnable weights for any attributes (``bn`` does not qualify: affine BatchNorm has weights).
    parameter_free: ClassVar[bool] = False
    #: Counted as a convolution module by TopoNAS statistics: learned weights on a window or a dense map.
    conv_like: ClassVar[bool] = False
    #: Computes nothing worth a module (it is its input, a constant or a view): module counts skip it.
    computes_nothing: ClassVar[bool] = False
    #: Never the shared module of PMS/FMS: sharing it would save nothing.
    never_shared: ClassVar[bool] = False
    #: Output channel c depends on input channel c alone (and there are as many): channel pruning
    #: passes through it.
    channelwise: ClassVar[bool] = False
    #: A channelwise op that maps an all-zero channel to an all-zero channel, so a pruned channel
    #: stays zero after it; a channelwise op without this trait needs a DANCE gate after it.
    zero_preserving: ClassVar[bool] = False
    #: The attribute a width choice may choose (the op's output channels or features): its weights
    #: are sliced along it. ``None``: the op's output width cannot be a choice.
    width_attr: ClassVar[str | None] = None

    def torch_call(self, shape: Shape) -> TorchCall:
        """How lowering runs the op on an input of ``shape``; every op class declares it."""
        raise NotImplementedError(f"op {type(self).__name__} declares no torch_call")

    def out_shape(self, shape: Shape) -> Shape:
        """The input's shape, of any rank."""
        return list(shape)

    def params(self, shape: Shape) -> int:
        return 0

    def macs(self, shape: Shape) -> int:
        return 0

    def signature(self) -> str:
        """``conv(16, 3, stride=2)``-style text used by printers and summaries."""
        fields = self.model_dump(exclude={"op"})
        items = [f"{k}={_fmt(v)}" for k, v in fields.items() if v != type(self).model_fields[k].default]
        return f"{self.op}({', '.join(items)})" if items else self.op  # type: ignore[attr-defined]


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Conv(OpAttrs):
    """Dense (or grouped) 2-d convolution; padding defaults to 'same' for odd kernels.

    ``bias=true`` adds a learned per-channel bias (NAS-Bench-201's search cells use one, before a
    BatchNorm without affine weights); it counts ``out_channels`` parameters but no MACs."""

    op: Literal["conv"] = "conv"
    out_channels: Positive
    kernel: Positive = 1
    stride: Positive = 1
    padding: Padding = None
    dilation: Positive = 1
    groups: Positive = 1
    bias: bool = False
    positional: ClassVar[tuple[str, ...]] = ("out_channels", "kernel", "stride")
    linear: ClassVar[bool] = True
    conv_like: ClassVar[bool] = True
    width_attr: ClassVar[str | None] = "out_channels"  # dense convs only (groups = 1; the verifier checks)

    @property
    def pad(self) -> int:
        return self.dilation * (self.kernel - 1) // 2 if self.padding is None else self.padding

    def out_shape(self, shape: Shape) -> Shape:
        """``[C, H, W]`` -> ``[out_channels, H', W']``, ``H' = (H + 2 padding - dilation (kernel - 1) - 1) // stride + 1``
        (likewise ``W'``); ``groups`` must divide ``C`` and ``out_channels``."""
        c, h, w = _need_map(shape, "conv")
        if c % self.groups or self.out_channels % self.groups:
            raise ShapeError(f"conv groups={self.groups} must divide {c} input and {self.out_channels} output channels")
        return [
            self.out_channels,
            _conv_out(h, self.kernel, self.stride, self.pad, self.dilation),
            _conv_out(w, self.kernel, self.stride, self.pad, self.dilation),
        ]

    def params(self, shape: Shape) -> int:
        c = shape[0]
        return self.out_channels * (c // self.groups) * self.kernel**2 + (self.out_channels if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        o, h, w = self.out_shape(shape)
        return o * h * w * (shape[0] // self.groups) * self.kernel**2

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.nn.Conv2d", (shape[0], self.out_channels, self.kernel, self.stride, self.pad,
                                             self.dilation, self.groups), {"bias": self.bias})


class DWConv(OpAttrs):
    """Depthwise convolution: one k x k filter per channel (groups = channels)."""

    op: Literal["dwconv"] = "dwconv"
    kernel: Positive = 3
    stride: Positive = 1
    dilation: Positive = 1
    padding: Padding = None
    bias: bool = False
    positional: ClassVar[tuple[str, ...]] = ("kernel", "stride")
    linear: ClassVar[bool] = True
    conv_like: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    zero_preserving: ClassVar[bool] = True  # exactly so when bias-free (the default); bias is not looked at

    @property
    def pad(self) -> int:
        return self.dilation * (self.kernel - 1) // 2 if self.padding is None else self.padding

    def out_shape(self, shape: Shape) -> Shape:
        """``[C, H, W]`` -> ``[C, H', W']``, ``H'`` and ``W'`` as for ``conv``."""
        c, h, w = _need_map(shape, "dwconv")
        return [
            c,
            _conv_out(h, self.kernel, self.stride, self.pad, self.dilation),
            _conv_out(w, self.kernel, self.stride, self.pad, self.dilation),
        ]

    def params(self, shape: Shape) -> int:
        return shape[0] * self.kernel**2 + (shape[0] if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        c, h, w = self.out_shape(shape)
        return c * h * w * self.kernel**2

    def torch_call(self, shape: Shape) -> TorchCall:
        c = shape[0]
        return TorchCall("torch.nn.Conv2d", (c, c, self.kernel, self.stride, self.pad, self.dilation),
                         {"groups": c, "bias": self.bias})


class Linear(OpAttrs):
    """Fully connected layer on flat features."""

    op: Literal["linear"] = "linear"
    out_features: Positive
    bias: bool = True
    positional: ClassVar[tuple[str, ...]] = ("out_features",)
    linear: ClassVar[bool] = True
    conv_like: ClassVar[bool] = True
    width_attr: ClassVar[str | None] = "out_features"

    def out_shape(self, shape: Shape) -> Shape:
        """``[F]`` -> ``[out_features]``."""
        if len(shape) != 1:
            raise ShapeError(f"linear expects flat features [F], got {shape}; add flatten or global_avg_pool")
        return [self.out_features]

    def params(self, shape: Shape) -> int:
        return shape[0] * self.out_features + (self.out_features if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        return shape[0] * self.out_features

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.nn.Linear", (shape[0], self.out_features), {"bias": self.bias})


class BatchNorm(OpAttrs):
    """Batch normalization; ``affine`` adds a learned scale and shift per channel.

    ``track_running_stats=false`` keeps no running statistics: the layer normalizes with the
    statistics of the batch it sees, in evaluation too (NAS-Bench-201's search cells, where running
    statistics gathered over a mixture of candidates would describe none of them). ``momentum``
    then has nothing to weigh and may not be given."""

    op: Literal["bn"] = "bn"
    affine: bool = True
    eps: Annotated[float, Field(gt=0)] = 1e-5
    #: Weight of the batch statistics in the running ones: a fraction.
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    track_running_stats: bool = True
    channelwise: ClassVar[bool] = True

    @field_validator("track_running_stats")
    @classmethod
    def _momentum_needs_running_stats(cls, track: bool, info: ValidationInfo) -> bool:
        """``false`` keeps no running statistics, so ``momentum`` may not be given with it."""
        momentum = info.data.get("momentum")  # absent when the momentum itself was invalid
        if not track and momentum is not None and momentum != cls.model_fields["momentum"].default:
            raise ValueError(f"false leaves momentum={momentum} nothing to weigh (no running statistics are kept); "
                             "leave momentum out")
        return track

    def out_shape(self, shape: Shape) -> Shape:
        """Unchanged; the input is ``[C, H, W]`` or ``[F]``."""
        if len(shape) not in (1, 3):
            raise ShapeError(f"bn expects [C, H, W] or [F], got {shape}")
        return list(shape)

    def params(self, shape: Shape) -> int:
        return 2 * shape[0] if self.affine else 0

    def torch_call(self, shape: Shape) -> TorchCall:
        norm = "torch.nn.BatchNorm2d" if len(shape) == 3 else "torch.nn.BatchNorm1d"
        return TorchCall(norm, (shape[0],), {"eps": self.eps, "momentum": self.momentum, "affine": self.affine,
                                             "track_running_stats": self.track_running_stats})


class _Activation(OpAttrs):
    """A pointwise nonlinearity without attributes: lowered to one torch function (``function``)."""

    function: ClassVar[str]
    parameter_free: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall(self.function)


class ReLU(_Activation):
    """``max(x, 0)``."""

    op: Literal["relu"] = "relu"
    function: ClassVar[str] = "torch.relu"
    zero_preserving: ClassVar[bool] = True


class ReLU6(_Activation):
    """``min(max(x, 0), 6)`` (MobileNet, the DNA MBConv space)."""

    op: Literal["relu6"] = "relu6"
    function: ClassVar[str] = "torch.nn.functional.relu6"
    zero_preserving: ClassVar[bool] = True


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    op: Literal["sigmoid"] = "sigmoid"
    function: ClassVar[str] = "torch.sigmoid"


class Identity(OpAttrs):
    """Its input unchanged (DARTS' 'skip_connect' at stride 1)."""

    op: Literal["identity"] = "identity"
    linear: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True
    computes_nothing: ClassVar[bool] = True
    never_shared: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    zero_preserving: ClassVar[bool] = True

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall(None)


class Zero(OpAttrs):
    """The DARTS 'none' operation: zeros with the (strided) shape of the input."""

    op: Literal["zero"] = "zero"
    stride: Positive = 1
    positional: ClassVar[tuple[str, ...]] = ("stride",)
    linear: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True
    computes_nothing: ClassVar[bool] = True
    never_shared: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    zero_preserving: ClassVar[bool] = True

    def out_shape(self, shape: Shape) -> Shape:
        """Unchanged at stride 1; ``[C, H, W]`` -> ``[C, ceil(H / stride), ceil(W / stride)]`` otherwise."""
        if self.stride == 1:
            return list(shape)
        c, h, w = _need_map(shape, "zero")
        return [c, (h + self.stride - 1) // self.stride, (w + self.stride - 1) // self.stride]

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("nasir.runtime.Zero", (self.stride,))


class _Pool(OpAttrs):
    kernel: Positive = 3
    stride: Positive = 1
    padding: Padding = None
    positional: ClassVar[tuple[str, ...]] = ("kernel", "stride")
    parameter_free: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    zero_preserving: ClassVar[bool] = True

    @field_validator("padding")
    @classmethod
    def _at_most_half_the_kernel(cls, padding: int | None, info: ValidationInfo) -> int | None:
        """At most ``kernel // 2``, as torch's pools require."""
        kernel = info.data.get("kernel")  # absent when the kernel itself was invalid
        if padding is not None and kernel is not None and padding > kernel // 2:
            raise ValueError(f"must be at most half the kernel ({kernel} // 2 = {kernel // 2}), as torch pools require")
        return padding

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding

    def out_shape(self, shape: Shape) -> Shape:
        """``[C, H, W]`` -> ``[C, H', W']``, ``H'`` as for ``conv`` with dilation 1; unset padding is ``kernel // 2``."""
        c, h, w = _need_map(shape, self.op)  # type: ignore[attr-defined]
        return [c, _conv_out(h, self.kernel, self.stride, self.pad, 1), _conv_out(w, self.kernel, self.stride, self.pad, 1)]

    def macs(self, shape: Shape) -> int:
        c, h, w = self.out_shape(shape)
        return c * h * w * self.kernel**2


class MaxPool(_Pool):
    """Maximum over each ``kernel`` x ``kernel`` window."""

    op: Literal["max_pool"] = "max_pool"

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.nn.MaxPool2d", (self.kernel, self.stride, self.pad))


class AvgPool(_Pool):
    """Mean over each ``kernel`` x ``kernel`` window; ``count_include_pad = false`` leaves padding out of the
    mean (DARTS' pools)."""

    op: Literal["avg_pool"] = "avg_pool"
    count_include_pad: bool = True
    linear: ClassVar[bool] = True

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.nn.AvgPool2d", (self.kernel, self.stride, self.pad),
                         {"count_include_pad": self.count_include_pad})


class GlobalAvgPool(OpAttrs):
    """Average over H and W, giving flat features [C]."""

    op: Literal["global_avg_pool"] = "global_avg_pool"
    linear: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    zero_preserving: ClassVar[bool] = True

    def out_shape(self, shape: Shape) -> Shape:
        """``[C, H, W]`` -> ``[C]``."""
        c, _, _ = _need_map(shape, "global_avg_pool")
        return [c]

    def macs(self, shape: Shape) -> int:
        return shape[0] * shape[1] * shape[2]

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.Tensor.mean", ((2, 3),))


class Flatten(OpAttrs):
    """All dimensions but the batch's as one (a view, no computation)."""

    op: Literal["flatten"] = "flatten"
    linear: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True
    computes_nothing: ClassVar[bool] = True

    def out_shape(self, shape: Shape) -> Shape:
        """Any shape -> ``[product of its sizes]``."""
        total = 1
        for s in shape:
            total *= s
        return [total]

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.flatten", (1,))


class FactorizedReduce(OpAttrs):
    """DARTS' stride-2 reduction: relu, two offset 1x1 stride-2 convs concatenated, then BN.

    A primitive because its second branch reads the input shifted by one pixel, which no other
    op expresses; it matches ``FactorizedReduce`` of the DARTS reference code.
    """

    op: Literal["factorized_reduce"] = "factorized_reduce"
    out_channels: Positive
    affine: bool = True
    positional: ClassVar[tuple[str, ...]] = ("out_channels",)
    conv_like: ClassVar[bool] = True

    @field_validator("out_channels")
    @classmethod
    def _even(cls, out_channels: int) -> int:
        """Even: its two convs give half the channels each."""
        if out_channels % 2:
            raise ValueError(f"must be even ({out_channels} given): its two convs give half the channels each")
        return out_channels

    def out_shape(self, shape: Shape) -> Shape:
        """``[C, H, W]`` -> ``[out_channels, ceil(H / 2), ceil(W / 2)]``, as every stride-2 candidate beside it gives
        (see ``nasir.runtime.FactorizedReduce``)."""
        c, h, w = _need_map(shape, "factorized_reduce")
        return [self.out_channels, (h + 1) // 2, (w + 1) // 2]

    def params(self, shape: Shape) -> int:
        conv = 2 * shape[0] * (self.out_channels // 2)
        return conv + (2 * self.out_channels if self.affine else 0)

    def macs(self, shape: Shape) -> int:
        _, h, w = self.out_shape(shape)
        return shape[0] * self.out_channels * h * w

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("nasir.runtime.FactorizedReduce", (shape[0], self.out_channels, self.affine))


class DropPath(OpAttrs):
    """DARTS' drop path: in training, zeroes the whole output of a sample with a probability the
    trainer sets (``nasir.runtime.set_drop_path``, raised each epoch) and scales the kept ones by
    ``1 / (1 - p)``; the identity in evaluation. The DARTS evaluation cell puts one after every
    operation that is not the identity."""

    op: Literal["drop_path"] = "drop_path"
    parameter_free: ClassVar[bool] = True
    #: The identity in evaluation and on its input, nothing for statistics and sharing to count.
    computes_nothing: ClassVar[bool] = True
    never_shared: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    zero_preserving: ClassVar[bool] = True

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("nasir.runtime.DropPath")


class ChannelSlice(OpAttrs):
    """Channels ``start`` .. ``stop - 1`` of a feature map (or of flat features): a view, no copy.

    The ``partial-channel`` pass (PC-DARTS) splits an edge's input with two of them: the first 1/k
    of the channels go through the candidates, the rest bypass them.
    """

    op: Literal["channel_slice"] = "channel_slice"
    #: the first channel kept
    start: Annotated[int, Field(ge=0)] = 0
    #: one past the last channel kept
    stop: Positive
    positional: ClassVar[tuple[str, ...]] = ("start", "stop")
    linear: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True
    computes_nothing: ClassVar[bool] = True
    never_shared: ClassVar[bool] = True

    @field_validator("stop")
    @classmethod
    def _after_start(cls, stop: int, info: ValidationInfo) -> int:
        """Greater than ``start`` (a slice keeps at least one channel)."""
        start = info.data.get("start")
        if start is not None and stop <= start:
            raise ValueError(f"must be greater than start ({start}): a slice keeps at least one channel")
        return stop

    def out_shape(self, shape: Shape) -> Shape:
        """``[C, ...]`` -> ``[stop - start, ...]``; ``stop`` is at most C."""
        if self.stop > shape[0]:
            raise ShapeError(f"channel_slice up to {self.stop} of {shape[0]} channels")
        return [self.stop - self.start, *shape[1:]]

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.Tensor.narrow", (1, self.start, self.stop - self.start))


class ChannelShuffle(OpAttrs):
    """ShuffleNet's channel shuffle: the C channels seen as ``[groups, C / groups]``, transposed, so
    channel ``g * (C / groups) + j`` moves to ``j * groups + g``. PC-DARTS shuffles after every
    partial-channel edge, so that the next edge sends other channels through its candidates."""

    op: Literal["channel_shuffle"] = "channel_shuffle"
    #: the number of channel groups interleaved (PC-DARTS: k)
    groups: Positive
    positional: ClassVar[tuple[str, ...]] = ("groups",)
    linear: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True
    computes_nothing: ClassVar[bool] = True
    never_shared: ClassVar[bool] = True

    def out_shape(self, shape: Shape) -> Shape:
        """Unchanged; a feature map whose channels ``groups`` divides."""
        c, _, _ = _need_map(shape, "channel_shuffle")
        if c % self.groups:
            raise ShapeError(f"channel_shuffle into {self.groups} groups of {c} channels (not divisible)")
        return list(shape)

    def torch_call(self, shape: Shape) -> TorchCall:
        return TorchCall("torch.nn.ChannelShuffle", (self.groups,))


#: Every primitive, once: the IR's discriminated union and the DSL's name table are built from it.
OP_CLASSES: tuple[type[OpAttrs], ...] = (
    Conv, DWConv, Linear, BatchNorm, ReLU, ReLU6, Sigmoid, Identity, Zero, MaxPool, AvgPool, GlobalAvgPool, Flatten,
    FactorizedReduce, DropPath, ChannelSlice, ChannelShuffle,
)

#: ``Conv | DWConv | ...``, discriminated by ``op``.
OpAttrsUnion = Annotated[functools.reduce(operator.or_, OP_CLASSES), Field(discriminator="op")]

#: DSL name -> attribute model. ``pwconv(C)`` is sugar for ``conv(C, 1)``.
PRIMITIVES: dict[str, type[OpAttrs]] = {cls.model_fields["op"].default: cls for cls in OP_CLASSES}
