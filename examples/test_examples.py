"""The examples run end to end on the CPU (export, insert, verify); on a GPU, verify
runs the plugin nodes with the plugins' kernels, and the Llama example times them."""
import llama_rmsnorm
import numpy as np
import onnx
import onnxscript  # noqa: F401  (the dynamo exporter needs it; in the test extra)
import pytest
import text_recognizer
import torch
import transformer_block

from plugkit import testing
from plugkit.host import run
from plugkit.onnx_tools import plugin_nodes
from plugkit.ops import op_module
from plugkit.tolerances import compare

# Examples whose main(workdir, verify_options) verifies plugged models: each joins the GPU check.
VERIFIED_EXAMPLES = [transformer_block, text_recognizer]


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


@pytest.mark.gpu
@pytest.mark.parametrize("example", VERIFIED_EXAMPLES, ids=lambda m: m.__name__)
def test_examples_verify_with_the_plugin_kernels(example, tmp_path, capsys):
    testing.require_cuda()
    assert example.main(tmp_path, ["--device", "cuda", "--plugins", str(testing.built_library())]) == 0
    out = capsys.readouterr().out
    assert "OK: every output is within tolerance" in out and "FAIL" not in out


def test_llama_plugin_model_is_the_stock_model_on_cpu():
    """On CPU tensors the plugin op runs the RMSNorm reference: the swap changes no function."""
    config = llama_rmsnorm.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2,
                                       num_heads=4, num_kv_heads=2)
    stock, plugin = llama_rmsnorm.build_models(config)
    assert sum(isinstance(m, llama_rmsnorm.PluginRMSNorm) for m in plugin.modules()) == 5
    tokens = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))
    result = compare(llama_rmsnorm.logits(plugin, tokens), llama_rmsnorm.logits(stock, tokens), "float32")
    assert result.ok, result


@pytest.mark.gpu
def test_llama_example_times_both_models(capsys):
    testing.require_cuda()
    status = llama_rmsnorm.main(["--layers", "2", "--hidden", "256", "--intermediate", "512", "--heads", "4",
                                 "--kv-heads", "2", "--vocab", "1000", "--batch", "2", "--seq", "64",
                                 "--iterations", "5", "--library", str(testing.built_library())])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "float32 logits" in out and "ok" in out.splitlines()[0]
    table = out.splitlines()[-3:]
    assert table[0].startswith("stock PyTorch") and table[1].startswith("plugin RMSNorm")
    assert all(float(v) > 0 for line in table[:2] for v in line.split()[-2:])
