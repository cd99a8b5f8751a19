"""PyTorch custom ops for the plugkit op schemas.

Every op in ``plugins/*/op.py`` becomes ``torch.ops.plugkit.<snake_name>``,
built with ``torch.library.custom_op``::

    from plugkit.torch_ops import torch_op
    rms_norm = torch_op("RMSNorm")            # torch.ops.plugkit.rms_norm
    y = rms_norm(x, weight, axis=-1, epsilon=1e-6)

In eager mode it runs the schema's numpy reference (on CPU, in float64), so a
module that calls it computes exactly what the plugin is tested against.
For tracing (``torch.export``, ``torch.compile``, the dynamo ONNX exporter) it
has a fake implementation: each output is shaped like the first input, unless
the op's ``op.py`` defines ``fake(*inputs, **attrs)`` returning the outputs'
fake tensors. :mod:`plugkit.onnx_export` makes ONNX export emit the plugin node.
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np
import torch

from .ops import load_schemas, op_module
from .schema import OpSchema
from .tensors import to_numpy

NAMESPACE = "plugkit"  # torch.ops.plugkit.*

_TORCH_ARG_TYPES = {
    "float32": "float", "int32": "int", "int64": "int",
    "float32[]": "float[]", "int32[]": "int[]", "int64[]": "int[]", "string": "str",
}

_registered: dict[str, Any] = {}  # op name -> CustomOpDef, one registration per process


def torch_op_name(schema: OpSchema) -> str:
    """``RMSNorm`` -> ``rms_norm``: the op's name under ``torch.ops.plugkit``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", schema.name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _default(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_default(v) for v in value) + "]"
    return repr(value)


def torch_schema(schema: OpSchema) -> str:
    """The op's torch schema string: tensors first, then attributes with defaults."""
    args = [f"Tensor? {t.name}=None" if t.optional else f"Tensor {t.name}" for t in schema.inputs]
    args += [f"{_TORCH_ARG_TYPES[a.type]} {a.name}={_default(a.default)}" for a in schema.attrs]
    outs = ", ".join("Tensor" for _ in schema.outputs)
    return f"({', '.join(args)}) -> {outs if len(schema.outputs) == 1 else f'({outs})'}"


def _output_dtype(inputs) -> torch.dtype:
    """Same convention as the ONNX reference: the first floating input's dtype."""
    return next((t.dtype for t in inputs if t.is_floating_point()), inputs[0].dtype)


def _as_output(y: np.ndarray, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y)).to(device=device, dtype=dtype)


def _eager(schema: OpSchema) -> Callable:
    n_inputs = len(schema.inputs)
    names = [a.name for a in schema.attrs]

    def run_reference(*args):
        tensors, attrs = args[:n_inputs], dict(zip(names, args[n_inputs:]))
        outputs = schema.run_reference(*(None if t is None else to_numpy(t, widen="float32") for t in tensors),
                                       **attrs)
        present = [t for t in tensors if t is not None]
        dtype, device = _output_dtype(present), present[0].device
        # an output whose schema fixes its dtype (int32 labels, float32 scores) has it
        result = tuple(_as_output(y, getattr(torch, spec.dtype) if spec.dtype else dtype, device)
                       for y, spec in zip(outputs, schema.outputs))
        return result[0] if len(result) == 1 else result

    return run_reference


def _fake(schema: OpSchema, module) -> Callable:
    n_inputs = len(schema.inputs)
    names = [a.name for a in schema.attrs]
    custom = getattr(module, "fake", None)

    def fake(*args):
        tensors, attrs = args[:n_inputs], dict(zip(names, args[n_inputs:]))
        if custom is not None:
            return custom(*tensors, **attrs)
        like = tensors[0].new_empty(tensors[0].shape, dtype=_output_dtype(tensors))
        outs = tuple(torch.empty_like(like) for _ in schema.outputs)
        return outs[0] if len(outs) == 1 else outs

    return fake


def torch_op(name: str):
    """The custom op for schema ``name``, registered on first use."""
    if name not in _registered:
        module = op_module(name)
        schema = module.schema
        if schema.reference is None:
            raise ValueError(f"op {name} has no reference implementation to run in eager mode")
        op = torch.library.custom_op(f"{NAMESPACE}::{torch_op_name(schema)}", _eager(schema),
                                     mutates_args=(), schema=torch_schema(schema))
        op.register_fake(_fake(schema, module))
        op.plugkit_schema = schema  # what onnx_export reads
        _registered[name] = op
    return _registered[name]


def torch_ops() -> dict[str, Any]:
    """Every op in ``plugins/``, by schema name."""
    return {name: torch_op(name) for name in load_schemas()}
