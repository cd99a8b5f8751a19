"""Everything about engines that needs no TensorRT: build options, engine file
checks, the build record (<engine>.json) and what it lets us check before
deserializing, input feeds, random inputs, latency statistics, build progress,
output comparison and the plugin-library version rule. All on the CPU."""
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from pathlib import Path

import plugkit
from plugkit import engine
from plugkit.commands._common import parse_input_files
from plugkit.errors import OutputExistsError, PlugkitError
from plugkit.engine import (EngineError, EngineFileError, EngineMetadata, EngineMismatchError, InputError,
                            TensorInfo)
from plugkit.shapes import ShapeRange, ShapeSpecError, onnx_input_dims

from test_doctor import plugged_model


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "model.plugged.onnx"
    onnx.save(plugged_model(), path)
    return path


@pytest.fixture
def library(tmp_path):
    from plugkit import _host  # a complete shared object: load paths refuse anything less

    path = tmp_path / "libplugins.so"
    path.write_bytes(Path(_host.__file__).read_bytes())
    return path


# --- build options ---------------------------------------------------------------

def test_default_output_and_options(model_path, library):
    options = engine.validate_build_options(model_path, plugins=[library], shapes=["x:1x8,4x8,16x8"],
                                            workspace_mib=512)
    assert options.output == model_path.with_suffix(".engine")
    assert options.shapes["x"].max == (16, 8)
    assert options.plugins == [str(library)]


def test_build_refuses_to_overwrite_without_force(model_path, tmp_path):
    out = tmp_path / "model.engine"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="already exists"):
        engine.validate_build_options(model_path, out)
    assert engine.validate_build_options(model_path, out, force=True).force
    with pytest.raises(EngineError, match="would overwrite the model"):
        engine.validate_build_options(model_path, model_path, force=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"serialize_plugins": True}, "--serialize-plugins needs --version-compatible"),
    ({"serialize_plugins": True, "version_compatible": True}, "nothing to serialize"),
    ({"workspace_mib": 0}, "--workspace must be a positive"),
    ({"plugins": ["/nonexistent/libplugkit_plugins.so"]}, "does not exist .build it first"),
    ({"shapes": ["x:1x8,4x8"]}, "one shape .fixed. or three"),
])
def test_build_option_errors(model_path, kwargs, message):
    with pytest.raises(PlugkitError, match=message):
        engine.validate_build_options(model_path, **kwargs)


def test_build_paths(tmp_path, model_path):
    with pytest.raises(EngineError, match="does not exist"):
        engine.validate_build_options(tmp_path / "missing.onnx")
    with pytest.raises(EngineError, match="directory of .* does not exist"):
        engine.validate_build_options(model_path, tmp_path / "no" / "such" / "m.engine")
    with pytest.raises(EngineError, match="is a directory"):
        engine.validate_build_options(model_path, tmp_path)
    with pytest.raises(EngineError, match="--timing-cache .* is a directory"):
        engine.validate_build_options(model_path, timing_cache=tmp_path)


def test_build_checks_shapes_and_plugins_before_tensorrt(model_path, tmp_path):
    """build() stops at the first problem it can see without TensorRT."""
    with pytest.raises(ShapeSpecError, match="need an optimization-profile range"):
        engine.build(model_path, tmp_path / "a.engine", check_plugins=False)
    with pytest.raises(ShapeSpecError, match="does not have"):
        engine.build(model_path, tmp_path / "a.engine", shapes=["input:1x8"], check_plugins=False)
    assert not (tmp_path / "a.engine").exists()


@pytest.fixture
def without_tensorrt(monkeypatch):
    """As on a machine with neither TensorRT nor TensorRT-RTX: importing them fails."""
    for module in ("tensorrt", "tensorrt_rtx_bindings", "tensorrt_rtx"):
        monkeypatch.setitem(sys.modules, module, None)


def test_build_without_tensorrt_says_how_to_get_it(model_path, tmp_path, without_tensorrt):
    with pytest.raises(engine.TensorRTMissingError, match="pip install 'plugkit\\[trt\\]'.*'plugkit\\[rtx\\]'"):
        engine.build(model_path, tmp_path / "a.engine", shapes=["x:1x8,2x8,4x8"], check_plugins=False)
    assert not (tmp_path / "a.engine").exists()


def test_options_of_the_other_backend_are_refused_before_it_is_imported(model_path, tmp_path, without_tensorrt):
    with pytest.raises(engine.EngineError, match="--compute-capability .* use it with --backend rtx"):
        engine.build(model_path, tmp_path / "a.engine", backend="tensorrt", compute_capabilities=["8.9"])
    with pytest.raises(engine.EngineError, match="TensorRT-RTX does not build version-compatible engines"):
        engine.build(model_path, tmp_path / "a.engine", backend="rtx", version_compatible=True)
    with pytest.raises(engine.EngineError, match="unknown backend 'trt'; choose one of tensorrt, rtx"):
        engine.build(model_path, tmp_path / "a.engine", backend="trt")
    assert not (tmp_path / "a.engine").exists()


def test_onnx_input_dims(model_path):
    assert onnx_input_dims(onnx.load(model_path)) == {"x": ["batch", 8]}


# --- engine files ------------------------------------------------------------------

def test_engine_file_checks(tmp_path, model_path):
    with pytest.raises(EngineFileError, match="does not exist; build it with `plugkit engine"):
        engine.check_engine_file(tmp_path / "none.engine")
    with pytest.raises(EngineFileError, match="is a directory"):
        engine.check_engine_file(tmp_path)
    empty = tmp_path / "empty.engine"
    empty.write_bytes(b"")
    with pytest.raises(EngineFileError, match="is empty"):
        engine.check_engine_file(empty)
    short = tmp_path / "short.engine"
    short.write_bytes(b"\x00\x01\x02ftrt")
    with pytest.raises(EngineFileError, match="only 7 bytes: it is truncated"):
        engine.check_engine_file(short)
    with pytest.raises(EngineFileError, match="is an ONNX model; build an engine from it"):
        engine.check_engine_file(model_path)
    for name, data, kind in [("ckpt.pt", b"PK\x03\x04" + bytes(100), "zip archive"),
                             ("x.npy", b"\x93NUMPY" + bytes(100), "NumPy array"),
                             ("notes.engine", b"hello world\n" * 20, "text file"),
                             ("p.pkl", b"\x80\x04" + bytes(100), "pickle")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(EngineFileError, match=kind):
            engine.check_engine_file(path)
    plan = tmp_path / "ok.engine"
    plan.write_bytes(bytes(range(256)) * 4)
    assert engine.check_engine_file(plan) == plan


def test_atomic_write(tmp_path):
    path = tmp_path / "x.engine"
    engine.atomic_write(path, b"abc")
    assert path.read_bytes() == b"abc" and [p.name for p in tmp_path.iterdir()] == ["x.engine"]


# --- the build record --------------------------------------------------------------

def meta(**changes):
    data = dict(tensorrt_version="10.14.1.48", device_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                plugins=["/abs/libplugkit_plugins.so"], plugin_ops=["RMSNorm/1/plugkit"], precision="float16",
                tensors=[TensorInfo("x", "float32", (-1, 8), True, ShapeRange("x", (1, 8), (4, 8), (16, 8))),
                         TensorInfo("z", "float32", (-1, 8), False)],
                onnx="model.plugged.onnx")
    data.update(changes)
    return EngineMetadata(**data)


def test_metadata_round_trip(tmp_path):
    record = meta()
    path = tmp_path / "m.engine"
    engine.metadata_path(path).write_text(record.to_json())
    loaded = engine.read_metadata(path)
    assert loaded == record
    assert [t.name for t in loaded.inputs] == ["x"] and loaded.inputs[0].profile.opt == (4, 8)
    engine.metadata_path(path).write_text("{not json")
    with pytest.raises(EngineFileError, match="unreadable"):
        engine.read_metadata(path)
    assert engine.read_metadata(tmp_path / "other.engine") is None


def test_metadata_detects_truncated_and_changed_engine(tmp_path):
    path = tmp_path / "m.engine"
    data = bytes(range(256)) * 8
    path.write_bytes(data)
    import hashlib
    record = meta(engine_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    engine.check_engine_against_metadata(path, record)
    path.write_bytes(data[:1000])
    with pytest.raises(EngineFileError, match="has 1000 bytes but its build wrote 2048: it is truncated"):
        engine.check_engine_against_metadata(path, record)
    path.write_bytes(data[:-1] + b"\x00")
    with pytest.raises(EngineFileError, match="changed since it was built"):
        engine.check_engine_against_metadata(path, record)


def test_metadata_other_tensorrt_version():
    with pytest.raises(EngineMismatchError, match="built with TensorRT 10.14.1.48 but this is TensorRT 10.8.0"):
        engine.check_metadata_compatible(meta(), "10.8.0")
    with pytest.raises(EngineMismatchError, match="--version-compatible"):
        engine.check_metadata_compatible(meta(), "11.0.0")
    assert engine.check_metadata_compatible(meta(), "10.14.1.48", "9.0", "NVIDIA H100 80GB HBM3") == []


def test_metadata_version_compatible_engines():
    assert engine.check_metadata_compatible(meta(version_compatible=True), "10.16.0") == []
    with pytest.raises(EngineMismatchError, match="this TensorRT .10.8.0. is older"):
        engine.check_metadata_compatible(meta(version_compatible=True), "10.8.0")


def test_metadata_other_gpu():
    with pytest.raises(EngineMismatchError, match="compute capability 9.0 .* has 8.9.* rebuild it on this GPU"):
        engine.check_metadata_compatible(meta(), "10.14.1.48", "8.9", "NVIDIA L4")
    warnings = engine.check_metadata_compatible(meta(), "10.14.1.48", "9.0", "NVIDIA H100 PCIe")
    assert "built on NVIDIA H100 80GB HBM3" in warnings[0]


def test_load_needs_plugins_the_engine_uses(tmp_path):
    path = tmp_path / "m.engine"
    data = bytes(range(256)) * 4
    path.write_bytes(data)
    engine.metadata_path(path).write_text(meta(engine_bytes=len(data)).to_json())
    with pytest.raises(EngineError, match="uses the plugin.s. RMSNorm/1/plugkit .* pass the plugin library "
                                          "with --plugins"):
        engine.load(path)
    with pytest.raises(PlugkitError, match="does not exist"):
        engine.load(path, plugins=[tmp_path / "libmissing.so"])


@pytest.mark.parametrize("messages, cause", [
    (["getPluginCreator could not find plugin: RMSNorm version: 1"], "a plugin the engine uses is not registered"),
    (["Serialization assertion plan->header.magicTag == rt::kPLAN_MAGIC_TAG failed."], "corrupt, truncated"),
    (["The engine plan file is not compatible with this version of TensorRT, expecting library version 10.8"],
     "another TensorRT version"),
    (["The engine plan file is generated on an incompatible device, expecting compute 8.9 got compute 9.0"],
     "another GPU"),
    ([], "possible causes"),
])
def test_explain_load_failure(messages, cause):
    text = engine.explain_load_failure(messages, path="m.engine", plugins=["libp.so"], meta=meta())
    assert cause in text and "m.engine" in text
    if messages:
        assert messages[0] in text
    if "plugin" in cause:
        assert "libp.so" in text and "RMSNorm/1/plugkit" in text


# --- plugin library versions (the same rule as plugkit::loadPlugins) ----------------

def test_parse_version():
    assert engine.parse_version("10.14.1.48") == (10, 14, 1, 48)
    assert engine.parse_version(101401) == (10, 14, 1)
    assert engine.parse_version("11.0.0rc1") == (11, 0, 0)
    with pytest.raises(ValueError):
        engine.parse_version("x")


def test_plugin_library_version_rule():
    assert engine.check_plugin_library_version("lib.so", "10.14.1", "10.14.1.48") is None
    assert engine.check_plugin_library_version("lib.so", None, "10.14.1") is None
    assert "compatible" in engine.check_plugin_library_version("lib.so", "10.8.0", "10.14.1")
    with pytest.raises(EngineMismatchError, match="newer than the TensorRT runtime here"):
        engine.check_plugin_library_version("lib.so", "10.14.1", "10.8.0")
    with pytest.raises(EngineMismatchError, match="major version .*Rebuild it against TensorRT 11.x headers"):
        engine.check_plugin_library_version("lib.so", "10.14.1", "11.0.0")


# --- inputs --------------------------------------------------------------------------

INPUTS = [TensorInfo("images", "float32", (-1, 3, 32, -1), True,
                     ShapeRange("images", (1, 3, 32, 64), (1, 3, 32, 448), (8, 3, 32, 1024))),
          TensorInfo("lengths", "int32", (4,), True)]


def test_check_feeds():
    ok = {"images": np.zeros((2, 3, 32, 100), np.float32), "lengths": np.zeros(4, np.int32)}
    engine.check_feeds(INPUTS, ok)
    with pytest.raises(InputError, match="no input.s. 'image'; its inputs are: images: float32 \\?x3x32x\\?"):
        engine.check_feeds(INPUTS, {"image": ok["images"], "lengths": ok["lengths"]})
    with pytest.raises(InputError, match="missing input.s. 'lengths'"):
        engine.check_feeds(INPUTS, {"images": ok["images"]})
    with pytest.raises(InputError, match="'images' is float64, but the engine expects float32; convert it"):
        engine.check_feeds(INPUTS, {**ok, "images": ok["images"].astype(np.float64)})
    with pytest.raises(ShapeSpecError, match="outside the engine's optimization profile: dimension 3 is 2000"):
        engine.check_feeds(INPUTS, {**ok, "images": np.zeros((1, 3, 32, 2000), np.float32)})
    with pytest.raises(InputError, match="'lengths' has shape 5"):
        engine.check_feeds(INPUTS, {**ok, "lengths": np.zeros(5, np.int32)})


def test_dtype_names():
    assert engine.dtype_name(np.dtype("float16")) == "float16"
    assert engine.dtype_name("torch.float16") == "float16"
    assert engine.dtype_name("torch.half") == "float16"

    class TrtDataType:  # the shape of tensorrt.DataType members: a .name
        name = "HALF"
    assert engine.dtype_name(TrtDataType()) == "float16"


def test_make_inputs():
    feeds = engine.make_inputs(INPUTS, seed=1)
    assert feeds["images"].shape == (1, 3, 32, 448) and feeds["images"].dtype == np.float32
    assert feeds["lengths"].dtype == np.int32
    again = engine.make_inputs(INPUTS, seed=1)
    np.testing.assert_array_equal(feeds["images"], again["images"])
    feeds = engine.make_inputs(INPUTS, shapes={"images": (2, 3, 32, 64)},
                               given={"lengths": np.arange(4, dtype=np.int32)})
    assert feeds["images"].shape == (2, 3, 32, 64) and feeds["lengths"].tolist() == [0, 1, 2, 3]
    with pytest.raises(InputError, match="no input 'imgs'"):
        engine.make_inputs(INPUTS, shapes={"imgs": (1,)})
    bf16 = engine.make_inputs([TensorInfo("h", "bfloat16", (2,), True)])["h"]
    assert engine.dtype_name(bf16.dtype) == "bfloat16"


def test_parse_input_files(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    feeds = parse_input_files([f"images={tmp_path / 'x.npy'}"])
    assert feeds["images"].shape == (2, 3)
    with pytest.raises(InputError, match="write NAME=FILE.npy"):
        parse_input_files(["images"])
    with pytest.raises(InputError, match="does not exist"):
        parse_input_files([f"images={tmp_path / 'none.npy'}"])
    (tmp_path / "bad.npy").write_text("nope")
    with pytest.raises(InputError, match="not a NumPy .npy array"):
        parse_input_files([f"images={tmp_path / 'bad.npy'}"])
    with pytest.raises(InputError, match="twice"):
        parse_input_files([f"a={tmp_path / 'x.npy'}", f"a={tmp_path / 'x.npy'}"])


# --- latency, progress, comparison -------------------------------------------------

def test_latency_stats():
    stats = engine.LatencyStats.from_seconds([0.001 * i for i in range(1, 101)])
    assert stats.count == 100 and stats.min == pytest.approx(1.0) and stats.max == pytest.approx(100.0)
    assert stats.p50 == pytest.approx(50.5) and stats.p99 == pytest.approx(99.01)
    assert "p99 99.010" in str(stats) and "runs/s" in str(stats)
    with pytest.raises(ValueError):
        engine.LatencyStats.from_seconds([])


def test_build_progress_lines():
    now = [0.0]
    out = io.StringIO()
    progress = engine.BuildProgress(stream=out, interval=1.0, clock=lambda: now[0])
    progress.phase_start("Building engine", None, 3)
    now[0] = 0.5
    progress.phase_start("Tactic timing", "Building engine", 40)
    assert progress.step_complete("Tactic timing", 9)  # within the interval: not drawn
    now[0] = 2.0
    progress.step_complete("Tactic timing", 19)
    progress.phase_finish("Tactic timing")
    progress.cancelled = True
    assert progress.step_complete("Building engine", 0) is False  # asks TensorRT to stop
    progress.close("done")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[    0.0s] Building engine 0/3"
    assert lines[1] == "[    2.0s] Building engine 0/3 > Tactic timing 20/40"
    assert lines[-1] == "done"


def test_compare_outputs_uses_the_build_precision():
    reference = {"z": np.array([1.0, 2.0, 3.0]), "ids": np.array([1, 2])}
    fp16_like = {"z": np.array([1.001, 2.002, 3.0], np.float32), "ids": np.array([1, 2], np.int32)}
    strict = engine.compare_outputs(fp16_like, reference, "float32")
    assert not strict[0].ok and strict[1].ok
    loose = engine.compare_outputs(fp16_like, reference, "float16")
    assert all(r.ok for r in loose)
    wrong = engine.compare_outputs({"ids": np.array([1, 3]), "extra": np.zeros(1)}, reference)
    assert not wrong[0].ok and wrong[1].problem.startswith("the reference model has no output")
    shape = engine.compare_outputs({"z": np.zeros(2, np.float32)}, reference)
    assert "shape" in shape[0].problem


def test_compute_precision():
    assert engine.compute_precision(None, ()) == "float32"
    assert engine.compute_precision(None, ("FP16",)) == "float16"
    assert engine.compute_precision(None, ("FP16", "BF16")) == "bfloat16"
    assert engine.compute_precision("float16", ()) == "float16"


def test_importing_plugkit_does_not_import_tensorrt_or_torch():
    import subprocess
    import sys
    code = ("import sys, plugkit, plugkit.engine, plugkit.doctor, plugkit.cli; plugkit.cli.build_parser(); "
            "print(json.dumps([m for m in ('tensorrt', 'torch', 'polygraphy') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(Path(plugkit.__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
