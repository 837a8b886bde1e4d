"""The committed JSON Schemas of nasir's file formats: the IR (``ir.schema.json``) and architectures
(``arch.schema.json``); ``python -m nasir.schema`` rewrites them."""
