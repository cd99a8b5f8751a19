"""Issue 22 #12: verify compares like with like (an unchanged model matches itself; bf16 models
verify), has --rtol/--atol and its own exit codes; the T5 fp16 double-Cast norm and
nn.RMSNorm(elementwise_affine=False) at opset 23 are replaced."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_chains as chains
from plugkit.cli import main
from plugkit.onnx_tools import insert_plugins, plugin_nodes
from plugkit.onnx_tools.verify import verify_models


def t5_fp16_norm():
    """T5LayerNorm in fp16 as TorchScript exports it: X is cast to float twice."""
    f16 = TensorProto.FLOAT16
    nodes = [helper.make_node("Cast", ["X"], ["x32a"], to=TensorProto.FLOAT, name="/Cast"),
             helper.make_node("Pow", ["x32a", "two"], ["sq"], name="/Pow"),
             helper.make_node("ReduceMean", ["sq"], ["mean"], axes=[-1], keepdims=1, name="/ReduceMean"),
             helper.make_node("Add", ["mean", "eps"], ["add"], name="/Add"),
             helper.make_node("Sqrt", ["add"], ["root"], name="/Sqrt"),
             helper.make_node("Div", ["one", "root"], ["inv"], name="/Div"),
             helper.make_node("Cast", ["X"], ["x32b"], to=TensorProto.FLOAT, name="/Cast_1"),
             helper.make_node("Mul", ["x32b", "inv"], ["norm"], name="/Mul"),
             helper.make_node("Cast", ["norm"], ["norm16"], to=f16, name="/Cast_2"),
             helper.make_node("Mul", ["w", "norm16"], ["Y"], name="/Mul_1")]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.linspace(0.5, 1.5, 16).astype(np.float16), "w")]
    graph = helper.make_graph(nodes, "t5", [helper.make_tensor_value_info("X", f16, ["N", 5, 16])],
                              [helper.make_tensor_value_info("Y", f16, ["N", 5, 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_t5_fp16_double_cast_norm_is_replaced():
    model = t5_fp16_norm()
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 1, result.summary()
    assert [n.op_type for n in result.model.graph.node] == ["RMSNorm"]
    assert verify_models(model, result.model).ok


def rms_normalization_ones_full_shape():
    """nn.RMSNorm(16, elementwise_affine=False) exported at opset 23: scale = ones(X.shape)."""
    node = helper.make_node("RMSNormalization", ["X", "ones"], ["Y"], axis=-1, epsilon=1e-6, name="/rms")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 5, 16])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 5, 16])],
                              [numpy_helper.from_array(np.ones((2, 5, 16), np.float32), "ones")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])


def test_opset_23_norm_without_affine_is_replaced():
    model = rms_normalization_ones_full_shape()
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 1, result.summary()
    scale = next(i for i in result.model.graph.initializer if i.name == plugin_nodes(result.model)[0].input[1])
    np.testing.assert_array_equal(numpy_helper.to_array(scale), np.ones(16, np.float32))
    assert verify_models(model, result.model).ok


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_an_unchanged_model_matches_itself_exactly(dtype):
    """Both models run in one evaluator, so nothing differs but the replaced subgraphs."""
    model = chains.build(chains.Chain(cast="norm" if dtype == np.float16 else "none",
                                      pre=("MatMul",), post=("MatMul", "Tanh")))
    report = verify_models(model, model)
    assert report.ok and all(c.comparison.max_abs == 0 for c in report.checks)


def bf16_chain():
    bf16 = TensorProto.BFLOAT16
    nodes = [helper.make_node("Mul", ["X", "X"], ["sq"]),
             helper.make_node("ReduceMean", ["sq", "axes"], ["mean"], keepdims=1),
             helper.make_node("Add", ["mean", "eps"], ["add"]),
             helper.make_node("Sqrt", ["add"], ["root"]),
             helper.make_node("Div", ["X", "root"], ["Y"])]
    eps = helper.make_tensor("eps", bf16, [], [1e-5])
    inits = [numpy_helper.from_array(np.array([-1], np.int64), "axes"), eps]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", bf16, ["N", 8])],
                              [helper.make_tensor_value_info("Y", bf16, ["N", 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_bf16_models_are_verifiable():
    model = bf16_chain()
    report = verify_models(model, model)
    assert report.ok and report.checks


def test_exit_codes_and_tolerance_options(tmp_path, capsys):
    model = chains.build(chains.Chain())
    plugged = insert_plugins(model, ["RMSNorm"]).model
    bad = onnx.ModelProto()
    bad.CopyFrom(plugged)
    next(a for a in plugin_nodes(bad)[0].attribute if a.name == "epsilon").f = 3.0  # computes something else
    for name, m in (("model", model), ("plugged", plugged), ("bad", bad)):
        onnx.save(m, tmp_path / f"{name}.onnx")
    paths = {k: str(tmp_path / f"{k}.onnx") for k in ("model", "plugged", "bad")}
    assert main(["verify", paths["model"], paths["plugged"]]) == 0
    assert main(["verify", paths["model"], paths["bad"]]) == 1
    assert main(["verify", paths["model"], paths["bad"], "--rtol", "10", "--atol", "10"]) == 0
    assert main(["verify", paths["plugged"], paths["model"]]) == 2  # swapped
    assert "swapped" in capsys.readouterr().err
