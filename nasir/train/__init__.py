"""Training a fixed architecture from scratch (``nasir train``): the recipes (``nasir.train.recipes``),
the trainer (``nasir.train.trainer``) and its command line (``nasir.train.cli``)."""
