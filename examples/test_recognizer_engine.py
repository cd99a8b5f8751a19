"""The end-to-end example: the CPU parts always, the engine with TensorRT and a GPU."""
import sys

import numpy as np
import pytest

from plugkit import engine, testing
from plugkit.onnx_tools.reference import run_reference_model

import recognizer_engine  # examples/ is on sys.path under pytest



def test_small_recognizer_plugged_matches_unplugged(tmp_path):
    plugged = recognizer_engine.small_recognizer(tmp_path / "p.onnx", plugged=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 64)).astype(np.float32)
    got = run_reference_model(plugged, {"input": x})["logits"]
    assert got.shape == (2, 16, recognizer_engine.CLASSES)
    original = recognizer_engine.small_recognizer(tmp_path / "o.onnx", plugged=False)
    want = run_reference_model(original, {"input": x})["logits"]  # onnxruntime >= 1.23 runs opset 23
    assert all(r.ok for r in engine.compare_outputs({"logits": got}, {"logits": want}, "float32"))


def test_doctor_accepts_the_plugged_recognizer(tmp_path):
    from plugkit import doctor
    report = doctor.check(recognizer_engine.small_recognizer(tmp_path / "p.onnx"), [testing.built_library()])
    assert report.ok, report.format()


def test_repvgg_recognizer_is_plugged_and_passes_the_doctor(tmp_path, capsys, monkeypatch):
    """The CPU part of the end-to-end path: export, insert, doctor; the engine step then
    stops with TensorRT's absence (where TensorRT is installed, its import is blocked here;
    the test below runs the engine)."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    assert recognizer_engine.main(["--plugins", str(testing.built_library()), "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "replaced 1 subgraph(s) with plugin nodes" in out
    assert "result: ok, every plugin node has a creator" in out
    assert "--shapes image:1x3x32x64,1x3x32x448,1x3x32x1024" in out  # the RepVGG model's input
    assert "TensorRT is not installed here: stopping after the plugin check." in out
    assert (tmp_path / "recognizer.plugged.onnx").exists()


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_recognizer_through_engine_and_run_compare(tmp_path, capsys):
    assert recognizer_engine.main(["--plugins", str(testing.built_library()), "--workdir", str(tmp_path), "--iterations", "10"]) == 0
    out = capsys.readouterr().out
    assert "ok   logits" in out and "latency over 10 runs" in out
    assert (tmp_path / "recognizer.engine").exists()
