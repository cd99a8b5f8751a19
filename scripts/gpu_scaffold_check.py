#!/usr/bin/env python3
"""Check `plugkit new` end to end on a CUDA machine: in a temporary copy of this
repository, scaffold one op of each kind, build the plugin library for the GPU's
architecture, list and check it, and run the generated tests (GPU, then CPU).

    python scripts/gpu_scaffold_check.py            # --arch 90 (H100) by default
    python scripts/gpu_scaffold_check.py --arch 80 --keep

Needs only this repository, an installed plugkit (pip install -e .), CUDA, CMake,
torch with CUDA, and TensorRT headers: $TENSORRT_INCLUDE_DIR, the kernel-lens
wheel's, a system install, or this repository's build/_deps (no network is used
when one of those is present). Exits non-zero when anything fails or when the
GPU tests did not run.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from plugkit.scaffold import snake_case

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("CMakeLists.txt", "cmake", "csrc", "plugins", "conftest.py", "pyproject.toml")

# One op of each kind, as a user would ask for it.
OPS = {
    "GatedScale": ["--expr", "a * sigmoid(b) + alpha * tanh(a)", "--attr", "alpha:float32=0.5"],
    "RowSoftmax": ["--kind", "rowwise"],
    "SplitCopy": ["--kind", "custom", "--input", "X", "--output", "Y", "--output", "Z",
                  "--output-shape", "Z=X[0],4"],
}


def tensorrt_include_dir() -> str | None:
    """TensorRT headers already on this machine, so that CMake fetches nothing."""
    if os.environ.get("TENSORRT_INCLUDE_DIR"):
        return os.environ["TENSORRT_INCLUDE_DIR"]
    spec = importlib.util.find_spec("kernel_lens")
    candidates = [Path(p) / "include" / "tensorrt" for p in (spec.submodule_search_locations or [])] if spec else []
    candidates.append(REPO / "build/_deps/tensorrt-headers/kernel_lens/include/tensorrt")
    for path in candidates:
        if (path / "NvInferVersion.h").is_file():
            return str(path)
    return None  # system headers, or CMake's pinned download


def run(cmd, cwd, env=None, check=True):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True, capture_output=True)
    print(result.stdout[-6000:], end="")
    if result.stderr:
        print(result.stderr[-6000:], end="", file=sys.stderr)
    if check and result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(str(c) for c in cmd)}")
    return result


def summary(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return lines[-1] if lines else "(no pytest summary)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="90", help="PLUGKIT_CUDA_ARCHITECTURES (default: 90)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and print its path")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="plugkit-scaffold-"))
    try:
        for name in PROJECT_FILES:
            src = REPO / name
            copy = shutil.copytree if src.is_dir() else shutil.copy2
            copy(src, work / name)
        (work / "tests").mkdir()
        py = sys.executable
        for op, options in OPS.items():
            run([py, "-m", "plugkit", "new", op, "--root", work, *options], cwd=work)

        configure = ["cmake", "-S", work, "-B", work / "build", "-DCMAKE_BUILD_TYPE=Release",
                     f"-DPLUGKIT_CUDA_ARCHITECTURES={args.arch}"]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        if tensorrt_include_dir():
            configure.append(f"-DTENSORRT_INCLUDE_DIR={tensorrt_include_dir()}")
        run(configure, cwd=work)
        run(["cmake", "--build", work / "build", "--parallel", str(os.cpu_count() or 2)], cwd=work)

        library = work / "build/libplugkit_plugins.so"
        env = dict(os.environ, PLUGKIT_LIBRARY=str(library), PLUGKIT_PLUGINS_DIR=str(work / "plugins"))
        listed = run([py, "-m", "plugkit", "list", library], cwd=work, env=env).stdout
        missing = [op for op in OPS if op not in listed]
        if missing:
            raise SystemExit(f"`plugkit list` does not show {missing}")
        run([py, "-m", "plugkit", "check", library, "--plugins-dir", work / "plugins"], cwd=work, env=env)

        tests = [f"tests/test_{snake_case(op)}.py" for op in OPS]
        results = {}
        for label, marker in (("gpu", "gpu"), ("cpu", "not gpu")):
            result = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, *tests],
                         cwd=work, env=env, check=False)
            results[label] = (result.returncode, summary(result.stdout))

        print("\n==== plugkit new: generated ops on this GPU ====")
        for label, (code, line) in results.items():
            print(f"{label:4s} tests: {line}  (exit {code})")
        gpu_code, gpu_line = results["gpu"]
        if gpu_code != 0 or results["cpu"][0] != 0:
            return 1
        if "passed" not in gpu_line or "skipped" in gpu_line:
            print("GPU tests were skipped: no CUDA device, or torch without CUDA", file=sys.stderr)
            return 1
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
