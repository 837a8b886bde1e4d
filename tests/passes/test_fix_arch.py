"""fix-arch: a chosen architecture becomes a plain graph computing what the fixed lowering computes."""

from __future__ import annotations

import json

import torch

from nasir.lowering import lower
from nasir.passmanager import PassManager


def test_fix_arch_then_canonicalize_equals_fixed_lowering(tiny_darts, tmp_path):
    g = tiny_darts
    arch = {a: ("none" if i % 3 == 0 else "sep_conv_3x3" if i % 3 == 1 else "skip_connect") for i, a in enumerate(g.arch)}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"arch": arch}))
    fixed_graph = PassManager.parse(f"fix-arch{{arch={path}}},canonicalize,dead-code").run(g)
    assert not fixed_graph.arch and fixed_graph.search_space_size() == 1
    for node in fixed_graph.body.nodes:  # a zero survives only where every term of its sum is zero
        if node.kind == "sum":
            kinds = [fixed_graph.body[i].kind == "op" and fixed_graph.body[i].attrs.op == "zero" for i in node.inputs]
            assert not any(kinds) or len(kinds) == 1
    a = lower(g, "fixed", arch=arch, seed=0).double().eval()
    b = lower(fixed_graph, "fixed", arch={}, seed=1).double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(b(x), a(x))
