"""Issue 22 #3: `insert` writes no plugin node its plugin would refuse, and `doctor` creates
each plugin node through the host with its real fields and input shapes, as TensorRT will."""
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_chains as chains
from plugkit import testing
from plugkit.cli import main
from plugkit.onnx_tools import insert_plugins, plugin_nodes


@pytest.mark.parametrize("epsilon", [math.nan, -1e-5, 0.0, math.inf])
def test_insert_leaves_a_norm_with_a_bad_epsilon_alone(epsilon):
    model = chains.onnx_rms_normalization(shape=("N", 3, 4), axis=-1, epsilon=epsilon)
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 0 and not plugin_nodes(result.model)
    assert "the plugin would refuse it: epsilon must be a positive number" in result.summary()


def scalar_chain():
    """x / sqrt(mean(x^2) + eps) * w on a rank-0 x (ReduceMean without axes reduces all)."""
    nodes = [helper.make_node("Pow", ["x", "two"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["mean"], keepdims=1),
             helper.make_node("Add", ["mean", "eps"], ["add"]),
             helper.make_node("Sqrt", ["add"], ["root"]),
             helper.make_node("Div", ["x", "root"], ["norm"]),
             helper.make_node("Mul", ["norm", "w"], ["y"])]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
             numpy_helper.from_array(np.array(1.5, np.float32), "w")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_insert_leaves_a_rank_0_chain_alone():
    model = scalar_chain()
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 0
    assert "rank >= 1" in result.summary()


def node_model(shape=("batch", 8), scale_shape=(8,), **attrs):
    """One RMSNorm plugin node; attrs replace or (None) drop its fields."""
    fields = {"plugin_version": "1", "plugin_namespace": "plugkit", "epsilon": 1e-5, "axis": -1, **attrs}
    node = helper.make_node("RMSNorm", ["x", "scale"], ["y"], name="/norm", domain="plugkit",
                            **{k: v for k, v in fields.items() if v is not None})
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones(scale_shape, np.float32), "scale")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("plugkit", 1)])


@pytest.mark.parametrize("model, message", [
    (node_model(epsilon=math.nan), "epsilon must be a positive number"),
    (node_model(epsilon=-1.0), "epsilon must be a positive number"),
    (node_model(bogus=3), "bogus"),
    (node_model(epsilon="tiny"), "createPlugin refuses"),
    (node_model(shape=()), "getOutputShapes refuses the node's input shapes"),
    (node_model(axis=5), "getOutputShapes refuses"),
    (node_model(shape=(2, 8), scale_shape=(3,)), "configurePlugin refuses"),
])
def test_doctor_creates_each_node_through_the_host(tmp_path, capsys, model, message):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["doctor", str(path), "--plugins", str(testing.built_library())]) == 1
    out = capsys.readouterr().out
    assert "FAIL     node '/norm'" in out and message in out


def test_doctor_passes_a_good_node(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(node_model(), path)
    assert main(["doctor", str(path), "--plugins", str(testing.built_library())]) == 0
    assert "ok       node '/norm'" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage that is no model", b"hello world\n"])
def test_doctor_fails_on_a_file_that_is_not_a_model(tmp_path, capsys, content):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    assert main(["doctor", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not an ONNX model" in err and len(err.strip().splitlines()) == 1
