"""The CPU reference of an ONNX model, plugged or not, for ``run --compare``.

This is the ONNX tooling's reference path (``plugkit verify``) for one model
and one set of inputs: a model without plugin nodes runs in ONNX Runtime on
the CPU; a plugged model runs in ``onnx.reference.ReferenceEvaluator``, each
plugin node through the numpy reference of its op schema
(:func:`plugkit.onnx_tools.reference.reference_ops`), so the engine is
compared with what the op is specified to compute.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from .errors import PlugkitError


def run_reference_model(onnx_path: str | os.PathLike, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs (name -> numpy array) of the model at ``onnx_path`` for ``feeds``."""
    import numpy as np

    from .onnx_tools.model_io import load_model, load_model_for_running
    from .onnx_tools.plugin_node import plugin_nodes

    model = load_model(onnx_path)
    outputs = [o.name for o in model.graph.output]
    inputs = {v.name for v in model.graph.input} - {i.name for i in model.graph.initializer}
    missing = sorted(inputs - set(feeds))
    if missing:
        raise PlugkitError(f"the reference model {onnx_path} takes input(s) {missing} that the engine run "
                           f"does not have (its inputs: {sorted(feeds)}); compare with the model the "
                           f"engine was built from")
    feeds = {name: np.asarray(value) for name, value in feeds.items() if name in inputs}
    if not plugin_nodes(model):
        import onnxruntime

        # By path: ONNX Runtime reads external data (models over 2 GB) itself.
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return dict(zip(outputs, session.run(outputs, feeds)))

    from onnx.reference import ReferenceEvaluator

    from .onnx_tools.reference import reference_ops

    del model
    model, weights = load_model_for_running(onnx_path)  # large weights mapped from disk, not copied
    evaluator = ReferenceEvaluator(model, new_ops=reference_ops())
    return dict(zip(outputs, evaluator.run(outputs, {**feeds, **weights})))
