"""Engines for real: build with TensorRT, save, load, run on torch CUDA tensors and
compare with the CPU reference. These need the tensorrt package, a CUDA GPU and the
built plugin library; without them they are skipped with the reason."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from plugkit import engine, testing
from plugkit.engine import EngineError, InputError
from plugkit.shapes import ShapeSpecError

from test_doctor import plugged_model

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "build" / "libplugkit_plugins.so"
SHAPES = ["x:1x8,4x8,16x8"]


@pytest.fixture(scope="module")
def trt():
    # The module's markers skip it without TensorRT or a CUDA device (conftest.py).
    testing.require_cuda()
    testing.built_library()
    return engine.import_tensorrt()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "m.plugged.onnx"
    onnx.save(plugged_model(), path)
    return path


@pytest.fixture(scope="module")
def fp32_engine(trt, model):
    return engine.build(model, model.with_name("m.fp32.engine"), plugins=[LIB], shapes=SHAPES,
                        workspace_mib=256, progress=False)


def plugkit_cli(*args):
    return subprocess.run([sys.executable, "-m", "plugkit", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**__import__("os").environ, "PYTHONPATH": str(REPO / "python")})


def test_build_writes_engine_and_record(fp32_engine, trt):
    assert fp32_engine.path.stat().st_size > 0
    record = engine.read_metadata(fp32_engine.path)
    assert record.tensorrt_version == trt.__version__ and record.plugin_ops == ["RMSNorm/1/plugkit"]
    assert record.precision == "float32"
    x = record.inputs[0]
    assert x.name == "x" and x.profile.min == (1, 8) and x.profile.max == (16, 8)


def test_run_matches_the_cpu_reference(fp32_engine, model):
    with engine.load(fp32_engine.path, [LIB]) as trt_engine:
        for batch in (1, 5, 16):
            x = np.random.default_rng(batch).standard_normal((batch, 8)).astype(np.float32)
            outputs = trt_engine.run({"x": x})
            reference = engine.reference_outputs(model, {"x": x})
            results = engine.compare_outputs(outputs, reference, trt_engine.precision)
            assert results and all(r.ok for r in results), [str(r.comparison) for r in results]


def test_run_accepts_torch_cuda_tensors(fp32_engine):
    import torch
    with engine.load(fp32_engine.path, [LIB]) as trt_engine:
        outputs = trt_engine.run({"x": torch.randn(4, 8, device="cuda")}, to_host=False)
        assert outputs["z"].is_cuda and tuple(outputs["z"].shape) == (4, 8)
        stats = trt_engine.benchmark({"x": torch.randn(4, 8, device="cuda")}, iterations=20)
        assert stats.count == 20 and 0 < stats.p50 <= stats.p99


def test_bad_inputs_get_messages(fp32_engine):
    with engine.load(fp32_engine.path, [LIB]) as trt_engine:
        with pytest.raises(ShapeSpecError, match="outside the engine's optimization profile"):
            trt_engine.run({"x": np.zeros((32, 8), np.float32)})
        with pytest.raises(InputError, match="no input.s. 'images'"):
            trt_engine.run({"images": np.zeros((1, 8), np.float32)})
        with pytest.raises(InputError, match="is float64, but the engine expects float32"):
            trt_engine.run({"x": np.zeros((1, 8))})


def test_fp16_build(trt, model, tmp_path):
    result = engine.build(model, tmp_path / "m.fp16.engine", plugins=[LIB], shapes=SHAPES, fp16=True,
                          progress=False)
    assert result.metadata.precision == "float16"
    if engine.parse_version(trt.__version__)[0] >= 11:
        assert result.metadata.strongly_typed and not result.metadata.builder_flags
    else:
        assert result.metadata.builder_flags == ["FP16"]
    with engine.load(result.path, [LIB]) as trt_engine:
        x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
        results = engine.compare_outputs(trt_engine.run({"x": x}), engine.reference_outputs(model, {"x": x}),
                                         trt_engine.precision)
        assert all(r.ok for r in results), [str(r.comparison) for r in results]


def test_timing_cache_is_written_and_reused(trt, model, tmp_path):
    cache = tmp_path / "timing.cache"
    engine.build(model, tmp_path / "a.engine", plugins=[LIB], shapes=SHAPES, timing_cache=cache, progress=False)
    assert cache.stat().st_size > 0
    engine.build(model, tmp_path / "b.engine", plugins=[LIB], shapes=SHAPES, timing_cache=cache, progress=False)


def test_version_compatible_engine_with_serialized_plugins_loads_without_them(trt, model, tmp_path):
    out = tmp_path / "vc.engine"
    engine.build(model, out, plugins=[LIB], shapes=SHAPES, version_compatible=True, serialize_plugins=True,
                 progress=False)
    # A fresh process, in which no plugin library was loaded.
    result = plugkit_cli("run", out)
    assert result.returncode == 0, result.stderr
    assert "z: float32 4x8" in result.stdout


def test_missing_plugin_library_at_load(fp32_engine, tmp_path):
    copy = tmp_path / "norecord.engine"
    copy.write_bytes(fp32_engine.path.read_bytes())  # no build record: TensorRT itself must fail
    result = plugkit_cli("run", copy)
    assert result.returncode == 2
    assert "could not load engine" in result.stderr and "plugin" in result.stderr
    result = plugkit_cli("run", fp32_engine.path)  # with the record: caught before deserializing
    assert result.returncode == 2 and "pass the plugin library with --plugins" in result.stderr


def test_corrupt_engine(fp32_engine, tmp_path):
    data = bytearray(fp32_engine.path.read_bytes())
    data[16:48] = bytes(32)
    corrupt = tmp_path / "corrupt.engine"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="could not load engine"):
        engine.load(corrupt, [LIB])
    truncated = tmp_path / "truncated.engine"
    truncated.write_bytes(fp32_engine.path.read_bytes()[: len(data) // 2])
    with pytest.raises(EngineError, match="could not load engine"):
        engine.load(truncated, [LIB])


def test_cli_engine_and_run_compare(trt, model, tmp_path):
    out = tmp_path / "cli.engine"
    result = plugkit_cli("engine", model, "--plugins", LIB, "-o", out, "--shapes", SHAPES[0])
    assert result.returncode == 0, result.stderr
    result = plugkit_cli("engine", model, "--plugins", LIB, "-o", out, "--shapes", SHAPES[0])
    assert result.returncode == 2 and "--force" in result.stderr
    result = plugkit_cli("run", out, "--plugins", LIB, "--compare", model, "--iterations", "20",
                         "--shapes", "x:3x8")
    assert result.returncode == 0, result.stderr
    assert "ok   z" in result.stdout and "latency over 20 runs" in result.stdout
