"""nasir: a compiler for neural-architecture-search spaces.

The top-level namespace is lazy so that ``import nasir.kernels`` stays light (no Lark, no
pydantic) — the kernels are imported on GPU machines that only need them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Graph": "nasir.ir.graph",
    "parse_file": "nasir.frontends.elaborate",
    "parse_string": "nasir.frontends.elaborate",
    "compile_file": "nasir.api",
    "PassManager": "nasir.passmanager",
    "lower": "nasir.lowering",
    "Architecture": "nasir.ir.arch",
    "load_architecture": "nasir.ir.arch",
    "from_genotype": "nasir.ir.genotype",
    "to_genotype": "nasir.ir.genotype",
    "from_nb201": "nasir.ir.genotype",
    "to_nb201": "nasir.ir.genotype",
    "export": "nasir.exporting",
    "NasirError": "nasir.diagnostics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nasir' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
