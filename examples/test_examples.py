"""The examples run end to end on the CPU (export, insert, verify)."""
import numpy as np
import onnx
import onnxscript  # noqa: F401  (the dynamo exporter needs it; in the test extra)
import text_recognizer
import transformer_block

import pytest

from plugkit import testing
from plugkit.host import run
from plugkit.onnx_tools import plugin_nodes
from plugkit.ops import op_module
from plugkit.tolerances import compare


def test_transformer_block(tmp_path, capsys):
    assert transformer_block.main(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("OK: every output is within tolerance") == 2
    for name in ("decoder.from_torch.onnx", "decoder.inserted.onnx"):
        model = onnx.load(tmp_path / name)
        assert [n.op_type for n in plugin_nodes(model)] == ["RMSNorm"] * 5
    original = onnx.load(tmp_path / "decoder.onnx")
    assert not plugin_nodes(original) and any(n.op_type == "ReduceMean" for n in original.graph.node)


def test_text_recognizer(tmp_path, capsys):
    assert text_recognizer.main(tmp_path) == 0
    out = capsys.readouterr().out
    assert "run 1 (width=448)" in out and "run 3 (width=64)" in out and "OK" in out
    assert "run 3 (batch=8, width=1024)" in out and out.count("OK: every output is within tolerance") == 2
    plugged = onnx.load(tmp_path / "text_recognizer.plugged.onnx")
    assert len(plugin_nodes(plugged)) == 1
    dims = plugged.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [1, 3, 32, "width"]
    # deploy form: one Conv per RepVGG block
    assert sum(n.op_type == "Conv" for n in plugged.graph.node) == 5
    # the recognizer that ends with the decoder plugin, checked against the decode in ONNX ops
    decoder = onnx.load(tmp_path / "text_recognizer.decoder.onnx")
    node, = plugin_nodes(decoder)
    assert node.op_type == "CTCGreedyDecoder" and len(node.input) == 1 and len(node.output) == 4
    assert [o.name for o in decoder.graph.output] == ["labels", "scores", "lengths"]
    labels = decoder.graph.output[0].type.tensor_type
    assert labels.elem_type == onnx.TensorProto.INT32
    assert [d.dim_param for d in labels.shape.dim][1] not in ("", "width")  # M: data-dependent
    original = onnx.load(tmp_path / "text_recognizer.decoding.onnx")
    assert not plugin_nodes(original) and any(n.op_type == "ArgMax" for n in original.graph.node)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_decoder_plugin_on_recognizer_outputs(batch, dtype):
    """The plugin against the reference on what the recognizer really outputs, widths 64..1024."""
    torch = testing.require_cuda()
    decoder = op_module("CTCGreedyDecoder")
    creator = testing.plugin_library().creator("CTCGreedyDecoder", "1", "plugkit")
    model = text_recognizer.build_model().cuda()
    for width in (64, 160, 448, 1024):
        image = torch.randn(batch, 3, 32, width, generator=torch.Generator().manual_seed(width)).cuda()
        with torch.no_grad():
            log_probs = model(image).to(getattr(torch, dtype)).contiguous()
        labels, scores, lengths, m = run(creator, [log_probs])
        expected = decoder.reference(testing.to_numpy(log_probs))
        where = f"batch {batch} width {width} {dtype}"
        assert int(m.item()) == int(expected[3]) and labels.shape == expected[0].shape, where
        assert np.array_equal(labels.cpu().numpy(), expected[0]), where
        assert np.array_equal(lengths.cpu().numpy(), expected[2]), where
        assert compare(scores.cpu().numpy(), expected[1], "float32").ok, where
