"""Plugin nodes for ``onnx.reference.ReferenceEvaluator``: each op runs its
schema's numpy reference, so a plugged model can be run on any CPU."""
from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun

from ..ops import load_schemas
from ..schema import OpSchema
from .plugin_node import DOMAIN, read_node_attrs


def _output_dtype(inputs) -> np.dtype:
    """Plugin outputs take the dtype of the first floating-point input (the
    schemas' convention: "Y has X's dtype"), else of the first input."""
    for x in inputs:
        if np.issubdtype(np.asarray(x).dtype, np.floating):
            return np.asarray(x).dtype
    return np.asarray(inputs[0]).dtype


def reference_op(schema: OpSchema) -> type[OpRun]:
    """An OpRun class named after the op, in plugkit's domain."""

    def _run(self, *inputs, **attrs):
        values = read_node_attrs(schema, attrs, self.onnx_node.name)
        outputs = schema.run_reference(*inputs, **values)
        if len(outputs) != len(schema.outputs):
            raise ValueError(f"{schema.name} reference returned {len(outputs)} outputs; "
                             f"the schema declares {len(schema.outputs)}")
        # An output whose schema fixes its dtype (int32 labels, float32 scores) has it; the
        # others take the first floating-point input's.
        dtype = _output_dtype(inputs)
        return tuple(np.asarray(y).astype(spec.dtype or dtype, copy=False)
                     for y, spec in zip(outputs, schema.outputs))

    # op_schema=None: without it OpRun fills in the attribute defaults of a
    # standard ONNX op that happens to share the plugin's name (Swish, Gelu...).
    return type(schema.name, (OpRun,), {"op_domain": DOMAIN, "op_schema": None, "_run": _run,
                                        "__doc__": f"{schema.name} via its numpy reference."})


def reference_ops(schemas: dict[str, OpSchema] | None = None) -> list[type[OpRun]]:
    """One OpRun class per op schema (all of ``plugins/`` by default)."""
    schemas = load_schemas() if schemas is None else schemas
    return [reference_op(s) for s in schemas.values() if s.reference is not None]
