"""dead-code is exact: the lowered function is unchanged (float64, train and eval mode)."""

from __future__ import annotations

from nasir.frontends.elaborate import parse_string
from nasir.testing import assert_exact


def test_dead_code_removes_unused_nodes_and_arch_params():
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        unused = one_of { a: conv(4, 3) b: conv(4, 5) }(x)
        y = conv(4, 3)(x)
        output y
    }""")
    out = assert_exact(g, "dead-code", x_shape=(2, 3, 8, 8))
    assert "unused" not in out.body and not out.arch
