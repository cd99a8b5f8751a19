"""Issue 22 #4 and "make it stay fixed": every command, given bad input, prints one line on
stderr, exits 2, leaves no traceback, leaves its input files as they were and writes nothing."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnx_chains as chains
from plugkit import _host
from plugkit.cli import main
from plugkit.onnx_tools import insert_plugins

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    model = chains.build(chains.Chain(shape=("N", 5, 16)))
    onnx.save(model, d / "model.onnx")
    onnx.save(insert_plugins(model, ["RMSNorm"]).model, d / "plugged.onnx")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(d / "wrong_shape.npz", X=np.ones((2, 7, 3), np.float32))
    np.savez(d / "strings.npz", X=np.array([["a", "b"]]))
    np.savez(d / "objects.npz", X=np.array([{"a": 1}], dtype=object))
    (d / "empty.onnx").write_bytes(b"")
    (d / "text.onnx").write_text("hello\n")
    (d / "dir.onnx").mkdir()
    (d / "junk.engine").write_bytes(os.urandom(4096))
    (d / "x.npy").write_text("nope")
    shared = Path(_host.__file__).read_bytes()
    (d / "half.so").write_bytes(shared[:len(shared) // 2])
    return d


BAD = {
    "list: truncated library": ["list", "{d}/half.so"],
    "list: a model": ["list", "{d}/model.onnx"],
    "check: truncated library": ["check", "{d}/half.so"],
    "check: a directory": ["check", "{d}/dir.onnx"],
    "doctor: empty file": ["doctor", "{d}/empty.onnx"],
    "doctor: text file": ["doctor", "{d}/text.onnx"],
    "doctor: a directory": ["doctor", "{d}/dir.onnx"],
    "doctor: truncated library": ["doctor", "{d}/model.onnx", "--plugins", "{d}/half.so"],
    "insert: empty file": ["insert", "{d}/empty.onnx", "--op", "RMSNorm", "-o", "{out}/o.onnx"],
    "insert: a directory as model": ["insert", "{d}/dir.onnx", "--op", "RMSNorm", "-o", "{out}/o.onnx"],
    "insert: -o ''": ["insert", "{d}/model.onnx", "--op", "RMSNorm", "-o", ""],
    "insert: -o /": ["insert", "{d}/model.onnx", "--op", "RMSNorm", "-o", "/"],
    "insert: -o an existing directory": ["insert", "{d}/model.onnx", "--op", "RMSNorm", "-o", "{out}"],
    "insert: -o the input": ["insert", "{d}/model.onnx", "--op", "RMSNorm", "-o", "{d}/model.onnx"],
    "insert: -o under a file": ["insert", "{d}/model.onnx", "--op", "RMSNorm", "-o", "{d}/text.onnx/o.onnx"],
    "insert: unknown op": ["insert", "{d}/model.onnx", "--op", "NoSuchOp", "-o", "{out}/o.onnx"],
    "verify: swapped arguments": ["verify", "{d}/plugged.onnx", "{d}/model.onnx"],
    "verify: garbage npz": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--inputs", "{d}/garbage.npz"],
    "verify: npz of the wrong shape": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--inputs",
                                       "{d}/wrong_shape.npz"],
    "verify: npz of strings": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--inputs", "{d}/strings.npz"],
    "verify: npz of objects": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--inputs", "{d}/objects.npz"],
    "verify: missing npz": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--inputs", "{d}/none.npz"],
    "verify: --seed -1": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--seed", "-1"],
    "verify: a dimension of 2^40": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--dim", "N=1099511627776"],
    "verify: bad --dim": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--dim", "N=abc"],
    "verify: negative --rtol": ["verify", "{d}/model.onnx", "{d}/plugged.onnx", "--rtol", "-1"],
    "verify: a directory": ["verify", "{d}/dir.onnx", "{d}/plugged.onnx"],
    "engine: a directory as model": ["engine", "{d}/dir.onnx", "-o", "{out}/m.engine"],
    "engine: truncated library": ["engine", "{d}/model.onnx", "--plugins", "{d}/half.so", "-o", "{out}/m.engine"],
    "engine: -o an existing directory": ["engine", "{d}/model.onnx", "-o", "{out}"],
    "run: junk engine": ["run", "{d}/junk.engine"],
    "run: a model as engine": ["run", "{d}/model.onnx"],
    "run: an engine that is a directory": ["run", "{d}/dir.onnx"],
    "run: bad npy": ["run", "{d}/junk.engine", "--input", "X={d}/x.npy"],
    "run: --seed -1": ["run", "{d}/junk.engine", "--seed", "-1"],
    "bench: unknown op": ["bench", "NoSuchOp"],
    "bench: truncated library": ["bench", "rms_norm", "--library", "{d}/half.so"],
    "bench: bad shapes": ["bench", "rms_norm", "--shapes", "axb"],
    "build: -j 0": ["build", "-j", "0"],
}


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_line_and_exit_2(case, files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLUGKIT_DEBUG", raising=False)
    args = [a.format(d=files, out=out) for a in BAD[case]]
    before, before_out = snapshot(files), snapshot(out)
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, f"{case}: exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"plugkit {args[0]}: error: "), err
    assert snapshot(files) == before
    assert snapshot(out) == before_out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_verify_runs_a_model_with_an_if_on_a_bool_scalar_input(tmp_path, capsys):
    """It used to end in a traceback; a random bool scalar now feeds the If."""
    then_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                                   [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph)], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["verify", str(path), str(path)]) == 0
    assert "OK: every output is within tolerance" in capsys.readouterr().out


def test_a_failure_in_a_subprocess_prints_no_traceback(files, tmp_path):
    """The same boundary seen from outside: the process's exit code and its stderr."""
    env = {k: v for k, v in os.environ.items() if k != "PLUGKIT_DEBUG"}
    result = subprocess.run([sys.executable, "-m", "plugkit", "doctor", str(files / "empty.onnx")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
