"""--fp16/--bf16/--strongly-typed on TensorRT 10 and 11 (pure logic), and the fp16
cast pass checked numerically with onnx's reference evaluator, on the CPU."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from plugkit.precision import PrecisionError, cast_model, precision_plan
from plugkit.tolerances import compare


def test_trt10_weak_typing_uses_builder_flags():
    plan = precision_plan(10, fp16=True)
    assert plan.builder_flags == ("FP16",) and not plan.strongly_typed and plan.cast_to is None
    assert precision_plan(10, fp16=True, bf16=True).builder_flags == ("FP16", "BF16")
    assert precision_plan(10).builder_flags == ()


def test_trt10_strongly_typed_casts_instead_of_flags():
    plan = precision_plan(10, fp16=True, strongly_typed=True)
    assert plan.builder_flags == () and plan.strongly_typed and plan.cast_to == "float16"
    plan = precision_plan(10, strongly_typed=True)
    assert plan.strongly_typed and plan.cast_to is None and plan.notes == ()


@pytest.mark.parametrize("major", [11, 12])
def test_trt11_has_no_weak_typing(major):
    plan = precision_plan(major, fp16=True)
    assert plan.builder_flags == () and plan.strongly_typed and plan.cast_to == "float16"
    assert "TensorRT 11" in plan.notes[0] and "float16" in plan.notes[0]
    assert precision_plan(major, bf16=True).cast_to == "bfloat16"
    plain = precision_plan(major)
    assert plain.strongly_typed and plain.cast_to is None and plain.builder_flags == ()


def test_one_float_type_when_strongly_typed():
    with pytest.raises(PrecisionError, match="choose --fp16 or --bf16"):
        precision_plan(11, fp16=True, bf16=True)
    with pytest.raises(PrecisionError, match="choose --fp16 or --bf16"):
        precision_plan(10, fp16=True, bf16=True, strongly_typed=True)


def test_old_tensorrt_refused():
    with pytest.raises(PrecisionError, match="TensorRT 10 or newer"):
        precision_plan(8, fp16=True)


def small_model():
    """MatMul + Constant(value_floats) + Relu + Resize (float32-only scales) + Cast(to=FLOAT)."""
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(rng.randn(4, 4).astype(np.float32), "W"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.int64), "shape")]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"]),
        helper.make_node("Constant", [], ["c"], value_floats=[0.5, 0.25, 0.125, 1.0]),
        helper.make_node("Add", ["m", "c"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["r4"]),
        helper.make_node("Resize", ["r4", "", "scales"], ["y"], mode="nearest"),
        helper.make_node("Cast", ["y"], ["yc"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["yc", "yc"], ["z"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("to, elem", [("float16", TensorProto.FLOAT16), ("bfloat16", TensorProto.BFLOAT16)])
def test_cast_model(to, elem):
    model = small_model()
    x = np.random.RandomState(1).randn(1, 4).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]

    cast = cast_model(model, to)
    onnx.checker.check_model(cast, full_check=True)
    # The interface keeps float32; the weights and the computation change type.
    assert cast.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert cast.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    types = {i.name: i.data_type for i in cast.graph.initializer}
    assert types["W"] == elem
    assert types["scales"] == TensorProto.FLOAT  # Resize's scales must stay float32
    assert types["shape"] == TensorProto.INT64
    casts = [n for n in cast.graph.node if n.op_type == "Cast"]
    assert {a.i for n in casts for a in n.attribute} >= {elem, TensorProto.FLOAT}
    constant = next(n for n in cast.graph.node if n.op_type == "Constant")
    assert constant.attribute[0].name == "value" and constant.attribute[0].t.data_type == elem
    # The original model is untouched.
    assert {i.name: i.data_type for i in model.graph.initializer}["W"] == TensorProto.FLOAT

    actual = ReferenceEvaluator(cast).run(None, {"x": x})[0]
    assert actual.dtype == np.float32
    result = compare(actual, expected, to)
    assert result.ok, str(result)


def test_cast_model_computed_scales_get_a_cast_back_to_float32():
    nodes = [helper.make_node("Concat", ["ones", "two"], ["scales"], axis=0),
             helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")]
    inits = [numpy_helper.from_array(np.array([1, 1], np.float32), "ones"),
             numpy_helper.from_array(np.array([2, 2], np.float32), "two")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cast = cast_model(model, "float16")
    onnx.checker.check_model(cast, full_check=True)
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(ReferenceEvaluator(cast).run(None, {"x": x})[0],
                                  ReferenceEvaluator(model).run(None, {"x": x})[0])


def test_cast_model_bf16_needs_opset_13():
    model = small_model()
    model.opset_import[0].version = 11
    with pytest.raises(PrecisionError, match="opset 13"):
        cast_model(model, "bfloat16")


def test_cast_model_unknown_type():
    with pytest.raises(PrecisionError, match="float16 or bfloat16"):
        cast_model(small_model(), "int8")
