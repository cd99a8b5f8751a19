"""`plugkit engine` and `plugkit run` up to the point where TensorRT is needed,
and the CPU reference that `run --compare` uses. On the CPU."""
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from plugkit import testing
from plugkit.cli import build_parser, main
from plugkit.onnx_tools.reference import run_reference_model

from test_doctor import plugged_model


def test_engine_arguments_follow_trtexec_habits():
    args = build_parser().parse_args([
        "engine", "m.onnx", "--plugins", "a.so", "--plugins", "b.so", "-o", "m.engine", "--fp16",
        "--shapes", "input:1x3x32x64,1x3x32x448,1x3x32x1024", "--workspace", "1024",
        "--timing-cache", "t.cache", "--version-compatible", "--serialize-plugins", "--strongly-typed"])
    assert args.plugins == ["a.so", "b.so"] and args.output == "m.engine" and args.fp16
    assert args.shapes == ["input:1x3x32x64,1x3x32x448,1x3x32x1024"] and args.workspace == 1024
    assert args.timing_cache == "t.cache" and args.version_compatible and args.serialize_plugins
    assert args.strongly_typed and args.check_plugins and args.progress
    # trtexec's own spellings work too.
    args = build_parser().parse_args(["engine", "m.onnx", "--saveEngine", "x.engine", "--stronglyTyped",
                                      "--timingCacheFile", "c", "--versionCompatible"])
    assert args.output == "x.engine" and args.strongly_typed and args.timing_cache == "c"


def test_engine_rejects_bad_workspace(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["engine", "m.onnx", "--workspace", "-5"])
    assert "must be positive" in capsys.readouterr().err


def test_run_arguments():
    args = build_parser().parse_args(["run", "m.engine", "--plugins", "a.so", "--input", "x=x.npy",
                                      "--shapes", "x:1x8", "--compare", "m.onnx", "--iterations", "50"])
    assert args.input == ["x=x.npy"] and args.iterations == 50 and args.compare == "m.onnx"


def test_engine_cli_errors_are_messages(tmp_path, capsys):
    assert main(["engine", str(tmp_path / "none.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    model = tmp_path / "m.onnx"
    onnx.save(plugged_model(), model)
    assert main(["engine", str(model), "--serialize-plugins"]) == 2
    assert "--serialize-plugins needs --version-compatible" in capsys.readouterr().err
    assert main(["engine", str(model), "--no-check", "--shapes", "x:1x8,9x8,4x8"]) == 2
    assert "MIN <= OPT <= MAX" in capsys.readouterr().err


def test_engine_cli_says_force_where_the_library_says_force_true(tmp_path, capsys):
    model, out = tmp_path / "m.onnx", tmp_path / "m.engine"
    onnx.save(plugged_model(), model)
    out.write_bytes(b"old")
    assert main(["engine", str(model), "-o", str(out), "--no-check"]) == 2
    assert "already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_bytes() == b"old"


def test_engine_cli_stops_on_missing_plugin_before_tensorrt(tmp_path, capsys):
    """The doctor runs before the build: a misspelled plugin node fails in a second, not after parsing."""
    model = tmp_path / "m.onnx"
    onnx.save(plugged_model(op_type="RMSNrm"), model)
    assert main(["engine", str(model), "--shapes", "x:1x8,4x8,16x8"]) == 2
    err = capsys.readouterr().err
    assert "MISSING  node '/blocks.0/norm': op RMSNrm" in err
    assert not (tmp_path / "m.engine").exists()


def test_engine_cli_without_tensorrt(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without it
    model = tmp_path / "m.onnx"
    onnx.save(plugged_model(), model)
    plugins = ["--plugins", str(testing.built_library())]
    assert main(["engine", str(model), "--shapes", "x:1x8,4x8,16x8", *plugins, "--backend", "tensorrt"]) == 2
    assert "TensorRT's Python package is not available" in capsys.readouterr().err
    assert not (tmp_path / "m.engine").exists()


def test_run_cli_file_problems(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.engine")]) == 2
    assert "does not exist; build it with `plugkit engine" in capsys.readouterr().err
    model = tmp_path / "m.onnx"
    onnx.save(plugged_model(), model)
    assert main(["run", str(model)]) == 2
    assert "is an ONNX model" in capsys.readouterr().err
    truncated = tmp_path / "t.engine"
    truncated.write_bytes(b"\x01\x02\x03")
    assert main(["run", str(truncated)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert main(["run", str(truncated), "--input", "x"]) == 2
    assert "write NAME=FILE.npy" in capsys.readouterr().err
    assert main(["run", str(truncated), "--compare", str(tmp_path / "no.onnx")]) == 2
    assert "--compare model" in capsys.readouterr().err
    assert main(["run", str(truncated), "--shapes", "x:1x8,2x8,4x8"]) == 2
    assert "one shape per input" in capsys.readouterr().err


def test_reference_of_plugged_and_unplugged_models_agree(tmp_path):
    """--compare accepts either model: the plugged one runs the op schema's reference."""
    plugged = tmp_path / "plugged.onnx"
    onnx.save(plugged_model(), plugged)
    # The same computation in standard ops (RMSNormalization is ONNX opset 23).
    nodes = [helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=-1, epsilon=1e-5),
             helper.make_node("Relu", ["y"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 8])],
                              [numpy_helper.from_array(np.ones(8, np.float32), "scale")])
    original = tmp_path / "original.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)]), original)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    from plugkit.engine import compare_outputs
    want = run_reference_model(original, {"x": x})  # onnxruntime >= 1.23 runs opset 23
    got = run_reference_model(plugged, {"x": x})
    assert got["z"].dtype == np.float32
    assert all(r.ok for r in compare_outputs(got, want, "float32"))


def test_reference_needs_the_engine_inputs(tmp_path):
    plugged = tmp_path / "plugged.onnx"
    onnx.save(plugged_model(), plugged)
    with pytest.raises(Exception, match="takes input.s. \\['x'\\]"):
        run_reference_model(plugged, {"images": np.zeros((1, 8), np.float32)})
