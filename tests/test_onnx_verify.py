"""plugkit verify: ONNX Runtime on the original, the references on the plugged model."""
import numpy as np
import onnx
import pytest
from onnx import helper

import onnx_chains as chains
from plugkit.cli import main
from plugkit.errors import OnnxModelError
from plugkit.onnx_tools import insert_plugins, plugin_nodes
from plugkit.commands._common import parse_dims
from plugkit.onnx_tools.verify import input_specs, random_feeds, verify_models


@pytest.fixture
def pair(tmp_path):
    model = chains.build(chains.Chain(shape=("N", "T", 16), post=("MatMul",)))
    plugged = insert_plugins(model, ["RMSNorm"]).model
    original, out = tmp_path / "original.onnx", tmp_path / "plugged.onnx"
    onnx.save(model, original)
    onnx.save(plugged, out)
    return original, out


def set_attr(model, name, value):
    (node,) = plugin_nodes(model)
    attr = next(a for a in node.attribute if a.name == name)
    attr.CopyFrom(helper.make_attribute(name, value))


def test_verify_passes_and_reports_each_run(pair, capsys):
    original, plugged = pair
    assert main(["verify", str(original), str(plugged), "--dim", "N=1,2", "--dim", "T=3,1,7"]) == 0
    out = capsys.readouterr().out
    assert "1 plugin node(s): RMSNorm_0 (RMSNorm)" in out
    assert "run 1 (N=1, T=3)" in out and "run 2 (N=2, T=1)" in out and "run 3 (N=1, T=7)" in out
    assert out.count("max abs") == 3 and "OK" in out


def test_verify_fails_on_wrong_plugin(pair, tmp_path, capsys):
    original, plugged = pair
    bad = onnx.load(plugged)
    set_attr(bad, "epsilon", 10.0)  # a plugin that computes something else
    onnx.save(bad, tmp_path / "bad.onnx")
    assert main(["verify", str(original), str(tmp_path / "bad.onnx")]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "FAIL" in out


def test_verify_with_npz_inputs(pair, tmp_path, capsys):
    original, plugged = pair
    x = np.random.default_rng(3).standard_normal((2, 4, 16)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", X=x)
    assert main(["verify", str(original), str(plugged), "--inputs", str(tmp_path / "inputs.npz")]) == 0
    assert "given inputs" in capsys.readouterr().out
    np.savez(tmp_path / "wrong.npz", other=x)
    assert main(["verify", str(original), str(plugged), "--inputs", str(tmp_path / "wrong.npz")]) == 2
    assert "no array for input(s) ['X']" in capsys.readouterr().err


def test_plugin_version_mismatch_is_an_error(pair, tmp_path):
    original, plugged = pair
    model = onnx.load(plugged)
    set_attr(model, "plugin_version", "7")
    with pytest.raises(Exception, match="plugin_version='7'"):
        verify_models(onnx.load(original), model)


def test_models_must_have_the_same_inputs(pair):
    original, plugged = pair
    other = onnx.load(plugged)
    other.graph.input[0].name = "renamed"
    with pytest.raises(OnnxModelError, match="different inputs"):
        verify_models(onnx.load(original), other)


def test_dims_parsing_and_random_feeds():
    assert parse_dims(["W=448,320", "batch=1"]) == {"W": [448, 320], "batch": [1]}
    for bad in ("W", "W=", "=3", "W=a,b", "W=-1"):
        with pytest.raises(OnnxModelError, match="NAME=V1,V2"):
            parse_dims([bad])
    specs = input_specs(chains.build(chains.Chain(shape=("N", "T", 16))))
    runs = random_feeds(specs, {"T": [5, 6]})
    assert [chosen for chosen, _ in runs] == [{"N": 1, "T": 5}, {"N": 3, "T": 6}, {"N": 8, "T": 5}]
    assert [feeds["X"].shape for _, feeds in runs] == [(1, 5, 16), (3, 6, 16), (8, 5, 16)]
    with pytest.raises(OnnxModelError, match="dynamic dimensions are"):
        random_feeds(specs, {"W": [1]})


def test_fp16_model_uses_fp16_tolerance():
    model = chains.build(chains.Chain(cast="all"))
    report = verify_models(model, insert_plugins(model, ["RMSNorm"]).model)
    assert report.ok
    assert {c.comparison.tolerance.rtol for c in report.checks} == {4e-3}
