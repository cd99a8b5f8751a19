"""The deformable encoder example: export and verify on the CPU; on a GPU, the layer with the
plugin against the plain layer; with TensorRT, the plugged ONNX model as an engine."""
import numpy as np
import onnx
import onnxscript  # noqa: F401  (the dynamo exporter needs it; in the test extra)
import pytest
import torch

import deformable_encoder  # examples/ is on sys.path under pytest
from plugkit import testing
from plugkit.cli import main as plugkit
from plugkit.onnx_tools import plugin_nodes
from plugkit.tolerances import compare


def test_export_and_verify_on_the_cpu(tmp_path, capsys):
    assert deformable_encoder.main(tmp_path) == 0
    out = capsys.readouterr().out
    assert "run 3 (batch=3)" in out and "OK: every output is within tolerance" in out
    plugged = onnx.load(tmp_path / "encoder.plugged.onnx")
    assert [n.op_type for n in plugin_nodes(plugged)] == ["MultiScaleDeformableAttention"]
    node = plugin_nodes(plugged)[0]
    initializers = {i.name: i for i in plugged.graph.initializer}
    table = onnx.numpy_helper.to_array(initializers[node.input[1]])
    assert table.dtype == np.int64 and table.tolist() == [list(level) for level in deformable_encoder.LEVELS]
    original = onnx.load(tmp_path / "encoder.onnx")
    assert not plugin_nodes(original)
    assert sum(n.op_type == "GridSample" for n in original.graph.node) == len(deformable_encoder.LEVELS)


def test_some_sampling_points_fall_off_the_maps():
    """The example exercises the plugin's zero padding, not only points inside the maps."""
    plain, _ = deformable_encoder.build_models()
    attention = plain.attention
    src = torch.randn(2, sum(h * w for h, w in deformable_encoder.LEVELS), deformable_encoder.DIM)
    with torch.no_grad():
        offsets = attention.sampling_offsets(src).view(2, src.shape[1], attention.heads, 3, attention.points, 2)
        locations = attention.reference[None, :, None, :, None, :] + offsets / attention.normalizer[None, None, None, :, None, :]
    outside = ((locations < 0) | (locations > 1)).any(-1).float().mean()
    assert 0.05 < outside < 0.6


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_layer_with_the_plugin_matches_the_plain_layer_on_the_gpu(dtype):
    testing.require_cuda()
    plain, plugged = deformable_encoder.build_models()
    torch_dtype = getattr(torch, dtype)
    plain, plugged = plain.cuda().to(torch_dtype), plugged.cuda().to(torch_dtype)
    src = torch.randn(3, sum(h * w for h, w in deformable_encoder.LEVELS), deformable_encoder.DIM,
                      device="cuda", generator=torch.Generator("cuda").manual_seed(0)).to(torch_dtype)
    got = deformable_encoder.run_with_plugin(plugged, src, testing.plugin_library())
    with torch.no_grad():
        want = plain.float()(src.float())  # the plain layer in fp32: the plugin's fp32 accumulation
    # After a LayerNorm the outputs are O(1); a 16-bit layer's other ops round as well.
    result = compare(testing.to_numpy(got), testing.to_numpy(want), "float32" if dtype == "float32" else "bfloat16")
    assert result.ok, result


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_plugged_encoder_as_an_engine(tmp_path, capsys):
    testing.require_cuda()
    assert deformable_encoder.main(tmp_path) == 0
    plugged, engine = tmp_path / "encoder.plugged.onnx", tmp_path / "encoder.engine"
    S, D = sum(h * w for h, w in deformable_encoder.LEVELS), deformable_encoder.DIM
    shapes = f"src:1x{S}x{D},2x{S}x{D},4x{S}x{D}"
    assert plugkit(["engine", str(plugged), "--plugins", str(testing.built_library()), "--shapes", shapes,
                    "-o", str(engine)]) == 0
    capsys.readouterr()
    assert plugkit(["run", str(engine), "--plugins", str(testing.built_library()), "--compare", str(plugged),
                    "--shapes", f"src:3x{S}x{D}"]) == 0
    assert "ok   out" in capsys.readouterr().out
