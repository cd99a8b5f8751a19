"""The CPU reference of an ONNX model, plugged or not: the one place that runs
a model for ``plugkit verify`` and ``plugkit run --compare``.

A model without plugin nodes runs in ONNX Runtime on the CPU; a plugged model
runs in ``onnx.reference.ReferenceEvaluator``, each plugin node through the
numpy reference of its op schema, so an engine or a plugged model is compared
with what the op is specified to compute."""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import onnx
from onnx.reference.op_run import OpRun

from ..errors import PlugkitError
from ..ops import load_schemas
from ..schema import OpSchema
from .model_io import load_model_for_running
from .plugin_node import DOMAIN, plugin_nodes, read_node_attrs


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


class ReferenceRunner:
    """Runs ``model`` on the CPU: ONNX Runtime for a plain model, the
    ReferenceEvaluator with the ops' numpy references for a plugged one (or for
    any model with ``evaluator=True``: verify compares like with like).
    ``weights``: values of the inputs that hold the model's large external
    weights (:func:`plugkit.onnx_tools.model_io.load_model_for_running`), fed
    with every run."""

    def __init__(self, model: onnx.ModelProto, schemas: dict[str, OpSchema] | None = None, *,
                 evaluator: bool | None = None, weights: Mapping[str, Any] | None = None):
        self.outputs = [o.name for o in model.graph.output]
        self.plugged = bool(plugin_nodes(model))
        self._weights = dict(weights or {})
        if self.plugged or evaluator:
            from onnx.reference import ReferenceEvaluator

            self._run = ReferenceEvaluator(model, new_ops=reference_ops(schemas)).run
        else:
            import onnxruntime

            self._run = onnxruntime.InferenceSession(model.SerializeToString(),
                                                     providers=["CPUExecutionProvider"]).run

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Output name -> numpy array, for ``feeds`` (input name -> numpy array)."""
        return dict(zip(self.outputs, self._run(self.outputs, {**feeds, **self._weights})))


def run_reference_model(onnx_path: str | os.PathLike, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Outputs (name -> numpy array) of the model at ``onnx_path`` for ``feeds``;
    feeds the model does not take are left out (an engine may have more inputs)."""
    model, weights = load_model_for_running(onnx_path)  # large weights mapped from disk, not copied
    inputs = ({v.name for v in model.graph.input} - {i.name for i in model.graph.initializer}) - set(weights)
    missing = sorted(inputs - set(feeds))
    if missing:
        raise PlugkitError(f"the reference model {onnx_path} takes input(s) {missing} that the engine run "
                           f"does not have (its inputs: {sorted(feeds)}); compare with the model the "
                           f"engine was built from")
    return ReferenceRunner(model, weights=weights).run({name: np.asarray(value) for name, value in feeds.items()
                                                        if name in inputs})
