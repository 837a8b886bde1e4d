"""Hypothesis profiles of the fuzzing campaign: a short, reproducible one for CI and a long one.

``NASIR_FUZZ=long`` selects the long profile (well over 100,000 inputs in all; see
docs/benchmarks.md); otherwise the CI profile runs a few hundred derandomized inputs per test, so
CI sees the same inputs every run. Each test scales its example count with ``_harness.examples``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

LONG = os.environ.get("NASIR_FUZZ") == "long"

_COMMON = dict(
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("nasir-ci", derandomize=True, deadline=timedelta(seconds=45), **_COMMON)
# run nice'd on a busy machine, a case may take minutes of wall-clock time: _harness.bounded limits its CPU time
settings.register_profile("nasir-long", derandomize=False, deadline=None, **_COMMON)
settings.load_profile("nasir-long" if LONG else "nasir-ci")
