"""Op traits: one list of op classes, every op lowers to what its ``torch_call`` declares, and the
trait-derived op sets are the string sets the passes, statistics and DANCE analysis used before."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest
import torch

from nasir.frontends.builder import GraphBuilder
from nasir.ir.nodes import OpNode
from nasir.ir.ops import OP_CLASSES, PRIMITIVES, OpAttrs, OpAttrsUnion
from nasir.lowering import build_op_module, lower

#: (op, attributes, input shape): every op at least once, with attributes off their defaults.
SAMPLES = [
    ("conv", {"out_channels": 8, "kernel": 3, "stride": 2, "bias": True}, [4, 9, 9]),
    ("conv", {"out_channels": 6, "kernel": 3, "groups": 2, "dilation": 2}, [4, 9, 9]),
    ("dwconv", {"kernel": 5, "dilation": 2, "bias": True}, [4, 9, 9]),
    ("linear", {"out_features": 5}, [6]),
    ("bn", {}, [4, 9, 9]),
    ("bn", {"affine": False}, [6]),
    ("relu", {}, [4, 9, 9]),
    ("relu6", {}, [4, 9, 9]),
    ("sigmoid", {}, [4, 9, 9]),
    ("identity", {}, [4, 9, 9]),
    ("zero", {"stride": 2}, [4, 9, 9]),
    ("max_pool", {"kernel": 3, "stride": 2}, [4, 9, 9]),
    ("avg_pool", {"kernel": 3, "count_include_pad": False}, [4, 9, 9]),
    ("global_avg_pool", {}, [4, 9, 9]),
    ("flatten", {}, [4, 9, 9]),
    ("factorized_reduce", {"out_channels": 8}, [4, 8, 8]),  # even: its shifted branch needs it
    ("drop_path", {}, [4, 9, 9]),
    ("channel_slice", {"start": 1, "stop": 3}, [4, 9, 9]),
    ("channel_slice", {"stop": 2}, [6]),
    ("channel_shuffle", {"groups": 2}, [4, 9, 9]),
]


def _ops_where(**traits: bool) -> set[str]:
    return {name for name, cls in PRIMITIVES.items() if all(getattr(cls, t) == v for t, v in traits.items())}


def test_one_list_of_op_classes():
    assert tuple(PRIMITIVES.values()) == OP_CLASSES
    union, _ = typing.get_args(OpAttrsUnion)
    assert typing.get_args(union) == OP_CLASSES
    assert len(PRIMITIVES) == len(OP_CLASSES)


def test_every_op_declares_its_torch_call():
    assert {op for op, _, _ in SAMPLES} == set(PRIMITIVES)
    for cls in OP_CLASSES:
        assert cls.torch_call is not OpAttrs.torch_call, f"{cls.__name__} declares no torch_call"
    with pytest.raises(NotImplementedError):
        OpAttrs().torch_call([1])


@pytest.mark.parametrize("op,attrs,shape", SAMPLES, ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(SAMPLES)])
def test_lowered_op_matches_its_shape_and_params(op, attrs, shape):
    """A one-op graph lowers to exactly the op's parameters and output shape, in every mode."""
    model = PRIMITIVES[op](**attrs)
    module = build_op_module(model.torch_call(shape))
    module_params = sum(p.numel() for p in module.parameters()) if module is not None else 0
    assert module_params == model.params(shape)
    if model.parameter_free:
        assert model.params(shape) == 0

    b = GraphBuilder("one")
    x = b.input(shape)
    b.output(b.op(op, x, **attrs))
    graph = b.build()
    for mode in ("supernet", "fixed"):
        lowered = lower(graph, mode, arch={}, seed=0)
        assert sum(p.numel() for p in lowered.weight_parameters()) == model.params(shape)
        assert tuple(lowered(torch.randn(2, *shape)).shape) == (2, *model.out_shape(shape))


def test_ops_with_weights_are_not_parameter_free():
    for op, attrs, shape in SAMPLES:
        model = PRIMITIVES[op](**attrs)
        if model.params(shape):
            assert not model.parameter_free, op


def test_function_ops_lower_to_calls_not_modules():
    b = GraphBuilder("calls")
    h = b.input([4, 8, 8])
    for op in ("relu", "relu6", "sigmoid", "identity", "global_avg_pool", "flatten"):
        h = b.op(op, h)
    b.output(h)
    lowered = lower(b.build(), "fixed")
    assert not list(lowered.children())
    code = lowered.code
    assert "torch.relu(" in code and "relu6(" in code and "torch.sigmoid(" in code
    assert ".mean((2, 3))" in code and "torch.flatten(" in code


def test_trait_sets_are_the_former_string_sets():
    # nasir.ir.stats CONV_LIKE (= ops.CONV_OPS | {"linear"}) and ops.FREE_OPS
    assert _ops_where(conv_like=True) == {"conv", "dwconv", "factorized_reduce", "linear"}
    # (and the channel views of the partial-channel pass, which came later)
    views = {"channel_slice", "channel_shuffle"}
    # (and drop path, issue 11: the identity in evaluation)
    assert _ops_where(computes_nothing=True) == {"identity", "zero", "flatten", "drop_path"} | views
    assert _ops_where(parameter_free=True) == {"relu", "relu6", "sigmoid", "identity", "zero", "max_pool", "avg_pool",
                                               "global_avg_pool", "flatten", "drop_path"} | views
    # passes/_topo_match.py _NEVER and LINEAR_FREE (sharing a trailing op after a mixture is exact)
    assert _ops_where(never_shared=True) == {"identity", "zero", "drop_path"} | views
    assert _ops_where(linear=True, parameter_free=True, never_shared=False) == {"avg_pool", "global_avg_pool", "flatten"}
    # nasir/dance/channels.py: ZERO_BREAKING, and the ops whose layout passes through (dwconv, ZERO_PRESERVING, ZERO_BREAKING)
    zero_preserving = {"relu", "relu6", "max_pool", "avg_pool", "global_avg_pool", "zero", "identity", "drop_path"}
    assert _ops_where(channelwise=True, zero_preserving=False) == {"bn", "sigmoid"}
    assert _ops_where(channelwise=True) == {"dwconv"} | zero_preserving | {"bn", "sigmoid"}


def test_breaks_zero_reads_the_traits():
    from nasir.dance.channels import breaks_zero

    broken = {op for op, attrs, _ in SAMPLES if breaks_zero(OpNode(name="n", inputs=["x"], attrs=PRIMITIVES[op](**attrs)))}
    assert broken == {"bn", "sigmoid"}


def test_op_attrs_import_no_torch():
    code = "import sys, nasir.ir.ops; assert 'torch' not in sys.modules, 'nasir.ir.ops imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
