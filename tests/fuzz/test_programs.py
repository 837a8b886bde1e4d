"""Grammar-aware random programs and nesting past the limits: a graph or a located ``NasirError``, never a crash."""

from __future__ import annotations

from hypothesis import given

from ._harness import compile_cleanly, examples
from ._programs import deep_programs, programs


@examples(ci=250, long=40_000)
@given(programs())
def test_random_programs_compile_or_fail_cleanly(text):
    compile_cleanly(text)


@examples(ci=60, long=10_000)
@given(deep_programs())
def test_deep_programs_compile_or_fail_cleanly(text):
    compile_cleanly(text)
