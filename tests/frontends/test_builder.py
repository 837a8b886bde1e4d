"""The Python builder API builds the same IR as the DSL."""

from __future__ import annotations

import pytest
import torch

from nasir.diagnostics import NasirError, VerificationError
from nasir.frontends.builder import GraphBuilder
from nasir.lowering import lower


def test_builder_graph_lowers_and_counts():
    b = GraphBuilder("net")
    x = b.input([3, 16, 16])
    h = b.conv(x, 8, 3, name="stem")
    h = b.choice("edge", h, {
        "conv3": lambda r, v: r.relu(r.conv(v, 8, 3)),
        "pool": lambda r, v: r.max_pool(v, 3),
    })
    h = b.choice("edge", h, {"conv3": lambda r, v: r.conv(v, 8, 3), "pool": lambda r, v: r.avg_pool(v, 3)})
    b.output(b.linear(b.global_avg_pool(h), 4))
    g = b.build()
    assert g.search_space_size() == 2  # both choices share 'edge'
    model = lower(g, "supernet")
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_builder_errors_point_at_python_code():
    b = GraphBuilder("net")
    x = b.input([3, 8, 8])
    with pytest.raises(NasirError) as info:
        b.conv(x, kernel=3)
    assert info.value.loc.file.endswith("test_builder.py")
    y = b.conv(x, 4, 3)
    b.output(b.sum(x, y))
    with pytest.raises(VerificationError, match="mismatched"):
        b.build()


def test_builder_choices_carry_the_caller_location_and_check_shared_candidates():
    b = GraphBuilder("net")
    x = b.input([3, 8, 8])
    h = b.choice("edge", x, {"conv": lambda r, v: r.conv(v, 3, 3), "skip": lambda r, v: r.identity(v)})
    line = test_builder_choices_carry_the_caller_location_and_check_shared_candidates.__code__.co_firstlineno + 3
    choice = b.region[h]
    assert choice.loc.line == line and b.graph.arch["edge"].loc.line == line
    assert [n.name for n in choice.candidates[0].body.nodes] == ["in0", "conv", "out"]
    with pytest.raises(NasirError, match="choices sharing architecture parameter 'edge' have different candidates"):
        b.choice("edge", h, {"conv": lambda r, v: r.conv(v, 3, 3)})
