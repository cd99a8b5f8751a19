"""Issue 22 #2 and #7: models with external data (and so over 2 GB) are read and written
with their weights beside them, never twice in memory; outputs are written under a unique
temporary name, so a user's X.partial survives, and nothing is left behind on failure."""
import hashlib
import os

import onnx
import pytest
from onnx import external_data_helper

import onnx_chains as chains
from plugkit.cli import main
from plugkit.errors import OnnxModelError
from plugkit.onnx_tools import insert_file, plugin_nodes
from plugkit.onnx_tools.model_io import load_model, save_model
from plugkit.onnx_tools.verify import verify_files
from plugkit.output_files import OutputFileError


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_weights(model):
    """The chain model with a 64x16 MatMul weight before the norm (large enough to go external)."""
    return chains.build(chains.Chain(shape=("N", 5, 16), pre=("MatMul",), post=("Bias",)))


@pytest.fixture
def external_model(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "model.onnx"
    onnx.save(with_weights(None), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.weights", size_threshold=0)
    return path


@pytest.mark.parametrize("small_tensor_bytes", [16 << 20, 256])  # 256: the weights stay on disk
def test_insert_and_verify_a_model_with_external_data(external_model, tmp_path, monkeypatch, small_tensor_bytes):
    from plugkit.onnx_tools import model_io

    monkeypatch.setattr(model_io, "SMALL_TENSOR_BYTES", small_tensor_bytes)
    before = {p.name: digest(p) for p in external_model.parent.iterdir()}
    out = tmp_path / "out" / "plugged.onnx"
    result = insert_file(external_model, out, ["RMSNorm"])
    assert result.count() == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["plugged.onnx", "plugged.onnx.data"]
    onnx.checker.check_model(str(out))
    written = onnx.load(str(out), load_external_data=False)
    external = [t.name for t in written.graph.initializer if external_data_helper.uses_external_data(t)]
    assert external, "the weights stay external, beside the output"
    assert all(dict((e.key, e.value) for e in t.external_data)["location"] == "plugged.onnx.data"
               for t in written.graph.initializer if external_data_helper.uses_external_data(t))
    assert len(plugin_nodes(written)) == 1
    assert {p.name: digest(p) for p in external_model.parent.iterdir()} == before
    report = verify_files(external_model, out)
    assert report.ok, report.summary()


def test_large_external_tensors_are_not_read_at_load(external_model, monkeypatch):
    from plugkit.onnx_tools import model_io

    monkeypatch.setattr(model_io, "SMALL_TENSOR_BYTES", 256)
    model = load_model(external_model)
    big = [t for t in model.graph.initializer if external_data_helper.uses_external_data(t)]
    assert big and not any(t.raw_data for t in big)


def test_output_weights_never_overwrite_the_inputs(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(with_weights(None), str(path), save_as_external_data=True, location="out.onnx.data",
              size_threshold=0)
    before = digest(tmp_path / "out.onnx.data")
    with pytest.raises(OnnxModelError, match="which holds the input's weights"):
        insert_file(path, tmp_path / "out.onnx", ["RMSNorm"], force=True)
    assert digest(tmp_path / "out.onnx.data") == before
    assert not (tmp_path / "out.onnx").exists()


def test_insert_leaves_a_users_partial_file_alone(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(chains.build(chains.Chain()), str(src))
    partial = tmp_path / "out.onnx.partial"
    partial.write_text("my notes")
    assert main(["insert", str(src), "--op", "RMSNorm", "-o", str(tmp_path / "out.onnx")]) == 0
    assert partial.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "out.onnx", "out.onnx.partial"]


def test_force_replaces_a_symlink_and_a_read_only_file_as_documented(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    onnx.save(chains.build(chains.Chain()), str(src))
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    assert main(["insert", str(src), "--op", "RMSNorm", "-o", str(link), "--force"]) == 0
    assert not link.is_symlink() and target.read_text() == "keep"
    readonly = tmp_path / "ro.onnx"
    readonly.write_text("x")
    readonly.chmod(0o444)
    assert main(["insert", str(src), "--op", "RMSNorm", "-o", str(readonly), "--force"]) == 0
    assert os.access(readonly, os.W_OK)
    main_help = pytest.raises(SystemExit, main, ["insert", "--help"])
    assert main_help.value.code == 0
    assert "symlink" in capsys.readouterr().out


@pytest.mark.parametrize("output, message", [
    ("", "path is empty"),
    ("/", "is a directory"),
    ("{tmp}", "is a directory"),
    ("{tmp}/file.txt/out.onnx", "is not a directory"),
])
def test_unwritable_outputs_are_refused_and_nothing_is_written(tmp_path, output, message):
    src = tmp_path / "m.onnx"
    onnx.save(chains.build(chains.Chain()), str(src))
    (tmp_path / "file.txt").write_text("x")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(OutputFileError, match=message):
        insert_file(src, output.format(tmp=tmp_path), ["RMSNorm"])
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_save_removes_its_temporary_file_when_the_check_fails(tmp_path):
    model = chains.build(chains.Chain())
    model.graph.node[0].input[0] = "no_such_tensor"
    with pytest.raises(OnnxModelError, match="fails onnx.checker"):
        save_model(model, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []
