"""Import an existing ``nn.Module`` into the IR through ``torch.fx`` tracing.

Node names are the module's own attribute paths (``layer1.0.conv1``), so a network lowered from the
imported graph in ``fixed`` mode has exactly the original ``state_dict`` keys and
``lowered.load_state_dict(module.state_dict())`` carries the weights over. Supported: Conv2d
(dense, grouped, depthwise), Linear, BatchNorm1d/2d, ReLU/ReLU6/Sigmoid/Identity, Max/AvgPool2d,
AdaptiveAvgPool2d(1), Flatten, and the functions/methods relu, add, cat (channels), flatten, mean
over (2, 3). Anything else is reported with the fx node that uses it.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from nasir.diagnostics import NasirError
from nasir.ir.graph import Graph
from nasir.ir.nodes import ConcatNode, InputNode, OpNode, OutputNode, SumNode
from nasir.ir.ops import (
    AvgPool,
    BatchNorm,
    Conv,
    DWConv,
    Flatten,
    GlobalAvgPool,
    Identity,
    Linear,
    MaxPool,
    OpAttrs,
    ReLU,
    ReLU6,
    Sigmoid,
)
from nasir.ir.verify import verify


def _pair(v: Any) -> int:
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise ValueError(f"non-square {v}")
        return int(v[0])
    return int(v)


def _module_attrs(mod: nn.Module, in_channels: int | None) -> OpAttrs:
    if isinstance(mod, nn.Conv2d):
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise ValueError("only explicit zero padding is supported")
        k, s, p, d = _pair(mod.kernel_size), _pair(mod.stride), _pair(mod.padding), _pair(mod.dilation)
        if mod.groups == mod.in_channels == mod.out_channels and mod.groups > 1:
            return DWConv(kernel=k, stride=s, padding=p, dilation=d, bias=mod.bias is not None)
        return Conv(out_channels=mod.out_channels, kernel=k, stride=s, padding=p, dilation=d, groups=mod.groups,
                    bias=mod.bias is not None)
    if isinstance(mod, nn.Linear):
        return Linear(out_features=mod.out_features, bias=mod.bias is not None)
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not mod.track_running_stats:
            return BatchNorm(affine=mod.affine, eps=mod.eps, track_running_stats=False)
        return BatchNorm(affine=mod.affine, eps=mod.eps, momentum=mod.momentum if mod.momentum is not None else 0.1)
    if isinstance(mod, nn.ReLU):
        return ReLU()
    if isinstance(mod, nn.ReLU6):
        return ReLU6()
    if isinstance(mod, nn.Sigmoid):
        return Sigmoid()
    if isinstance(mod, nn.Identity):
        return Identity()
    if isinstance(mod, nn.MaxPool2d):
        if _pair(mod.dilation) != 1 or mod.ceil_mode:
            raise ValueError("dilated or ceil-mode pooling is not supported")
        return MaxPool(kernel=_pair(mod.kernel_size), stride=_pair(mod.stride), padding=_pair(mod.padding))
    if isinstance(mod, nn.AvgPool2d):
        if mod.ceil_mode or mod.divisor_override:
            raise ValueError("ceil-mode or divisor_override pooling is not supported")
        return AvgPool(kernel=_pair(mod.kernel_size), stride=_pair(mod.stride), padding=_pair(mod.padding),
                       count_include_pad=mod.count_include_pad)
    if isinstance(mod, nn.AdaptiveAvgPool2d) and _pair(mod.output_size) == 1:
        return GlobalAvgPool()
    if isinstance(mod, nn.Flatten) and mod.start_dim == 1:
        return Flatten()
    raise ValueError(f"unsupported module {type(mod).__name__}")


def import_module(module: nn.Module, input_shape: list[int], name: str | None = None) -> Graph:
    """Trace ``module`` and return an equivalent IR graph (verify it lowers with ``fixed`` mode)."""
    try:
        traced = fx.symbolic_trace(module)
    except Exception as e:  # tracing raises many kinds of errors for dynamic code
        raise NasirError(f"cannot trace {type(module).__name__} with torch.fx: {e}") from None
    graph = Graph(name=name or type(module).__name__.lower())
    body = graph.body
    value: dict[str, str] = {}
    adaptive_pool_pending: dict[str, str] = {}
    for node in traced.graph.nodes:
        try:
            if node.op == "placeholder":
                if body.inputs:
                    raise ValueError("only single-input modules are supported")
                body.add(InputNode(name=node.name, shape=list(input_shape), index=0))
                value[node.name] = node.name
            elif node.op == "output":
                body.add(OutputNode(name="output", inputs=[value[node.args[0].name]]))
            elif node.op == "call_module":
                sub = traced.get_submodule(node.target)
                attrs = _module_attrs(sub, None)
                src = value[node.args[0].name]
                if isinstance(attrs, Identity):
                    value[node.name] = src
                    continue
                ir_name = node.target
                if ir_name in body:
                    if any(True for _ in sub.parameters()):
                        raise ValueError("a module with weights is called twice; shared weights are not supported")
                    ir_name = body.fresh_name(node.target)
                body.add(OpNode(name=ir_name, inputs=[src], attrs=attrs))
                value[node.name] = ir_name
                if isinstance(attrs, GlobalAvgPool):
                    adaptive_pool_pending[node.name] = ir_name
            elif node.op in ("call_function", "call_method"):
                value[node.name] = _function(body, node, value, adaptive_pool_pending)
            else:
                raise ValueError(f"unsupported fx op {node.op}")
        except (ValueError, KeyError, NasirError) as e:
            msg = e.message if isinstance(e, NasirError) else str(e)
            raise NasirError(f"cannot import fx node {node.name!r} ({node.op} {node.target}): {msg}") from None
    verify(graph)
    return graph


def _function(body, node: fx.Node, value: dict[str, str], pooled: dict[str, str]) -> str:
    target = node.target
    args = node.args
    if target in (F.relu, torch.relu, "relu"):
        return _op(body, node, value[args[0].name], ReLU())
    if target in (operator.add, torch.add, "add"):
        return _join(body, node, SumNode, [value[a.name] for a in args])
    if target in (operator.iadd,):
        return _join(body, node, SumNode, [value[a.name] for a in args])
    if target is torch.cat:
        dim = node.kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if dim != 1:
            raise ValueError("only channel concatenation (dim=1) is supported")
        return _join(body, node, ConcatNode, [value[a.name] for a in args[0]])
    if target in (torch.flatten, "flatten"):
        start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0 if target is torch.flatten else 0)
        src = value[args[0].name]
        if start != 1:
            raise ValueError("only flatten(x, 1) is supported")
        if src in pooled.values():  # global pool then flatten: the IR's global pool is already flat
            return src
        return _op(body, node, src, Flatten())
    if target == "view" or target == "reshape":
        raise ValueError("view/reshape: use torch.flatten(x, 1)")
    if target == "mean" and tuple(args[1]) == (2, 3):
        return _op(body, node, value[args[0].name], GlobalAvgPool())
    raise ValueError(f"unsupported function {getattr(target, '__name__', target)}")


def _op(body, node: fx.Node, src: str, attrs: OpAttrs) -> str:
    body.add(OpNode(name=node.name, inputs=[src], attrs=attrs))
    return node.name


def _join(body, node: fx.Node, cls, inputs: list[str]) -> str:
    body.add(cls(name=node.name, inputs=inputs))
    return node.name
