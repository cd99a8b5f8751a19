"""Issue 22 #1: a file that is not a complete shared library for this machine is refused
before dlopen (a truncated one used to kill every load path with SIGBUS)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plugkit import _host
from plugkit.errors import PluginLibraryError
from plugkit.host import PluginLibrary
from plugkit.plugin_libraries import check_library_file

ROOT = Path(__file__).resolve().parents[1]
SHARED_OBJECT = Path(_host.__file__)  # a real ELF shared object, always built


def plugkit(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "plugkit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def patched(tmp_path, name, offset=None, value=b"", size=None):
    data = bytearray(SHARED_OBJECT.read_bytes())
    if offset is not None:
        data[offset:offset + len(value)] = value
    path = tmp_path / name
    path.write_bytes(bytes(data[:size]))
    return path


@pytest.fixture
def truncated(tmp_path):
    return patched(tmp_path, "truncated.so", size=SHARED_OBJECT.stat().st_size // 2)


@pytest.fixture
def model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_complete_shared_object_passes():
    assert check_library_file(SHARED_OBJECT) == SHARED_OBJECT


@pytest.mark.parametrize("name, offset, value, size, message", [
    ("half.so", None, b"", "half", "truncated"),
    ("header.so", None, b"", 40, "truncated"),
    ("empty.so", None, b"", 0, "not an ELF file (it is empty)"),
    ("text.so", 0, b"hello", None, "not an ELF file"),
    ("exec.so", 16, b"\x02\x00", None, "not a shared object"),
    ("arm.so", 18, (183).to_bytes(2, "little") if sys.byteorder == "little" else (62).to_bytes(2, "little"),
     None, "built for"),
    ("class32.so", 4, b"\x01", None, "32-bit"),
])
def test_broken_libraries_are_refused_with_the_reason(tmp_path, name, offset, value, size, message):
    size = SHARED_OBJECT.stat().st_size // 2 if size == "half" else size
    path = patched(tmp_path, name, offset, value, size)
    with pytest.raises(PluginLibraryError, match=re.escape(message)):
        check_library_file(path)
    with pytest.raises(PluginLibraryError, match=re.escape(message)):
        PluginLibrary(path)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(PluginLibraryError, match="is a directory"):
        PluginLibrary(tmp_path)


@pytest.mark.parametrize("command", [
    ["list", "{lib}"],
    ["check", "{lib}"],
    ["doctor", "{model}", "--plugins", "{lib}"],
    ["engine", "{model}", "--plugins", "{lib}", "-o", "{out}"],
    ["bench", "rms_norm", "--library", "{lib}"],
])
def test_every_cli_load_path_refuses_a_truncated_library(truncated, model, tmp_path, command):
    args = [a.format(lib=truncated, model=model, out=tmp_path / "m.engine") for a in command]
    result = plugkit(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "truncated" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.engine").exists()
