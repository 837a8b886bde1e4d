"""The committed JSON Schemas of nasir's file formats: the IR (``ir.schema.json``), architectures
(``arch.schema.json``) and ranking predictors (``predictor.schema.json``); ``python -m nasir.schema``
rewrites them."""
