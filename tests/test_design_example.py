"""The worked example of docs/design.md is real: its pass registers and its test passes.

The pass is written with public API only, in under 40 lines; this test runs the code blocks the page
shows (marked ``<!-- design-example: pass -->`` and ``<!-- design-example: test -->``), so the
page cannot drift from what works.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from nasir.passmanager import PASSES

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"


def _block(kind: str) -> str:
    match = re.search(rf"<!-- design-example: {kind} -->\n```python\n(.*?)```", DESIGN.read_text(), re.S)
    assert match, f"docs/design.md has no '{kind}' example block"
    return match.group(1)


@pytest.fixture
def example_pass():
    module = types.ModuleType("fold_relu")
    exec(compile(_block("pass"), f"{DESIGN}:pass", "exec"), module.__dict__)
    yield module
    PASSES.pop("fold-relu", None)


def test_the_example_pass_is_short_and_uses_public_api_only():
    code = _block("pass")
    assert len(code.strip().splitlines()) < 40
    imported = re.findall(r"^from (\S+) import", code, re.M)
    assert imported and all(m in ("nasir.ir", "nasir.ir.rewrite", "nasir.passmanager") for m in imported)


def test_the_example_test_passes(example_pass):
    assert PASSES["fold-relu"] is example_pass.FoldRelu
    namespace: dict = {}
    exec(compile(_block("test"), f"{DESIGN}:test", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()
