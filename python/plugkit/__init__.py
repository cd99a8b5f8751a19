"""plugkit: develop, test and deploy custom TensorRT plugins.

Importing plugkit never imports tensorrt (or torch): those are loaded lazily
by the parts that need them.
"""
from .schema import Attr, OpSchema, TensorSpec

__all__ = ["Attr", "OpSchema", "TensorSpec"]

__version__ = "0.1.0"
