"""The CLI commands of the foundation: build, list, check, bench's argument handling."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plugkit import testing

ROOT = Path(__file__).resolve().parents[1]


def plugkit(*args, cwd=ROOT, env=None):
    import os
    environment = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "plugkit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=environment)


@pytest.fixture(scope="module")
def library_file():
    return testing.plugin_library().path


def test_list_prints_plugins_and_fields(library_file):
    result = plugkit("list", library_file)
    assert result.returncode == 0, result.stderr
    assert "plugin(s), compiled against TensorRT 10.14.1 headers" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "RMSNorm" in line).split()
    assert row[:3] == ["RMSNorm", "1", "plugkit"]
    assert "axis:INT32, epsilon:FLOAT32" in result.stdout


def test_check_passes_on_the_shipped_library(library_file):
    result = plugkit("check", library_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok: {library_file}" in result.stdout


def test_check_names_fields_that_differ_from_op_py(library_file, tmp_path):
    op = (ROOT / "plugins/rms_norm/op.py").read_text()
    changed = op.replace('Attr("epsilon", "float32", 1e-5', 'Attr("epsilon", "int32", 1')
    assert changed != op
    (tmp_path / "rms_norm").mkdir()
    (tmp_path / "rms_norm/op.py").write_text(changed)
    result = plugkit("check", library_file, "--plugins-dir", tmp_path)
    assert result.returncode == 1
    assert ("fields (axis:INT32, epsilon:FLOAT32, stash_type:INT32) differ from op.py's attributes "
            "(axis:INT32, epsilon:INT32, stash_type:INT32)") in result.stderr


@pytest.mark.parametrize("target, message", [
    ("missing.so", "does not exist"),
    ("README.md", "cannot load"),
])
def test_list_and_check_refuse_what_is_not_a_plugin_library(tmp_path, target, message):
    path = tmp_path / target
    if target != "missing.so":
        path.write_text("not a library")
    listed = plugkit("list", path)
    assert listed.returncode == 2 and message in listed.stderr and "Traceback" not in listed.stderr
    checked = plugkit("check", path)
    assert checked.returncode == 2 and message in checked.stderr and len(checked.stderr.splitlines()) == 1


def test_check_refuses_a_shared_library_without_getcreators():
    from plugkit import _host  # a shared library that is not a plugin library

    result = plugkit("check", _host.__file__)
    assert result.returncode == 1 and "exports no getCreators()" in result.stderr


def test_bench_refuses_unknown_ops():
    result = plugkit("bench", "NoSuchOp")
    assert result.returncode == 2 and "unknown op 'NoSuchOp'" in result.stderr


def test_build_configures_builds_lists_and_checks(tmp_path, library_file):
    result = plugkit("build", "--build-dir", tmp_path / "build", "--arch", "75", "-j", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "build/libplugkit_plugins.so").exists()
    assert re.search(r"plugkit: plugkit_plugins registers \d+ plugin\(s\): .*RmsNormPlugin", result.stdout)
    assert "RMSNorm" in result.stdout and "ok:" in result.stdout
