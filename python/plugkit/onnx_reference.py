"""The CPU reference of an ONNX model, plugged or not, for ``run --compare``.

A model without plugin nodes runs in onnxruntime (CPU). A plugged model runs
in onnx's reference evaluator, each plugin node through the numpy reference of
its op schema (``plugins/<op>/op.py``), so the engine is compared with what
the op is specified to compute, not with another implementation of it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .errors import PlugkitError

PLUGIN_META_ATTRS = ("plugin_version", "plugin_namespace")


def _schema_op_class(schema, domain: str):
    """An onnx.reference OpRun for a plugin node, running ``schema.reference``."""
    import numpy as np
    from onnx.reference.op_run import OpRun

    def _run(self, *inputs, **attrs):
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()
                 if k not in PLUGIN_META_ATTRS}
        results = schema.run_reference(*inputs, **attrs)
        dtype = next((x.dtype for x in inputs if x is not None and x.dtype.kind == "f"), None)
        return tuple(np.asarray(r, dtype=dtype if dtype is not None and np.asarray(r).dtype.kind == "f"
                                else None) for r in results)

    # onnx.reference matches a new op by (op_domain, class name).
    return type(schema.name, (OpRun,), {"op_domain": domain, "_run": _run})


def run_reference_model(onnx_path: str | os.PathLike, feeds: Mapping[str, Any],
                        schemas: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Outputs of the model at ``onnx_path`` for ``feeds`` (name -> numpy array),
    computed on the CPU."""
    import numpy as np
    import onnx

    from .doctor import plugin_nodes

    path = Path(onnx_path)
    if not path.is_file():
        raise PlugkitError(f"reference model {path} does not exist")
    model = onnx.load(str(path))
    feeds = {name: np.asarray(value) for name, value in feeds.items()}
    nodes, _ = plugin_nodes(model)
    output_names = [o.name for o in model.graph.output]
    if not nodes:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(zip(output_names, session.run(output_names, feeds)))

    from onnx.reference import ReferenceEvaluator

    from .ops import load_schemas

    schemas = dict(schemas) if schemas is not None else load_schemas()
    custom = {}
    for node in nodes:
        if node.op_type not in schemas:
            raise PlugkitError(
                f"the reference model has plugin node {node.op_type} but no op schema declares it "
                f"(known ops: {', '.join(sorted(schemas)) or 'none'}); compare against the un-plugged "
                f"model instead")
        custom[(node.domain, node.op_type)] = _schema_op_class(schemas[node.op_type], node.domain)
    evaluator = ReferenceEvaluator(model, new_ops=list(custom.values()))
    return dict(zip(output_names, evaluator.run(None, feeds)))
