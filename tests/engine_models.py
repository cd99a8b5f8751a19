"""Plugged test models for engine builds: one model per shipped plugin and dtype it declares.

By default a plugin's models come from its op schema (``plugins/<op>/op.py``): one plugin node,
the schema's first test case that sets attributes (else the first with no empty tensor); the
first input is a graph input whose leading dimension is dynamic (profile 1 .. 4x the case's
size), the other inputs are constants; inputs and outputs in the model's dtype. An op whose
inputs do not fit that (integer lengths, data-dependent outputs, several dynamic inputs)
writes ``plugins/<op>/engine_models.py`` with ``engine_models() -> list[EngineModel]``; the
engine suites (``tests/test_engine_rtx.py``) pick it up with no other change.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from plugkit.onnx_tools.plugin_node import DOMAIN, DOMAIN_VERSION, node_attrs
from plugkit.ops import load_schemas, sibling_module
from plugkit.schema import OpSchema
from plugkit.testing import plugin_library

ONNX_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16,
               "bfloat16": onnx.TensorProto.BFLOAT16, "int32": onnx.TensorProto.INT32,
               "int64": onnx.TensorProto.INT64, "int8": onnx.TensorProto.INT8, "bool": onnx.TensorProto.BOOL}


@dataclasses.dataclass
class EngineModel:
    """A plugged model to build: ``shapes`` are ``plugkit engine --shapes`` specs; ``fields`` are
    the plugin fields (op attributes) its plugin node carries, by node name."""

    id: str
    op: OpSchema
    model: onnx.ModelProto
    shapes: list[str]
    fields: dict[str, dict[str, Any]]


def _constant(name: str, shape, dtype: str, rng) -> onnx.TensorProto:
    values = rng.standard_normal(shape).astype(np.float32) + 1.0
    if dtype == "bfloat16":  # float32 with the low 16 bits cut
        bits = (values.view(np.uint32) >> 16).astype(np.uint16)
        return helper.make_tensor(name, onnx.TensorProto.BFLOAT16, shape, bits.tobytes(), raw=True)
    if dtype in ("int32", "int64", "int8"):
        values = rng.integers(0, 4, shape)
    return numpy_helper.from_array(values.astype(dtype), name)


def _default_case(schema: OpSchema) -> Mapping[str, Any]:
    cases = [c for c in schema.test_cases if all(int(np.prod(s)) > 0 and len(s) for s in c["inputs"])]
    if not cases:
        raise ValueError(f"op {schema.name} has no test case without empty tensors; write "
                         f"plugins/<op>/engine_models.py")
    with_attrs = [c for c in cases if c.get("attrs")]
    return (with_attrs or cases)[0]


def schema_models(schema: OpSchema) -> list[EngineModel]:
    """One model per dtype the op declares, from its schema (see the module's doc)."""
    case = _default_case(schema)
    shapes = [tuple(int(d) for d in s) for s in case["inputs"]]
    attrs = node_attrs(schema, case.get("attrs"))
    op_fields = {k: v for k, v in attrs.items() if k not in ("plugin_version", "plugin_namespace")}
    models = []
    for dtype in schema.dtypes:
        rng = np.random.default_rng(0)
        first = schema.inputs[0].name
        dynamic = ["N", *shapes[0][1:]]
        inputs = [helper.make_tensor_value_info(first, ONNX_DTYPES[dtype], dynamic)]
        constants = [_constant(spec.name, shape, dtype, rng)
                     for spec, shape in zip(schema.inputs[1:], shapes[1:])]
        # Output dtypes and (symbolic) shapes as the compiled plugin states them, through the host.
        plugin = plugin_library().creator(schema.name, schema.version, schema.namespace).create(op_fields)
        out_dtypes = plugin.output_dtypes([dtype] * len(schema.inputs))
        out_shapes = plugin.output_shapes([dynamic, *shapes[1:]])
        outputs = [helper.make_tensor_value_info(o.name, ONNX_DTYPES[d], shape)  # "(N * 4)": a dim_param
                   for o, d, shape in zip(schema.outputs, out_dtypes, out_shapes)]
        node = helper.make_node(schema.name, [t.name for t in schema.inputs], [o.name for o in schema.outputs],
                                name=f"/{schema.name}", domain=DOMAIN, **attrs)
        graph = helper.make_graph([node], f"{schema.name}_{dtype}", inputs, outputs, constants)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                        helper.make_opsetid(DOMAIN, DOMAIN_VERSION)])
        lead = shapes[0][0]
        profile = ["x".join(map(str, (n, *shapes[0][1:]))) for n in (1, lead, 4 * lead)]
        models.append(EngineModel(f"{schema.name}-{dtype}", schema, model, [f"{first}:{','.join(profile)}"],
                                  {node.name: op_fields}))
    return models


def engine_models() -> list[EngineModel]:
    """Every shipped plugin's engine models: its engine_models.py where it has one, else
    :func:`schema_models`."""
    models = []
    for name, schema in sorted(load_schemas().items()):
        own = sibling_module(name, "engine_models.py")
        models += own.engine_models() if own is not None else schema_models(schema)
    return models
