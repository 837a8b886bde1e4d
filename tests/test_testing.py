"""nasir.testing, the kit pass authors (and nasir's own tests) use: FileCheck, weight carrying, equivalence."""

from __future__ import annotations

import pytest
import torch

from nasir.frontends.elaborate import parse_string
from nasir.lowering import lower
from nasir.testing import assert_equivalent, carry_weights, edge_text, filecheck, run_pipeline

TEXT = """\
graph @n {
  %x = input 0
  %relu = relu(%x)
  %conv = conv(out_channels=4)(%relu)
  %bn = bn(affine=false)(%conv)
  %output = output(%bn)
}"""


# -- filecheck -------------------------------------------------------------------------------------
def test_filecheck_matches_substrings_in_order():
    filecheck(TEXT, """
        %relu = relu(%x)
        CHECK: conv(out_channels=4)
        %output
    """)
    with pytest.raises(AssertionError, match=r"CHECK '%relu' \(checks line 3\) not found from text line 5 on"):
        filecheck(TEXT, """
            conv
            %relu
        """)


def test_filecheck_failure_shows_the_text_where_the_search_stood():
    with pytest.raises(AssertionError) as err:
        filecheck(TEXT, "%conv\nmax_pool")
    message = str(err.value)
    assert "CHECK 'max_pool' (checks line 2) not found from text line 5 on" in message
    assert "    4 |   %conv = conv(out_channels=4)(%relu)\n    5 |   %bn = bn(affine=false)(%conv)" in message


def test_filecheck_not_between_neighbouring_matches_and_after_the_last():
    filecheck(TEXT, """
        %relu
        CHECK-NOT: bn
        %conv
    """)
    with pytest.raises(AssertionError, match=r"CHECK-NOT 'conv' \(checks line 2\) matched text line 4"):
        filecheck(TEXT, """
            CHECK-NOT: conv
            %bn
        """)
    filecheck(TEXT, "%bn\nCHECK-NOT: relu")  # only after the last match
    with pytest.raises(AssertionError, match="CHECK-NOT 'output'"):
        filecheck(TEXT, "%bn\nCHECK-NOT: output")


def test_filecheck_next_wants_the_very_next_line():
    filecheck(TEXT, """
        %relu
        CHECK-NEXT: %conv
        CHECK-NEXT: %bn
    """)
    with pytest.raises(AssertionError, match=r"CHECK-NEXT '%bn' \(checks line 2\) not found on text line 4"):
        filecheck(TEXT, "%relu\nCHECK-NEXT: %bn")


def test_filecheck_rejects_directives_that_check_nothing():
    with pytest.raises(ValueError, match="no previous match"):
        filecheck(TEXT, "CHECK-NEXT: graph")
    with pytest.raises(ValueError, match="before a CHECK-NEXT"):
        filecheck(TEXT, "%relu\nCHECK-NOT: bn\nCHECK-NEXT: %conv")


def test_edge_text_is_one_node_with_its_regions():
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        e = one_of { a: relu  b: conv(3, 1) }(x)
        f = relu(e)
        output f
    }""")
    text = edge_text(g, "e")
    assert text.lstrip().startswith("%e = choice") and text.endswith("}") and "%f" not in text
    filecheck(text, "^a:\nrelu\n^b:\nconv")
    assert edge_text(g, "f").strip().startswith("%f = relu(%e)")
    with pytest.raises(ValueError, match="no node %g"):
        edge_text(g, "g")


# -- carry_weights and assert_equivalent --------------------------------------------------------------
# PMS hoists the leading non-affine BN of e's candidates next to e, and shares f's in a group candidate:
# one BatchNorm module (with running statistics, without weights) stands for two.
SHARED_BN = """
network n() {
    input x: [3, 8, 8]
    e = one_of { a: bn(affine = false) -> conv(4, 3)  b: bn(affine = false) -> conv(4, 5) }(x)
    f = one_of { a: bn(affine = false) -> conv(4, 3)  b: bn(affine = false) -> conv(4, 5)  c: conv(4, 1) }(e)
    output f
}"""


def test_carry_weights_carries_the_running_statistics_of_shared_batchnorms():
    g = parse_string(SHARED_BN)
    out, pm = run_pipeline(g, "pms{approximate=false}")
    assert pm.exact
    filecheck(edge_text(out, "e.bn"), "%e.bn = bn(affine=false)(%x)")
    filecheck(edge_text(out, "f"), "^shared:\n%bn = bn(affine=false)(%x)\n%mix = choice")
    before, after = lower(g, "supernet", seed=0), lower(out, "supernet", seed=1)
    before.train()
    with torch.no_grad():
        for _ in range(3):
            before(torch.randn(4, 3, 8, 8))
    mapping = carry_weights(before, after, out)
    assert mapping["e.bn.running_mean"] == "e.a.bn.running_mean"
    assert mapping["f.shared.bn.running_var"] == "f.a.bn.running_var"
    state = after.state_dict()
    for key in ("e.bn.running_mean", "e.bn.running_var", "f.shared.bn.running_var"):
        torch.testing.assert_close(state[key], before.state_dict()[mapping[key]])
    assert int(state["e.bn.num_batches_tracked"]) == 3
    # the eval-mode outputs agree only because the statistics came along
    assert_equivalent(g, out, x_shape=(2, 3, 8, 8), steps=3)


def test_carry_weights_carries_the_merged_kernels_of_a_layer_named_arch():
    """A choice named ``arch`` lowers to ``arch_`` (the module's ``arch`` holds the architecture
    parameters), but its IR paths start with ``arch.`` too: ``carry_weights`` took its merged kernels
    for architecture parameters and left them re-initialized (long run, generated space 655)."""
    g = parse_string("""
    network n() {
        input x: [2, 7, 5]
        arch = one_of {
            pool: avg_pool(3, 1, count_include_pad = false)
            conv3: conv(2, 3)
            conv1: conv(2, 1)
        }(x)
        output arch
    }""")
    out, pm = run_pipeline(g, "reparam")
    assert pm.exact
    mapping = carry_weights(lower(g, seed=0), lower(out, seed=1), out)
    assert mapping["arch_.merged.conv.kernels.conv1"] == "arch_.conv1.conv.weight"
    assert mapping["arch.arch_"] == "arch.arch_"
    assert_equivalent(g, out, x_shape=(2, 2, 7, 5))


def test_carry_weights_gives_a_hoisted_batchnorm_of_a_nested_choice_the_members_statistics():
    """PMS hoists the leading max_pool -> bn of the nested choice ``choice`` as ``choice.bn``; its
    path ``e.nest.choice.bn`` also reads as the nest candidate's own ``bn`` with ``choice`` inserted,
    and ``carry_weights`` took that trailing BatchNorm's statistics (long run, generated space 1341)."""
    g = parse_string("""
    network n() {
        input x: [2, 9, 6]
        e = one_of {
            nest: one_of {
                a: max_pool(3, 1) -> bn(affine = false)
                b: max_pool(3, 1) -> bn(affine = false) -> relu
            } -> bn(affine = false)
            dw3: dwconv(3, 1, dilation = 2)
        }(x)
        output e
    }""")
    out, pm = run_pipeline(g, "pms{approximate=false}")
    assert pm.exact
    filecheck(edge_text(out, "e"), "%choice.bn = bn(affine=false)(%choice.max_pool)")
    mapping = carry_weights(lower(g, seed=0), lower(out, seed=1), out)
    assert mapping["e.nest.choice.bn.running_mean"] == "e.nest.choice.a.bn.running_mean"
    assert mapping["e.nest.bn.running_mean"] == "e.nest.bn.running_mean"
    assert_equivalent(g, out, x_shape=(2, 2, 9, 6), steps=2)


def test_carry_weights_refuses_a_module_without_origin():
    g = parse_string(SHARED_BN)
    other = parse_string(SHARED_BN.replace("conv(4, 1)", "conv(4, 1) -> bn(affine = false)"))
    with pytest.raises(ValueError, match="no original module for 'f.c.bn.running_mean'"):
        carry_weights(lower(g, seed=0), lower(other, seed=1), other)


def test_assert_equivalent_catches_a_real_difference():
    g = parse_string(SHARED_BN)
    changed = parse_string(SHARED_BN.replace("conv(4, 1)", "conv(4, 1) -> relu"))
    with pytest.raises(AssertionError, match="differs from before_graph in eval mode"):
        assert_equivalent(g, changed, x_shape=(2, 3, 8, 8))


def test_assert_equivalent_compares_train_and_eval_mode():
    """Sharing a trailing BN is affine in eval mode (exact), not in train mode (batch statistics)."""
    g = parse_string("""
    network n() {
        input x: [3, 8, 8]
        e = one_of { a: conv(4, 3) -> bn(affine = false)  b: conv(4, 5) -> bn(affine = false) }(x)
        output e
    }""")
    out, pm = run_pipeline(g, "pms")
    assert not pm.exact
    assert_equivalent(g, out, x_shape=(2, 3, 8, 8), run_modes=("eval",))
    with pytest.raises(AssertionError, match="in train mode"):
        assert_equivalent(g, out, x_shape=(2, 3, 8, 8))


def test_assert_equivalent_in_fixed_mode_and_its_argument_checks():
    g = parse_string(SHARED_BN)
    out, _ = run_pipeline(g, "pms{approximate=false}")
    assert_equivalent(g, out, x_shape=(2, 3, 8, 8), mode="fixed", arch={"e": "b", "f": "a"}, steps=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        assert_equivalent(g, out, x_shape=(2, 3, 8, 8), mode="sampled")
    with pytest.raises(ValueError, match="run_modes must be among"):
        assert_equivalent(g, out, x_shape=(2, 3, 8, 8), run_modes=("test",))
