"""ONNX export of modules that call plugkit ops.

``torch.onnx.export`` does not know ``torch.ops.plugkit.*``. This module
teaches both of torch's exporters to emit the plugin node (see
:mod:`plugkit.onnx_tools.plugin_node`: op type, ``plugin_version``,
``plugin_namespace``, typed attributes, domain ``plugkit``):

- the dynamo exporter (``dynamo=True``, the default since torch 2.9) through
  ``custom_translation_table``, with an onnxscript op for each schema;
- the TorchScript exporter (``dynamo=False``) through
  ``torch.onnx.register_custom_op_symbolic``.

:func:`export` wraps ``torch.onnx.export`` and wires in both; the pieces are
public for callers that drive the exporter themselves.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable

import torch

from .onnx_tools.plugin_node import DOMAIN, DOMAIN_VERSION, node_attrs, onnx_op_schema
from .ops import load_schemas
from .schema import OpSchema
from .torch_ops import NAMESPACE, torch_op, torch_op_name

_SYMBOLIC_ARG_KINDS = {
    "float32": ("f", "f"), "int32": ("i", "i"), "int64": ("i", "i"),
    "float32[]": ("fs", "f"), "int32[]": ("is", "i"), "int64[]": ("is", "i"), "string": ("s", "s"),
}


def _split_args(schema: OpSchema, args, kwargs):
    n = len(schema.inputs)
    tensors = list(args[:n]) + [kwargs.pop(t.name) for t in schema.inputs[len(args):] if t.name in kwargs]
    attrs = dict(zip((a.name for a in schema.attrs), args[n:]))
    attrs.update({k: v for k, v in kwargs.items() if k in schema.attr_map})
    while tensors and tensors[-1] is None:  # optional inputs left out: the node has fewer inputs
        tensors.pop()
    return tensors, attrs


def onnxscript_translation(schema: OpSchema) -> Callable:
    """The dynamo exporter's translation of ``torch.ops.plugkit.<op>``."""
    from onnxscript import values

    op = values.Op(values.Opset(DOMAIN, DOMAIN_VERSION), schema.name, onnx_op_schema(schema))

    def translate(*args, **kwargs):
        tensors, attrs = _split_args(schema, args, dict(kwargs))
        return op(*tensors, **node_attrs(schema, attrs))

    translate.__name__ = f"plugkit_{torch_op_name(schema)}"
    return translate


def translation_table(ops: list[str] | None = None) -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``."""
    table = {}
    for name in ops if ops is not None else list(load_schemas()):
        schema = torch_op(name).plugkit_schema
        overload = getattr(getattr(torch.ops, NAMESPACE), torch_op_name(schema)).default
        table[overload] = onnxscript_translation(schema)
    return table


def torchscript_symbolic(schema: OpSchema) -> Callable:
    """The TorchScript exporter's symbolic for ``plugkit::<op>``."""
    from torch.onnx import symbolic_helper

    kinds = ["v"] * len(schema.inputs) + [_SYMBOLIC_ARG_KINDS[a.type][1] for a in schema.attrs]
    suffixes = {a.name: _SYMBOLIC_ARG_KINDS[a.type][0] for a in schema.attrs}

    def symbolic(g, *args):
        tensors, attrs = list(args[:len(schema.inputs)]), dict(zip(suffixes, args[len(schema.inputs):]))
        while tensors and symbolic_helper._is_none(tensors[-1]):  # optional inputs left out
            tensors.pop()
        onnx_attrs = {f"{k}_{suffixes.get(k, 's')}": v for k, v in node_attrs(schema, attrs).items()}
        outputs = g.op(f"{DOMAIN}::{schema.name}", *tensors, outputs=len(schema.outputs), **onnx_attrs)
        # Carry the traced type (shape and dtype) so the output has value_info.
        for out in (outputs if len(schema.outputs) > 1 else [outputs]):
            out.setType(tensors[0].type())
        return outputs

    # parse_args converts each argument by the name it reads from the signature.
    names = ["g", *(t.name for t in schema.inputs), *(a.name for a in schema.attrs)]
    symbolic.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return symbolic_helper.parse_args(*kinds)(symbolic)


def register_torchscript_symbolics(ops: list[str] | None = None) -> None:
    """Make ``torch.onnx.export(..., dynamo=False)`` emit plugin nodes."""
    for name in ops if ops is not None else list(load_schemas()):
        schema = torch_op(name).plugkit_schema
        torch.onnx.register_custom_op_symbolic(
            f"{NAMESPACE}::{torch_op_name(schema)}", torchscript_symbolic(schema), opset_version=1)


def export(model: torch.nn.Module, args: tuple, f: str | os.PathLike, *, dynamo: bool = True,
           ops: list[str] | None = None, **kwargs: Any):
    """``torch.onnx.export`` that emits plugin nodes for plugkit ops.

    ``kwargs`` go to ``torch.onnx.export`` unchanged (``input_names``,
    ``dynamic_axes`` or ``dynamic_shapes``, ``opset_version``...).
    """
    if dynamo:
        table = translation_table(ops)
        table.update(kwargs.pop("custom_translation_table", None) or {})
        return torch.onnx.export(model, args, f, dynamo=True, custom_translation_table=table, **kwargs)
    register_torchscript_symbolics(ops)
    custom_opsets = {DOMAIN: DOMAIN_VERSION, **(kwargs.pop("custom_opsets", None) or {})}
    return torch.onnx.export(model, args, f, dynamo=False, custom_opsets=custom_opsets, **kwargs)
