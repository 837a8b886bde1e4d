"""Regenerate the committed JSON Schemas (``ir.schema.json``, ``arch.schema.json``, ``predictor.schema.json``)
from the pydantic models."""

import json
from pathlib import Path

from nasir.ir.arch import Architecture
from nasir.ir.graph import Graph
from nasir.ranking.predictors import PredictorFile

for name, model in (("ir", Graph), ("arch", Architecture), ("predictor", PredictorFile)):
    path = Path(__file__).with_name(f"{name}.schema.json")
    path.write_text(json.dumps(model.json_schema(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
