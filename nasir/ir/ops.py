"""Primitive operations: one typed attribute model per op type.

Each model knows its positional DSL arguments (``positional``), its output shape for a given input
shape, and its cost (parameters and multiply-accumulates). Shapes exclude the batch dimension:
feature maps are ``[C, H, W]``, flat features ``[F]``.

FLOPs throughout nasir are multiply-accumulates (MACs), the unit NAS papers (DARTS, DNA, DANCE)
report as "FLOPs".
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Shape = list[int]


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


class OpAttrs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    positional: ClassVar[tuple[str, ...]] = ()
    #: True when the op is a linear map of its input (used by kernel merging and trailing PMS).
    linear: ClassVar[bool] = False

    def out_shape(self, shape: Shape) -> Shape:
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
    """Dense (or grouped) 2-d convolution; padding defaults to 'same' for odd kernels."""

    op: Literal["conv"] = "conv"
    out_channels: int
    kernel: int = 1
    stride: int = 1
    padding: int | None = None
    dilation: int = 1
    groups: int = 1
    bias: bool = False
    positional: ClassVar[tuple[str, ...]] = ("out_channels", "kernel", "stride")
    linear: ClassVar[bool] = True

    @property
    def pad(self) -> int:
        return self.dilation * (self.kernel - 1) // 2 if self.padding is None else self.padding

    def out_shape(self, shape: Shape) -> Shape:
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


class DWConv(OpAttrs):
    """Depthwise convolution: one k x k filter per channel (groups = channels)."""

    op: Literal["dwconv"] = "dwconv"
    kernel: int = 3
    stride: int = 1
    dilation: int = 1
    padding: int | None = None
    bias: bool = False
    positional: ClassVar[tuple[str, ...]] = ("kernel", "stride")
    linear: ClassVar[bool] = True

    @property
    def pad(self) -> int:
        return self.dilation * (self.kernel - 1) // 2 if self.padding is None else self.padding

    def out_shape(self, shape: Shape) -> Shape:
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


class Linear(OpAttrs):
    op: Literal["linear"] = "linear"
    out_features: int
    bias: bool = True
    positional: ClassVar[tuple[str, ...]] = ("out_features",)
    linear: ClassVar[bool] = True

    def out_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ShapeError(f"linear expects flat features [F], got {shape}; add flatten or global_avg_pool")
        return [self.out_features]

    def params(self, shape: Shape) -> int:
        return shape[0] * self.out_features + (self.out_features if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        return shape[0] * self.out_features


class BatchNorm(OpAttrs):
    op: Literal["bn"] = "bn"
    affine: bool = True
    eps: float = 1e-5
    momentum: float = 0.1
    positional: ClassVar[tuple[str, ...]] = ()

    def out_shape(self, shape: Shape) -> Shape:
        if len(shape) not in (1, 3):
            raise ShapeError(f"bn expects [C, H, W] or [F], got {shape}")
        return list(shape)

    def params(self, shape: Shape) -> int:
        return 2 * shape[0] if self.affine else 0


class ReLU(OpAttrs):
    op: Literal["relu"] = "relu"


class ReLU6(OpAttrs):
    op: Literal["relu6"] = "relu6"


class Sigmoid(OpAttrs):
    op: Literal["sigmoid"] = "sigmoid"


class Identity(OpAttrs):
    op: Literal["identity"] = "identity"
    linear: ClassVar[bool] = True


class Zero(OpAttrs):
    """The DARTS 'none' operation: zeros with the (strided) shape of the input."""

    op: Literal["zero"] = "zero"
    stride: int = 1
    positional: ClassVar[tuple[str, ...]] = ("stride",)
    linear: ClassVar[bool] = True

    def out_shape(self, shape: Shape) -> Shape:
        if self.stride == 1:
            return list(shape)
        c, h, w = _need_map(shape, "zero")
        return [c, (h + self.stride - 1) // self.stride, (w + self.stride - 1) // self.stride]


class _Pool(OpAttrs):
    kernel: int = 3
    stride: int = 1
    padding: int | None = None
    positional: ClassVar[tuple[str, ...]] = ("kernel", "stride")

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = _need_map(shape, self.op)  # type: ignore[attr-defined]
        return [c, _conv_out(h, self.kernel, self.stride, self.pad, 1), _conv_out(w, self.kernel, self.stride, self.pad, 1)]

    def macs(self, shape: Shape) -> int:
        c, h, w = self.out_shape(shape)
        return c * h * w * self.kernel**2


class MaxPool(_Pool):
    op: Literal["max_pool"] = "max_pool"


class AvgPool(_Pool):
    op: Literal["avg_pool"] = "avg_pool"
    count_include_pad: bool = True


class GlobalAvgPool(OpAttrs):
    """Average over H and W, giving flat features [C]."""

    op: Literal["global_avg_pool"] = "global_avg_pool"

    def out_shape(self, shape: Shape) -> Shape:
        c, _, _ = _need_map(shape, "global_avg_pool")
        return [c]

    def macs(self, shape: Shape) -> int:
        return shape[0] * shape[1] * shape[2]


class Flatten(OpAttrs):
    op: Literal["flatten"] = "flatten"

    def out_shape(self, shape: Shape) -> Shape:
        total = 1
        for s in shape:
            total *= s
        return [total]


class FactorizedReduce(OpAttrs):
    """DARTS' stride-2 reduction: relu, two offset 1x1 stride-2 convs concatenated, then BN.

    A primitive because its second branch reads the input shifted by one pixel, which no other
    op expresses; it matches ``FactorizedReduce`` of the DARTS reference code.
    """

    op: Literal["factorized_reduce"] = "factorized_reduce"
    out_channels: int
    affine: bool = True
    positional: ClassVar[tuple[str, ...]] = ("out_channels",)

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = _need_map(shape, "factorized_reduce")
        if self.out_channels % 2:
            raise ShapeError(f"factorized_reduce needs an even channel count, got {self.out_channels}")
        return [self.out_channels, (h + 1) // 2, (w + 1) // 2]

    def params(self, shape: Shape) -> int:
        conv = 2 * shape[0] * (self.out_channels // 2)
        return conv + (2 * self.out_channels if self.affine else 0)

    def macs(self, shape: Shape) -> int:
        _, h, w = self.out_shape(shape)
        return shape[0] * self.out_channels * h * w


OpAttrsUnion = Annotated[
    Conv | DWConv | Linear | BatchNorm | ReLU | ReLU6 | Sigmoid | Identity | Zero | MaxPool | AvgPool
    | GlobalAvgPool | Flatten | FactorizedReduce,
    Field(discriminator="op"),
]

#: DSL name -> attribute model. ``pwconv(C)`` is sugar for ``conv(C, 1)``.
PRIMITIVES: dict[str, type[OpAttrs]] = {
    cls.model_fields["op"].default: cls
    for cls in (Conv, DWConv, Linear, BatchNorm, ReLU, ReLU6, Sigmoid, Identity, Zero, MaxPool, AvgPool,
                GlobalAvgPool, Flatten, FactorizedReduce)
}

#: Ops with learnable weights, counted as "conv" modules in TopoNAS statistics.
CONV_OPS = frozenset({"conv", "dwconv", "factorized_reduce"})
#: Ops that compute nothing and are not counted as modules.
FREE_OPS = frozenset({"identity", "zero", "flatten"})
