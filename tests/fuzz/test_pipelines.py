"""Pass-pipeline strings, well-formed and not, on small spaces: a graph or a ``NasirError``, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasir.diagnostics import NasirError
from nasir.frontends.elaborate import parse_file, std_path
from nasir.passmanager import PassManager, load_passes

from ._harness import bounded, examples

PASSES = sorted(load_passes())
OPTIONS = ["approximate", "kernel_norm", "budget", "min_channels", "auto", "blocks", "arch", "masks", "eps", "bogus"]
VALUES = ["true", "false", "0", "1", "-1", "0.5", "2", "1e400", "nan", "inf", "10000000000", '""', '"x"', "abc",
          "missing.json", "-0", "9" * 400]
JUNK = ["", ",", "{", "}", "=", " ", ",,", "{}", "{=}", "\n", "\x00", "é", "--", "A"]


@st.composite
def pipelines(draw: st.DrawFn) -> str:
    specs = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(PASSES + ["no-such-pass", "Canonicalize", "dead_code", ""]))
        options = [f"{draw(st.sampled_from(OPTIONS))}={draw(st.sampled_from(VALUES))}"
                   for _ in range(draw(st.integers(0, 2)))]
        spec = name + ("{" + ",".join(options) + "}" if options or draw(st.booleans()) else "")
        specs.append(spec + draw(st.sampled_from(JUNK)) if draw(st.integers(0, 9)) == 0 else spec)
    return ",".join(specs)


@pytest.fixture(scope="module")
def small_graphs():
    return [parse_file(std_path("nb201"), C=4, N=1), parse_file(std_path("darts"), C=4, layers=3, steps=2,
                                                                   multiplier=2)]


@examples(ci=120, long=15_000)
@given(text=st.one_of(pipelines(), st.text(max_size=40)), which=st.integers(0, 1))
def test_pipeline_strings(text, which, small_graphs):
    with bounded():
        try:
            PassManager.parse(text).run(small_graphs[which])
        except NasirError as error:
            error.render()
