"""Issue 22 "make it stay fixed": insert on random, often broken, graphs built from the ops of
an RMSNorm chain ends in a result or a PlugkitError, never in another exception; and a result
is always a model that passes onnx.checker and whose plugin nodes the op's rules accept."""
import math

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from plugkit.errors import PlugkitError
from plugkit.onnx_tools import insert_plugins, load_rewrites, plugin_nodes
from plugkit.ops import get_schema

DTYPES = [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE, TensorProto.INT64]
RMS_NORM = load_rewrites("RMSNorm")  # once: importing the patterns is most of an example's time
EPSILONS = [1e-5, 0.0, -1.0, math.nan, math.inf, 1e30]


@st.composite
def random_models(draw):
    rank = draw(st.integers(0, 4))
    shape = [draw(st.sampled_from([1, 2, 5, "N"])) for _ in range(rank)]
    dtype = draw(st.sampled_from(DTYPES))
    opset = draw(st.sampled_from([9, 13, 17, 18, 23]))
    tensors = ["X"]
    nodes, inits = [], []

    def const(value, elem=TensorProto.FLOAT):
        name = f"c{len(inits)}"
        with np.errstate(over="ignore"):
            array = np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(elem))
        inits.append(numpy_helper.from_array(array, name) if elem != TensorProto.BFLOAT16 else
                     helper.make_tensor(name, elem, array.shape, array.astype(np.float32).ravel().tolist()))
        return name

    if draw(st.booleans()):  # start with a whole RMSNorm chain, so that some examples match
        float_dtype = draw(st.sampled_from(DTYPES[:3]))
        axes = [draw(st.integers(-2, 1))]
        mean_ins = ["sq"] + ([const(axes, TensorProto.INT64)] if opset >= 18 else [])
        mean_attrs = {} if opset >= 18 else {"axes": axes}
        nodes += [helper.make_node("Pow", ["X", const(2.0, float_dtype)], ["sq"]),
                  helper.make_node("ReduceMean", mean_ins, ["mean"], keepdims=1, **mean_attrs),
                  helper.make_node("Add", ["mean", const(draw(st.sampled_from(EPSILONS)), float_dtype)], ["add"]),
                  helper.make_node("Sqrt", ["add"], ["root"]),
                  helper.make_node("Reciprocal", ["root"], ["inv"]),
                  helper.make_node("Mul", ["X", "inv"], ["normed"])]
        tensors.append("normed")
    for i in range(draw(st.integers(0 if len(tensors) > 1 else 1, 6))):
        op = draw(st.sampled_from(["Pow", "Mul", "ReduceMean", "Add", "Sqrt", "Reciprocal", "Div", "Cast",
                                   "RMSNormalization", "Relu"]))
        a = draw(st.sampled_from(tensors))
        out = f"t{i}"
        attrs = {}
        if op in ("Pow", "Add", "Mul", "Div"):
            b = draw(st.sampled_from(tensors + ["const"]))
            if b == "const":
                b = const(draw(st.sampled_from([2.0, 1.0] + EPSILONS)), draw(st.sampled_from(DTYPES[:3])))
            ins = [a, b]
        elif op == "ReduceMean":
            axes = draw(st.lists(st.integers(-5, 4), max_size=3))
            if opset >= 18:
                ins = [a] + ([const(axes, TensorProto.INT64)] if axes else [])
            else:
                ins = [a]
                if axes:
                    attrs["axes"] = axes
            attrs["keepdims"] = draw(st.sampled_from([0, 1]))
        elif op == "Cast":
            ins, attrs["to"] = [a], draw(st.sampled_from(DTYPES))
        elif op == "RMSNormalization":
            scale_rank = draw(st.integers(0, 3))
            ins = [a, draw(st.sampled_from(tensors + [const(np.ones([2] * scale_rank))]))]
            attrs["axis"] = draw(st.integers(-5, 4))
            attrs["epsilon"] = draw(st.sampled_from(EPSILONS))
        else:
            ins = [a]
        nodes.append(helper.make_node(op, ins, [out], name=f"/{op}_{i}", **attrs))
        tensors.append(out)
    graph = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("X", dtype, shape)],
                              [helper.make_tensor_value_info(tensors[-1], dtype, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=random_models())
def test_insert_on_random_graphs_fails_clearly_or_succeeds(model):
    try:
        result = insert_plugins(model, [RMS_NORM])
    except PlugkitError:
        return
    if result.count():
        onnx.checker.check_model(result.model)
        schema = get_schema("RMSNorm")
        for node in plugin_nodes(result.model):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute
                     if a.name in ("axis", "epsilon")}
            assert schema.check([None, None], **attrs) is None, attrs
