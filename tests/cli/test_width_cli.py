"""``nasir count``, ``show`` and ``compile`` on a space with width choices."""

from __future__ import annotations

import json

import pytest

from nasir.cli import main

SPACE = """network n(C = 4) {
    input x: [3, 8, 8]
    h = (conv(C * one_of [1, 2], 3) -> bn -> relu -> pwconv(C))(x)
    output (global_avg_pool -> linear(one_of [4, 8]) -> relu -> linear(2))(h)
}
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "w.nas"
    path.write_text(SPACE)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_count_multiplies_by_the_number_of_widths(capsys, space):
    assert run(capsys, "count", space)[:2] == (0, "n: search space: 4 architectures (10^0.60)\n")


def test_show_lists_params_and_flops_per_width(capsys, space):
    code, out, _ = run(capsys, "show", space)
    assert code == 0
    assert "h.conv  [h.conv, width choice]" in out
    assert "w1 (out_channels=4)              132 params" in out
    assert "w2 (out_channels=8)              264 params" in out
    assert "w8 (out_features=8)               58 params" in out


def test_fixed_code_is_a_plain_network_of_the_chosen_widths(capsys, space, tmp_path):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"arch": {"h.conv": "w2", "out.linear": 0}}))
    code, out, _ = run(capsys, "compile", space, "--emit", "code", "--mode", "fixed", "--arch", str(arch))
    assert code == 0 and "self.h.conv(x)" in out and "width" not in out
    code, out, _ = run(capsys, "compile", space, "--emit", "code")
    assert "width_mask(h_relu, p_h_conv, segments = ((8, 1, 0, (4, 8)),))" in out
