"""Both examples' plugged models built into engines by TensorRT-RTX's parser and builder, on the
CPU (``rtx`` marker: skipped without the TensorRT-RTX wheels)."""
import sys
from pathlib import Path

import onnx
import pytest

from plugkit import engine, testing
from plugkit.onnx_tools import insert_file

import recognizer_engine  # examples/ is on sys.path under pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_engine_rtx import TARGETS, check_engine  # noqa: E402

pytestmark = pytest.mark.rtx


def plugin_fields(model: onnx.ModelProto) -> dict[str, dict]:
    """Each plugin node's op attributes, as the engine must hold them."""
    return {n.name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute
                     if a.name not in ("plugin_version", "plugin_namespace")}
            for n in model.graph.node if n.domain == "plugkit"}


def build_and_check(plugged, shapes, tmp_path):
    model = onnx.load(str(plugged))
    assert plugin_fields(model), "no plugin node in the plugged model"
    result = engine.build(plugged, tmp_path / "m.engine", plugins=[testing.built_library()], shapes=shapes,
                          backend="rtx", compute_capabilities=TARGETS, progress=False, log=lambda message: None)
    check_engine(result, model, plugin_fields(model))
    return result


def test_recognizer_builds_for_widths_64_to_1024(tmp_path):
    original = recognizer_engine.export_repvgg(tmp_path / "recognizer.onnx")
    plugged = tmp_path / "recognizer.plugged.onnx"
    insert_file(original, plugged, ["RMSNorm"])
    name = onnx.load(str(plugged), load_external_data=False).graph.input[0].name
    result = build_and_check(plugged, [recognizer_engine.SHAPES.format(input=name)], tmp_path)
    image = result.metadata.inputs[0]
    assert image.profile.min == (1, 3, 32, 64) and image.profile.max == (1, 3, 32, 1024)


def test_transformer_block_builds(tmp_path):
    import transformer_block

    _, plugin = transformer_block.build_models()
    path = tmp_path / "decoder.from_torch.onnx"
    transformer_block.export(plugin, path)
    assert len(plugin_fields(onnx.load(str(path)))) == 5  # two blocks of two norms, and the final one
    build_and_check(path, ["x:1x1x32,2x8x32,4x16x32"], tmp_path)
