"""The committed JSON Schema of the IR (``ir.schema.json``); ``python -m nasir.schema`` rewrites it."""
