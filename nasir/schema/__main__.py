"""Regenerate ``nasir/schema/ir.schema.json`` from the pydantic models."""

import json
from pathlib import Path

from nasir.ir.graph import Graph

path = Path(__file__).with_name("ir.schema.json")
path.write_text(json.dumps(Graph.json_schema(), indent=1, sort_keys=True) + "\n")
print(f"wrote {path}")
