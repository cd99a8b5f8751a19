"""ONNX tooling: plugin nodes, pattern rewrites (``plugkit insert``) and
verification against the op references (``plugkit verify``).

Imports onnx and onnx-graphsurgeon; never torch or tensorrt.
"""
from .insert import InsertResult, OpRewrites, insert_file, insert_plugins, load_rewrites
from .patterns import Match, NotReplaceable, Pattern, Replacement, Rewrite, constant_value
from .plugin_node import DOMAIN, DOMAIN_VERSION, node_attrs, plugin_nodes

__all__ = [
    "InsertResult", "OpRewrites", "insert_file", "insert_plugins", "load_rewrites",
    "Match", "NotReplaceable", "Pattern", "Replacement", "Rewrite", "constant_value",
    "DOMAIN", "DOMAIN_VERSION", "node_attrs", "plugin_nodes",
]
