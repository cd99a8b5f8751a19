"""plugkit insert: patterns, attribute mapping, the CLI, bad input."""
import hashlib
import itertools

import numpy as np
import onnx
import pytest
from onnx import helper

import onnx_chains as chains
from plugkit.cli import main
from plugkit.errors import OnnxModelError, OpsetConflictError, UnknownOpError
from plugkit.onnx_tools import DOMAIN, insert_plugins, plugin_nodes
from plugkit.onnx_tools.verify import verify_models


def plugin_attrs(model):
    (node,) = plugin_nodes(model)
    return node, {a.name: helper.get_attribute_value(a) for a in node.attribute}


def remaining_ops(model):
    return sorted(n.op_type for n in model.graph.node)


@pytest.mark.parametrize("square,inverse,cast,scale", [
    (sq, inv, cast, scale)
    for sq, inv, cast, scale in itertools.product(("Pow", "Mul"), ("Reciprocal", "Div1", "DivX"),
                                                  ("none", "norm", "all"), (True, False))
    if not (cast == "norm" and not scale)])
def test_every_spelling_becomes_one_node(square, inverse, cast, scale):
    for opset, constant_nodes, swap in ((18, False, False), (17, True, True)):
        c = chains.Chain(square=square, inverse=inverse, cast=cast, scale=scale, opset=opset,
                         constant_nodes=constant_nodes, swap_add=swap, swap_mul=swap,
                         pre=("Relu",), post=("Tanh",))
        model = chains.build(c)
        result = insert_plugins(model, ["RMSNorm"])
        assert result.count() == 1 and not result.skipped
        leftover = [op for op in remaining_ops(result.model) if op not in ("Relu", "Tanh", "Identity", "RMSNorm")]
        assert leftover in ([], ["Constant"])  # a Constant node may hold the scale
        assert verify_models(model, result.model, dims={"N": [1, 2]}).ok


def test_node_carries_what_tensorrt_reads():
    model = chains.build(chains.Chain(epsilon=1e-6))
    node, attrs = plugin_attrs(insert_plugins(model, ["RMSNorm"]).model)
    assert node.op_type == "RMSNorm" and node.domain == DOMAIN
    assert attrs == {"plugin_version": b"1", "plugin_namespace": b"plugkit",
                     "axis": -1, "epsilon": pytest.approx(1e-6), "stash_type": 1}
    types = {a.name: a.type for a in node.attribute}
    assert types["axis"] == onnx.AttributeProto.INT and types["epsilon"] == onnx.AttributeProto.FLOAT
    assert list(node.input) == ["X", "scale"]


def test_axis_and_epsilon_are_mapped():
    model = chains.build(chains.Chain(shape=("N", 3, 4, 8), normalized=2, epsilon=0.25))
    result = insert_plugins(model, ["RMSNorm"])
    _, attrs = plugin_attrs(result.model)
    assert attrs["axis"] == -2 and attrs["epsilon"] == pytest.approx(0.25)
    assert verify_models(model, result.model).ok


def test_chain_without_scale_gets_ones():
    model = chains.build(chains.Chain(scale=False, shape=("N", 12)))
    plugged = insert_plugins(model, ["RMSNorm"]).model
    node, _ = plugin_attrs(plugged)
    scale = next(i for i in plugged.graph.initializer if i.name == node.input[1])
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(scale), np.ones(12, np.float32))


def test_onnx_rms_normalization_node():
    model = chains.onnx_rms_normalization(shape=("N", 3, 4), axis=1, epsilon=1e-3)
    result = insert_plugins(model, ["RMSNorm"])
    _, attrs = plugin_attrs(result.model)
    assert attrs["axis"] == -2 and attrs["epsilon"] == pytest.approx(1e-3)  # axis 1 of rank 3
    assert remaining_ops(result.model) == ["RMSNorm", "Relu", "Tanh"]
    assert verify_models(model, result.model).ok


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_onnx_rms_normalization_node_of_every_plugin_dtype_is_plugged(dtype):
    # bfloat16 (ONNX element type 16) was once read as a count: "does not take 16 inputs".
    from plugkit.ops import get_schema
    assert dtype in get_schema("RMSNorm").dtypes
    model = chains.onnx_rms_normalization(shape=("N", 64), dtype=dtype)
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 1, [s.reason for s in result.skipped]
    node, _ = plugin_attrs(result.model)
    assert node.input[1] == "scale"  # the scale as it was, in its own dtype
    if dtype != "bfloat16":  # ONNX Runtime's CPU provider has no bf16 kernels
        assert verify_models(model, result.model).ok


def test_explicit_stash_type_1_is_plugged_and_others_refused():
    model = chains.onnx_rms_normalization(stash_type=1)
    result = insert_plugins(model, ["RMSNorm"])
    _, attrs = plugin_attrs(result.model)
    assert attrs["stash_type"] == 1
    refused = insert_plugins(chains.onnx_rms_normalization(stash_type=10), ["RMSNorm"])
    assert refused.count() == 0
    assert "stash_type=10 (FLOAT16)" in refused.skipped[0].reason


def test_scale_broadcast_along_an_inner_normalized_axis():
    model = chains.onnx_rms_normalization(shape=("N", 323, 149), axis=-2, scale_shape=(323, 1))
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 1
    assert verify_models(model, result.model).ok


def test_scale_of_another_dtype_than_x_is_refused_with_both_named():
    # ONNX types Y with the scale's dtype; the plugin returns X's (ONNX Runtime runs neither).
    result = insert_plugins(chains.onnx_rms_normalization(dtype=np.float16, scale_dtype=np.float32), ["RMSNorm"])
    assert result.count() == 0
    reason = result.skipped[0].reason
    assert "X is float16 and scale float32" in reason and "ONNX gives Y the scale's dtype" in reason


def test_dtypes_the_plugin_does_not_take_are_named():
    result = insert_plugins(chains.onnx_rms_normalization(dtype=np.float64), ["RMSNorm"])
    assert result.count() == 0
    assert "the input is float64; the plugin takes bfloat16, float16, float32" in result.skipped[0].reason


def test_two_chains_two_nodes_in_order():
    one = chains.build(chains.Chain(post=("MatMul",)))
    # A second chain behind the first: feed Y through a fresh copy of the chain.
    graph = one.graph
    second = chains.build(chains.Chain(inverse="Div1", seed=1))
    rename = {n: f"b_{n}" for node in second.graph.node for n in (*node.input, *node.output)}
    rename["X"], rename["Y"] = "Y", "Z"
    for node in second.graph.node:
        node.name = f"b{node.name}"
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
        graph.node.append(node)
    for init in second.graph.initializer:
        init.name = rename.get(init.name, init.name)
        graph.initializer.append(init)
    graph.output[0].name = "Z"
    result = insert_plugins(one, ["RMSNorm"])
    assert result.count() == 2
    assert [r.node for r in result.replaced] == ["RMSNorm_0", "RMSNorm_1"]
    assert verify_models(one, result.model).ok


def test_shape_inference_still_works():
    model = chains.build(chains.Chain(post=("Tanh", "MatMul")))
    plugged = insert_plugins(model, ["RMSNorm"]).model
    onnx.checker.check_model(plugged, full_check=True)
    (node,) = plugin_nodes(plugged)
    # Keep only what the plugin node itself declares; infer the rest.
    kept = [v for v in plugged.graph.value_info if v.name in node.output]
    assert kept, "the plugin output keeps its type and shape"
    del plugged.graph.value_info[:]
    plugged.graph.value_info.extend(kept)
    inferred = onnx.shape_inference.infer_shapes(plugged, strict_mode=True)
    types = {v.name: v.type.tensor_type for v in inferred.graph.value_info}
    downstream = [n for n in inferred.graph.node if n.op_type == "MatMul"][0].output[0]
    dims = [d.dim_param or d.dim_value for d in types[downstream].shape.dim]
    assert dims == ["N", 5, 16] and types[downstream].elem_type == onnx.TensorProto.FLOAT


def test_ir_version_and_opsets_kept():
    model = chains.build(chains.Chain())
    plugged = insert_plugins(model, ["RMSNorm"]).model
    assert plugged.ir_version == model.ir_version
    assert {(o.domain, o.version) for o in plugged.opset_import} == {("", 18), (DOMAIN, 1)}


# -- partial matches: never half-rewritten ------------------------------------------------

@pytest.mark.parametrize("kind", ["intermediate_output", "eps_input", "wrong_axes", "keepdims"])
def test_partial_match_leaves_graph_unchanged(kind):
    c = chains.Chain()
    if kind == "intermediate_output":
        model = chains.build(c, extra_output="inv")
        reason = "no pattern matches the whole subgraph"
    elif kind == "eps_input":
        model = chains.build(c, eps_input=True)
        reason = "computed at run time"
    elif kind == "wrong_axes":
        model = chains.build(chains.Chain(shape=("N", 4, 16)))
        axes = next(i for i in model.graph.initializer if i.name == "axes")
        axes.CopyFrom(onnx.numpy_helper.from_array(np.array([1], np.int64), "axes"))
        reason = "trailing axes only"
    else:
        model = chains.build(chains.Chain(opset=17))
        mean = next(n for n in model.graph.node if n.op_type == "ReduceMean")
        next(a for a in mean.attribute if a.name == "keepdims").i = 0
        model.graph.output[0].type.tensor_type.ClearField("shape")
        reason = "no pattern matches the whole subgraph"
    before = model.SerializeToString()
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 0
    assert len(result.skipped) == 1 and reason in result.skipped[0].reason
    assert result.model.SerializeToString() == before
    assert not plugin_nodes(result.model)


def test_dtype_mismatch_falls_back_to_smaller_complete_match():
    # Cast to fp16 inside: the result dtype differs from the chain input's.
    c = chains.Chain()
    model = chains.build(c)
    last_mul = [n for n in model.graph.node if n.op_type == "Mul"][-1]
    model.graph.node.insert(list(model.graph.node).index(last_mul) + 1,
                            helper.make_node("Cast", [last_mul.output[0]], ["half"], to=onnx.TensorProto.FLOAT16))
    ident = next(n for n in model.graph.node if n.op_type == "Identity")
    ident.input[0] = "half"
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    result = insert_plugins(model, ["RMSNorm"])
    assert result.count() == 1 and "Cast" in remaining_ops(result.model)
    assert verify_models(model, result.model).ok


# -- the CLI and bad input -----------------------------------------------------------------

def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(chains.build(chains.Chain()), path)
    return path


def test_cli_insert_prints_and_writes(model_file, tmp_path, capsys):
    before = digest(model_file)
    out = tmp_path / "plugged.onnx"
    assert main(["insert", str(model_file), "--op", "RMSNorm", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "replaced 1 subgraph(s)" in text and "RMSNorm_0" in text and "/ReduceMean_" in text
    assert digest(model_file) == before
    plugged = onnx.load(out)
    onnx.checker.check_model(plugged)
    assert len(plugin_nodes(plugged)) == 1
    # the output exists now: refused without --force, replaced with it
    assert main(["insert", str(model_file), "--op", "RMSNorm", "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["insert", str(model_file), "--op", "RMSNorm", "-o", str(out), "--force"]) == 0


def test_cli_refuses_output_equal_to_input(model_file, capsys):
    before = digest(model_file)
    assert main(["insert", str(model_file), "--op", "RMSNorm", "-o", str(model_file), "--force"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert digest(model_file) == before


def test_cli_nothing_matches(tmp_path, capsys):
    path, out = tmp_path / "relu.onnx", tmp_path / "out.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["insert", str(path), "--op", "RMSNorm", "-o", str(out)]) == 1
    assert "no subgraph" in capsys.readouterr().err and not out.exists()
    assert main(["insert", str(path), "--op", "RMSNorm", "-o", str(out), "--allow-none"]) == 0
    assert onnx.load(out).graph.node[0].op_type == "Relu"


def test_cli_not_onnx_unknown_op_missing_file(tmp_path, model_file, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_text("this is not a model\n")
    assert main(["insert", str(junk), "--op", "RMSNorm", "-o", str(tmp_path / "o.onnx")]) == 2
    assert "is not an ONNX model" in capsys.readouterr().err
    assert main(["insert", str(model_file), "--op", "NoSuchOp", "-o", str(tmp_path / "o.onnx")]) == 2
    err = capsys.readouterr().err
    assert "unknown op 'NoSuchOp'" in err and "RMSNorm" in err
    assert main(["insert", str(tmp_path / "missing.onnx"), "--op", "RMSNorm", "-o", str(tmp_path / "o.onnx")]) == 2
    assert not (tmp_path / "o.onnx").exists()


def test_unknown_op_error_type():
    with pytest.raises(UnknownOpError):
        insert_plugins(chains.build(chains.Chain()), ["NoSuchOp"])


def test_opset_conflicts():
    model = chains.build(chains.Chain())
    model.opset_import.append(helper.make_opsetid(DOMAIN, 2))
    with pytest.raises(OpsetConflictError, match="version 2"):
        insert_plugins(model, ["RMSNorm"])
    old = chains.build(chains.Chain(opset=17))
    old.opset_import[0].version = 9
    with pytest.raises(OpsetConflictError, match="opset 9"):
        insert_plugins(old, ["RMSNorm"])


def test_cli_opset_conflict_message(tmp_path, capsys):
    model = chains.build(chains.Chain())
    model.opset_import.append(helper.make_opsetid(DOMAIN, 3))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["insert", str(path), "--op", "RMSNorm", "-o", str(tmp_path / "o.onnx")]) == 2
    assert "already imports domain 'plugkit' at version 3" in capsys.readouterr().err


def test_load_model_rejects_invalid(tmp_path):
    from plugkit.onnx_tools.model_io import load_model
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(OnnxModelError, match="not an ONNX model"):
        load_model(empty)
