"""Copies of this repository in which ops are scaffolded by the CLI and built, for the tests that
check what `plugkit new` generates (tests/test_scaffold.py, tests/test_triton.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cmd, cwd, env=None) -> subprocess.CompletedProcess:
    """Run a command; a failure shows the command and the ends of its output."""
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True, capture_output=True)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def project_with_ops(root: Path, files, ops: dict, env=None) -> Path:
    """``root`` holding ``files`` of this repository (plus empty plugins/ and tests/ where those are
    not copied) and each op of ``ops`` (name -> `plugkit new` options) scaffolded by the CLI."""
    assert shutil.which("cmake") and shutil.which("nvcc"), "building plugin libraries needs cmake and nvcc on PATH"
    for name in files:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, root / name)
    for folder in ("plugins", "tests"):
        (root / folder).mkdir(exist_ok=True)
    for op, options in ops.items():
        run([sys.executable, "-m", "plugkit", "new", op, "--root", root, *options], cwd=root, env=env)
    return root


def cpu_tests_pass(root: Path, env, tests) -> str:
    """Run ``tests`` of a project with the GPU tests deselected; they must pass and none skip
    (`-m "not gpu"` deselects the GPU tests; nothing else may skip). Returns pytest's summary."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not gpu", *tests],
                            cwd=root, env=env, text=True, capture_output=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "error" not in summary and "skipped" not in summary
    return summary


def rtx_engines_build(root: Path, env, ops) -> str:
    """TensorRT-RTX's real ONNX parser and builder (no GPU needed) build each of ``ops`` into engines,
    in every dtype it declares: tests/test_engine_rtx.py's schema models, run in the project copy
    against its library. Returns pytest's summary."""
    for name in ("engine_models.py", "test_engine_rtx.py"):
        shutil.copy2(REPO / "tests" / name, root / "tests" / name)
    selection = f"every_plugin_builds and ({' or '.join(ops)})"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "rtx", "-k",
                             selection, "tests/test_engine_rtx.py"], cwd=root, env=env, text=True, capture_output=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "skipped" not in summary, summary
    return summary
