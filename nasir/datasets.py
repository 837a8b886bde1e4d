"""The former home of TinyShapes, now ``nasir.data.tinyshapes``: ``from nasir.datasets import
load_tiny`` keeps working for code written before the datasets moved to ``nasir.data``."""

from nasir.data.tinyshapes import CLASSES, SPLITS, load_tiny

__all__ = ["CLASSES", "SPLITS", "load_tiny"]
