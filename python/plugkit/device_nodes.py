"""Plugin nodes of an ONNX model run by the plugin itself on the GPU
(``plugkit verify --device cuda``): the rest of the graph stays in
``onnx.reference.ReferenceEvaluator``; each plugin node becomes an operator
that copies its inputs to the GPU, runs the plugin from a plugin library
through the host, and copies the outputs back.

As TensorRT does, each node's plugin is created once from the node's own
attributes (``createPlugin(kBUILD)`` with the fields the ONNX parser would
pass), taken through the build phase and serialized, re-created in the
runtime phase from those fields and attached to a context; at each new input
shape the build-phase shape queries and ``configurePlugin`` run for that shape
(an engine's profile covers every shape it runs) and the runtime plugin gets
``onShapeChange``, then ``enqueue``.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

from .errors import PluginLibraryError
from .host import check_formats, plan_outputs, trim_outputs
from .ops import load_schemas
from .schema import OpSchema
from .tensors import dtype_name, numpy_to_torch


class NodePlugin:
    """One plugin node's plugin, created once with the node's attributes, run at any input shape."""

    def __init__(self, creator, attrs: Mapping[str, Any], layer_name: str):
        self.layer_name = layer_name
        self.build = creator.create(attrs, phase="build", layer_name=layer_name)
        self._creator = creator
        self.runtime = None  # created at the first run, after the build phase (as an engine build does)
        self._specs = None
        self._workspace = None

    def _shape_change(self, specs: list[tuple[str, list[int]]]) -> None:
        build, in_dtypes = self.build, [d for d, _ in specs]
        self.output_dtypes = build.output_dtypes(in_dtypes)
        self._plan = plan = plan_outputs(build, specs, self.output_dtypes)
        self.alloc_shapes, self.output_dims = plan.alloc_shapes, plan.dims
        check_formats(build, in_dtypes, self.output_dtypes)
        build.configure(specs, plan.ranges)
        self.workspace_bytes = build.workspace_size(specs, plan.ranges)
        if self.runtime is None:
            tactics = build.valid_tactics()
            fields = build.serialize()
            runtime = self._creator.create(phase="runtime", layer_name=self.layer_name, fields=fields)
            self.runtime = runtime.attach_to_context()
            self.runtime.set_tactic(tactics[0] if tactics else 0)
        self.runtime.on_shape_change(specs, list(zip(self.output_dtypes, self.output_dims)))
        self._specs = specs

    def __call__(self, inputs: Sequence[Any]) -> list[Any]:
        """Outputs (torch CUDA tensors) for ``inputs`` (torch CUDA tensors, contiguous)."""
        import torch

        specs = [(dtype_name(t.dtype), list(t.shape)) for t in inputs]
        if specs != self._specs:
            self._shape_change(specs)
        device = inputs[0].device
        outputs = [torch.empty(s, dtype=getattr(torch, d), device=device)
                   for d, s in zip(self.output_dtypes, self.alloc_shapes)]
        workspace = torch.empty(self.workspace_bytes, dtype=torch.uint8, device=device) if self.workspace_bytes else None
        self.runtime.enqueue(inputs, outputs, 0 if workspace is None else workspace.data_ptr(),
                             output_dims=self.output_dims)
        return trim_outputs(outputs, self._plan, self.layer_name)


def _to_device(array, device):
    import numpy as np

    return numpy_to_torch(np.ascontiguousarray(array)).to(device)


def _to_host(tensor):
    """A CUDA tensor as numpy, dtype kept (bfloat16 as ml_dtypes.bfloat16, as the evaluator holds it)."""
    import torch

    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).cpu().numpy().view(ml_dtypes.bfloat16)
    return tensor.cpu().numpy()


def device_op(schema: OpSchema, creator, device: str = "cuda"):
    """An OpRun class for ``schema``'s plugin nodes that runs the plugin of ``creator`` on ``device``."""
    from onnx.reference.op_run import OpRun

    from .onnx_tools.plugin_node import DOMAIN, read_node_attrs

    def _run(self, *inputs, **attrs):
        if getattr(self, "_plugkit_plugin", None) is None:
            name = self.onnx_node.name or f"{schema.name} node"
            self._plugkit_plugin = NodePlugin(creator, read_node_attrs(schema, attrs, self.onnx_node.name), name)
        present = [x for x in inputs if x is not None]
        outputs = self._plugkit_plugin([_to_device(x, device) for x in present])
        return tuple(_to_host(y) for y in outputs)

    return type(schema.name, (OpRun,), {"op_domain": DOMAIN, "op_schema": None, "_run": _run,
                                        "__doc__": f"{schema.name} run by its plugin on {device}."})


def device_ops(model, libraries: Iterable[str | os.PathLike], schemas: Mapping[str, OpSchema] | None = None,
               device: str = "cuda") -> list:
    """OpRun classes (``ReferenceEvaluator(new_ops=...)``) for the plugin nodes of ``model``: each op's
    plugin from the first of ``libraries`` that has it. A node whose plugin no library has is an error."""
    from .onnx_tools.plugin_node import plugin_nodes
    from .plugin_libraries import open_libraries
    from .tensors import require_cuda

    require_cuda("plugin nodes on --device cuda", PluginLibraryError)
    opened = open_libraries(libraries)
    if not opened:
        raise PluginLibraryError("--device cuda runs each plugin node's plugin from a plugin library; "
                                 "name it with --plugins LIB")
    schemas = load_schemas() if schemas is None else schemas
    ops = []
    for op_type in dict.fromkeys(n.op_type for n in plugin_nodes(model)):
        if op_type not in schemas:
            raise PluginLibraryError(f"plugin node op {op_type!r}: no op.py under plugins/ declares it")
        schema = schemas[op_type]
        creator = next((lib.creator(schema.name, schema.version, schema.namespace) for lib in opened
                        if (schema.name, schema.version, schema.namespace)
                        in {(c.name, c.version, c.namespace) for c in lib.creators}), None)
        if creator is None:
            raise PluginLibraryError(
                f"no library of {', '.join(lib.path for lib in opened)} has the plugin {schema.name} "
                f"v{schema.version} (namespace {schema.namespace!r}) that the plugged model's nodes need; "
                f"rebuild it (python -m plugkit build) or add its library with --plugins")
        ops.append(device_op(schema, creator, device))
    return ops
