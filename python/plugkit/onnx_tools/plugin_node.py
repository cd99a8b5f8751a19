"""What a plugin node looks like in ONNX.

TensorRT's ONNX parser hands every node whose op type it does not know to
its fallback plugin importer, which looks up a plugin creator by
``(op_type, plugin_version, plugin_namespace)`` (falling back to the node's
domain when ``plugin_namespace`` is empty) and passes every other attribute
to the creator as a plugin field. A plugkit node therefore carries:

- ``op_type``: the schema's name (the plugin name);
- the string attributes ``plugin_version`` and ``plugin_namespace``;
- the op's typed attributes: int -> INT, float -> FLOAT, arrays -> INTS /
  FLOATS, string -> STRING;
- the domain ``plugkit`` (version 1), so that ``onnx.checker`` and shape
  inference treat it as a custom op instead of rejecting an unknown
  ``ai.onnx`` op.
"""
from __future__ import annotations

from typing import Any, Mapping

import onnx
from onnx.defs import OpSchema as OnnxOpSchema

from ..schema import OpSchema

DOMAIN = "plugkit"
DOMAIN_VERSION = 1
VERSION_ATTR = "plugin_version"
NAMESPACE_ATTR = "plugin_namespace"

# TensorRT's ONNX parser needs opset 11 or newer (and so do the patterns).
MIN_OPSET = 11

_ONNX_ATTR_TYPES = {
    "float32": OnnxOpSchema.AttrType.FLOAT,
    "int32": OnnxOpSchema.AttrType.INT,
    "int64": OnnxOpSchema.AttrType.INT,
    "float32[]": OnnxOpSchema.AttrType.FLOATS,
    "int32[]": OnnxOpSchema.AttrType.INTS,
    "int64[]": OnnxOpSchema.AttrType.INTS,
    "string": OnnxOpSchema.AttrType.STRING,
}

_ONNX_TENSOR_TYPES = {
    "float32": "tensor(float)", "float16": "tensor(float16)", "bfloat16": "tensor(bfloat16)",
    "int32": "tensor(int32)", "int64": "tensor(int64)", "int8": "tensor(int8)", "bool": "tensor(bool)",
}


def node_attrs(schema: OpSchema, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The attributes of ``schema``'s plugin node: version, namespace and the
    op's attributes (defaults filled in, each coerced to its declared type)."""
    values = schema.resolve_attrs(attrs)
    out: dict[str, Any] = {VERSION_ATTR: schema.version, NAMESPACE_ATTR: schema.namespace}
    for name, value in values.items():
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def read_node_attrs(schema: OpSchema, attrs: Mapping[str, Any], node_name: str = "") -> dict[str, Any]:
    """The op attributes of a plugin node's ``attrs`` (name -> value), after
    checking that its version and namespace are the schema's."""
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    where = f"node {node_name!r} ({schema.name})" if node_name else schema.name
    for key, expected in ((VERSION_ATTR, schema.version), (NAMESPACE_ATTR, schema.namespace)):
        if key in attrs and str(attrs[key]) != expected:
            raise ValueError(f"{where} asks for {key}={attrs[key]!r}, but plugins/ declares {expected!r}")
    op_attrs = {k: v for k, v in attrs.items() if k not in (VERSION_ATTR, NAMESPACE_ATTR)}
    return schema.resolve_attrs(op_attrs)


def onnx_op_schema(schema: OpSchema) -> OnnxOpSchema:
    """An ``onnx.defs.OpSchema`` describing the plugin node (not registered
    globally). onnxscript, and so the dynamo exporter, needs one to emit a node."""
    tensor_types = sorted({_ONNX_TENSOR_TYPES[d] for d in schema.dtypes} | set(_ONNX_TENSOR_TYPES.values()))
    # Every input and output gets its own type variable: the schema does not
    # say how output dtypes follow input dtypes.
    inputs = [OnnxOpSchema.FormalParameter(t.name, f"T_{t.name}", t.doc, param_option=(
        OnnxOpSchema.FormalParameterOption.Optional if t.optional else OnnxOpSchema.FormalParameterOption.Single))
        for t in schema.inputs]
    outputs = [OnnxOpSchema.FormalParameter(t.name, f"T_{t.name}", t.doc) for t in schema.outputs]
    constraints = [(f"T_{t.name}", tensor_types, "") for t in (*schema.inputs, *schema.outputs)]
    attributes = [OnnxOpSchema.Attribute(a.name, _ONNX_ATTR_TYPES[a.type], a.doc) for a in schema.attrs]
    attributes += [
        OnnxOpSchema.Attribute(VERSION_ATTR, OnnxOpSchema.AttrType.STRING, "TensorRT plugin version"),
        OnnxOpSchema.Attribute(NAMESPACE_ATTR, OnnxOpSchema.AttrType.STRING, "TensorRT plugin namespace"),
    ]
    return OnnxOpSchema(schema.name, DOMAIN, DOMAIN_VERSION, schema.doc or "",
                        inputs=inputs, outputs=outputs, type_constraints=constraints,
                        attributes=attributes)


def model_opset(model: onnx.ModelProto, domain: str = "") -> int | None:
    """The version ``model`` imports for ``domain`` ("" and "ai.onnx" are one domain)."""
    aliases = {"", "ai.onnx"} if domain in ("", "ai.onnx") else {domain}
    for entry in model.opset_import:
        if entry.domain in aliases:
            return entry.version
    return None


def plugin_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The plugkit nodes of ``model``'s main graph."""
    return [n for n in model.graph.node if n.domain == DOMAIN]
