"""Verified means lowerable: out-of-range op attributes fail with a located error in the DSL, when
an IR JSON file is loaded, and in the verifier (issue 15)."""

from __future__ import annotations

import json
import re

import pytest

from nasir.diagnostics import NasirError, VerificationError
from nasir.frontends.elaborate import parse_string
from nasir.ir.graph import Graph
from nasir.ir.verify import verify

SPACE = "network n() {{\n    input x: [4, 8, 8]\n    y = {op}(x)\n    output y\n}}\n"

BAD_OPS = [
    ("conv(-4, 3)", "out_channels"),
    ("conv(0, 3)", "out_channels"),
    ("conv(4, 0)", "kernel"),
    ("conv(4, 3, 0)", "stride"),
    ("conv(4, 3, -1)", "stride"),
    ("conv(4, 3, groups = 0)", "groups"),
    ("conv(4, 3, dilation = 0)", "dilation"),
    ("conv(4, 3, padding = -1)", "padding"),
    ("dwconv(0)", "kernel"),
    ("dwconv(3, 0)", "stride"),
    ("dwconv(3, dilation = -2)", "dilation"),
    ("dwconv(3, padding = -1)", "padding"),
    ("pwconv(0)", "out_channels"),
    ("bn(eps = 0)", "eps"),
    ("bn(eps = -0.001)", "eps"),
    ("bn(momentum = -0.1)", "momentum"),
    ("bn(momentum = 1.5)", "momentum"),
    ("zero(-1)", "stride"),
    ("zero(0)", "stride"),
    ("max_pool(0)", "kernel"),
    ("max_pool(3, 0)", "stride"),
    ("avg_pool(3, 2, padding = -1)", "padding"),
    ("max_pool(3, 2, padding = 2)", "padding"),  # torch: padding at most half the kernel
    ("avg_pool(2, padding = 2)", "padding"),
    ("factorized_reduce(0)", "out_channels"),
    ("factorized_reduce(6 - 1)", "out_channels"),
    ("(global_avg_pool -> linear(0))", "out_features"),
]


@pytest.mark.parametrize(("op", "field"), BAD_OPS)
def test_out_of_range_attribute_is_a_located_dsl_error(op, field):
    with pytest.raises(NasirError) as err:
        parse_string(SPACE.format(op=op), filename="bad.nas")
    assert re.match(r"bad\.nas:3:\d+: error: ", err.value.render())
    assert repr(field) in err.value.message


@pytest.mark.parametrize("op", ["conv(4, 3, 1, padding = 0)", "max_pool(3, 2, padding = 1)", "avg_pool(2, 2, padding = 1)",
                                "bn(momentum = 0)", "bn(momentum = 1)", "zero(2)", "factorized_reduce(2)"])
def test_boundary_values_are_accepted(op):
    verify(parse_string(SPACE.format(op=op)))


def _json_with_attr(field: str, value: object) -> str:
    data = json.loads(parse_string(SPACE.format(op="conv(4, 3)"), filename="src.nas").to_json())
    conv = next(n for n in data["body"]["nodes"] if n["kind"] == "op")
    conv["attrs"][field] = value
    return json.dumps(data)


@pytest.mark.parametrize(("field", "value"), [("out_channels", 0), ("stride", -2), ("groups", 0), ("padding", -1)])
def test_out_of_range_attribute_in_ir_json_is_located_at_the_node(field, value):
    with pytest.raises(NasirError) as err:
        Graph.from_json(_json_with_attr(field, value), "bad.json")
    msg = str(err.value)
    assert "bad.json" in msg and field in msg and "node 'y'" in msg
    assert err.value.loc is not None and (err.value.loc.file, err.value.loc.line) == ("src.nas", 3)


@pytest.mark.parametrize(("op", "update", "field"), [
    ("conv(4, 3)", {"stride": 0}, "stride"),
    ("dwconv(3)", {"kernel": 0}, "kernel"),
    ("bn", {"eps": 0.0}, "eps"),
    ("zero", {"stride": -1}, "stride"),
    ("max_pool(3)", {"padding": 2}, "padding"),
    ("avg_pool(3)", {"stride": 0}, "stride"),
    ("factorized_reduce(4)", {"out_channels": 3}, "out_channels"),
])
def test_verifier_rechecks_attributes_a_pass_built_without_validation(op, update, field):
    graph = parse_string(SPACE.format(op=op), filename="src.nas")
    node = graph.body["y"]
    node.attrs = node.attrs.model_copy(update=update)  # skips validation, as a careless pass might
    with pytest.raises(VerificationError) as err:
        verify(graph)
    assert repr(field) in err.value.message and err.value.render().startswith("src.nas:3:9: error: ")


@pytest.mark.parametrize(("where", "bad"), [("node", "a..b"), ("node", ".a"), ("candidate", "a.b"), ("candidate", "")])
def test_names_that_cannot_be_module_paths_fail_verification(where, bad):
    graph = parse_string(SPACE.format(op="one_of { a: conv(4, 3)  b: conv(4, 5) }"), filename="src.nas")
    node = graph.body["y"]
    if where == "node":
        node.name, graph.body.outputs[0].inputs = bad, [bad]
    else:
        node.candidates[0].name = bad
    with pytest.raises(VerificationError, match="name"):
        verify(graph)
