"""Plugged test models for engine builds: one model per shipped plugin and dtype it declares.

By default a plugin's models come from its op schema (``plugins/<op>/op.py``): one plugin node,
the schema's first test case that sets attributes (else the first with no empty tensor); the
first input is a graph input whose leading dimension is dynamic (profile 1 .. 4x the case's
size), and so is each input that shares that leading dimension (same rank and size, as b of an
elementwise a * b); the other inputs the case gives are constants (in their spec's fixed dtype, else the
model's); outputs as the compiled plugin states them, a data-dependent dimension as a named
dim_param. An op whose inputs do not fit that (integer tables, optional inputs, several dynamic
inputs) writes ``plugins/<op>/engine_models.py`` with ``engine_models() -> list[EngineModel]``
(it may build them with :func:`plugged_model`); the engine suites (``tests/test_engine_rtx.py``)
pick it up with no other change.

Models are made per op when the suites collect them: an op whose models cannot be made gives
one :class:`UnbuildableModel`, which fails its own test with the error (:func:`require`)
instead of stopping the session.
"""
from __future__ import annotations

import dataclasses
import traceback
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from plugkit.host import DataDependentDim
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


@dataclasses.dataclass
class UnbuildableModel:
    """An op whose engine models could not be made: ``error`` says why."""

    id: str
    error: str


def require(case: EngineModel | UnbuildableModel) -> EngineModel:
    """The model, or a failure of the calling test with the reason it could not be made."""
    if isinstance(case, UnbuildableModel):
        pytest.fail(f"cannot make the engine model {case.id}:\n{case.error}", pytrace=False)
    return case


def constant(name: str, shape, dtype: str, rng) -> onnx.TensorProto:
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


def _onnx_dim(d):
    """An output dim for a value info: a data-dependent one is named by its size output, a
    symbolic expression such as "(N * 4)" is a dim_param as it is."""
    return (d.name or f"size{d.size_output}") if isinstance(d, DataDependentDim) else d


def plugged_model(id: str, schema: OpSchema, dtype: str, attrs: Mapping[str, Any] | None,
                  graph_inputs: Sequence[tuple[str, str, Sequence[int | str]]],
                  constants: Sequence[onnx.TensorProto], shapes: list[str]) -> EngineModel:
    """A model of one plugin node of ``schema`` in ``dtype``. ``graph_inputs`` are (name, dtype,
    shape with symbol names for dynamic dims); the node's inputs are the graph inputs, then the
    constants, in the schema's order (by name; an optional input not given is left out). Output
    dtypes and shapes are the compiled plugin's, through the host."""
    attrs = node_attrs(schema, attrs)
    fields = {k: v for k, v in attrs.items() if k not in ("plugin_version", "plugin_namespace")}
    given = {name: (elem, list(shape)) for name, elem, shape in graph_inputs}
    given.update({c.name: (helper.tensor_dtype_to_np_dtype(c.data_type).name if c.data_type !=
                           onnx.TensorProto.BFLOAT16 else "bfloat16", list(c.dims)) for c in constants})
    names = [spec.name for spec in schema.inputs if spec.name in given]
    missing = [spec.name for spec in schema.inputs if spec.name not in given and not spec.optional]
    if missing or len(names) != len(given):
        raise ValueError(f"{id}: inputs {sorted(given)} do not match {schema.name}'s "
                         f"{[s.name for s in schema.inputs]} (missing {missing})")
    plugin = plugin_library().creator(schema.name, schema.version, schema.namespace).create(fields)
    out_names = [o.name for o in schema.outputs]
    out_dtypes = plugin.output_dtypes([given[n][0] for n in names])
    out_shapes = plugin.output_shapes([given[n][1] for n in names], out_names)
    outputs = [helper.make_tensor_value_info(name, ONNX_DTYPES[d], [_onnx_dim(x) for x in shape])
               for name, d, shape in zip(out_names, out_dtypes, out_shapes)]
    inputs = [helper.make_tensor_value_info(name, ONNX_DTYPES[elem], list(shape))
              for name, elem, shape in graph_inputs]
    node = helper.make_node(schema.name, names, out_names, name=f"/{schema.name}", domain=DOMAIN, **attrs)
    graph = helper.make_graph([node], id.replace("-", "_"), inputs, outputs, list(constants))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid(DOMAIN, DOMAIN_VERSION)])
    onnx.checker.check_model(model)
    return EngineModel(id, schema, model, shapes, {node.name: fields})


def schema_model(schema: OpSchema, dtype: str) -> EngineModel:
    """The model of ``dtype`` from the op's schema (see the module's doc)."""
    case = _default_case(schema)
    shapes = [tuple(int(d) for d in s) for s in case["inputs"]]
    rng = np.random.default_rng(0)
    lead = shapes[0][0]
    # The first input's leading dim is dynamic (N), and so is every input's that shares it (same
    # rank and leading dim, as b of an elementwise a * b): a constant there would not broadcast.
    batched = [i == 0 or (len(s) == len(shapes[0]) and s[0] == lead != 1) for i, s in enumerate(shapes)]
    graph_inputs, constants, profiles = [], [], []
    for spec, shape, dynamic in zip(schema.inputs, shapes, batched):
        if not dynamic:
            constants.append(constant(spec.name, shape, spec.dtype or dtype, rng))
            continue
        graph_inputs.append((spec.name, spec.dtype or dtype, ["N", *shape[1:]]))
        profile = ["x".join(map(str, (n, *shape[1:]))) for n in (1, lead, 4 * lead)]
        profiles.append(f"{spec.name}:{','.join(profile)}")
    return plugged_model(f"{schema.name}-{dtype}", schema, dtype, case.get("attrs"), graph_inputs, constants,
                         profiles)


def schema_models(schema: OpSchema) -> list[EngineModel]:
    """One model per dtype the op declares, from its schema (see the module's doc)."""
    return [schema_model(schema, dtype) for dtype in schema.dtypes]


def _error() -> str:
    return traceback.format_exc(limit=-3)


def engine_models() -> list[EngineModel | UnbuildableModel]:
    """Every shipped plugin's engine models: its engine_models.py where it has one, else
    :func:`schema_models`. What cannot be made is an :class:`UnbuildableModel` in its place (per
    dtype on the schema path, per op from an engine_models.py)."""
    models: list[EngineModel | UnbuildableModel] = []
    for name, schema in sorted(load_schemas().items()):
        try:
            own = sibling_module(name, "engine_models.py")
        except (Exception, pytest.fail.Exception):
            models.append(UnbuildableModel(name, _error()))
            continue
        if own is None:
            for dtype in schema.dtypes:
                try:
                    models.append(schema_model(schema, dtype))
                except (Exception, pytest.fail.Exception):
                    models.append(UnbuildableModel(f"{name}-{dtype}", _error()))
            continue
        try:
            models += own.engine_models()
        except (Exception, pytest.fail.Exception):
            models.append(UnbuildableModel(name, _error()))
    return models
