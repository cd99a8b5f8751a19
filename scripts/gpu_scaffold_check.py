#!/usr/bin/env python3
"""Check `plugkit new` end to end on a CUDA machine: in a temporary copy of this
repository, scaffold fresh ops (GELU-tanh elementwise, `a * b + alpha` with b
broadcast, the default rowwise softmax, two custom ops: one plain, one with an int32
input, outputs of four dtypes and two data-dependent dims), build the plugin library
for the GPU's architecture, list and check it, run the generated tests (GPU, then
CPU), then time the ops against the copy bandwidth, PyTorch eager and
torch.compile at the template targets (issue 20):

  elementwise 16384x8192 (and b [8192] broadcast): >= 90% of copy, >= eager and compile
  rowwise 32768x1024, 4096x4096, 262144x128:       >= 85% of copy, >= 0.95x compile
  each in float32, float16 and bfloat16.

    python scripts/gpu_scaffold_check.py            # --arch 90 (H100/H200) by default
    python scripts/gpu_scaffold_check.py --arch 80 --keep
    python scripts/gpu_scaffold_check.py --no-bench # build and tests only
    python scripts/gpu_scaffold_check.py --no-tests --rounds 10   # build and the table only

Needs only this repository, an installed plugkit (pip install -e .), CUDA, CMake,
torch with CUDA, and TensorRT headers: $TENSORRT_INCLUDE_DIR, the kernel-lens
wheel's, a system install, or this repository's build/_deps (no network is used
when one of those is present). Exits non-zero when anything fails or when the
GPU tests did not run.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plugkit.scaffold import snake_case

REPO = Path(__file__).resolve().parents[1]
# Not plugins/: the shipped plugins are built and tested on their own; here only the new ops compile.
PROJECT_FILES = ("CMakeLists.txt", "cmake", "csrc", "conftest.py", "pyproject.toml")

# One op of each kind, as a user would ask for it.
OPS = {
    "GeluTanh": ["--expr", "0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x * x * x)))"],
    "ScaleShift": ["--expr", "a * b + alpha", "--attr", "alpha:float32=0.5"],
    "GatedScale": ["--expr", "a * sigmoid(b) + alpha * tanh(a)", "--attr", "alpha:float32=0.5"],
    "RowSoftmax": ["--kind", "rowwise"],
    "SplitCopy": ["--kind", "custom", "--input", "X", "--output", "Y", "--output", "Z",
                  "--output-shape", "Z=X[0],4"],
    # an int32 input; outputs of four dtypes; two data-dependent dims (size outputs K and M, last)
    "PositiveSplit": ["--kind", "custom", "--input", "X", "--input", "lengths:int32", "--output", "Y",
                      "--output", "idx:int32", "--output", "S:float32", "--output", "wide:int64",
                      "--output-shape", "idx=K<=X[0]*X[1],2", "--output-shape", "S=K<=X[0]*X[1]",
                      "--output-shape", "wide=X[0],M<=min(X[1], 5)"],
}

# The template targets of issue 20: op -> (input shapes per case, (least % of copy, least
# speed-up over eager, least speed-up over torch.compile)); None: no target.
BENCH = {
    "GeluTanh": ([[(16384, 8192)]], (0.90, 1.0, 1.0)),
    "ScaleShift": ([[(16384, 8192), (16384, 8192)], [(16384, 8192), (8192,)]], (0.90, 1.0, 1.0)),
    "RowSoftmax": ([[(32768, 1024)], [(4096, 4096)], [(262144, 128)]], (0.85, None, 0.95)),
}
DTYPES = ("float32", "float16", "bfloat16")


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


def generated_tests(py, work: Path, env, ops) -> dict[str, tuple[int, str]]:
    """The generated tests of ``ops``, GPU then CPU: label -> (exit code, pytest summary line)."""
    tests = [f"tests/test_{snake_case(op)}.py" for op in ops]
    results = {}
    for label, marker in (("gpu", "gpu"), ("cpu", "not gpu")):
        result = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, *tests],
                     cwd=work, env=env, check=False)
        results[label] = (result.returncode, summary(result.stdout))
    return results


def gpu_tests_skipped(results) -> bool:
    """True (and says so) when the GPU tests ran none: no CUDA device, or torch without CUDA."""
    if "gpu" in results and ("passed" not in results["gpu"][1] or "skipped" in results["gpu"][1]):
        print("GPU tests were skipped: no CUDA device, or torch without CUDA", file=sys.stderr)
        return True
    return False


@contextlib.contextmanager
def project_copy(prefix: str, files, keep: bool):
    """A temporary folder holding ``files`` of this repository (and plugins/, tests/), removed
    afterwards unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        for name in files:
            (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, work / name)
        for folder in ("plugins", "tests"):
            (work / folder).mkdir(exist_ok=True)
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def verdict(title: str, results) -> int:
    """Print each test run's summary under ``title``; 1 when one failed or the GPU tests ran none."""
    print(f"\n==== {title} ====")
    for label, (code, line) in results.items():
        print(f"{label:8s}: {line}  (exit {code})")
    return 1 if any(code != 0 for code, _ in results.values()) or gpu_tests_skipped(results) else 0


def load_schema(op_file: Path):
    spec = importlib.util.spec_from_file_location(f"scaffolded_{op_file.parent.name}", op_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.schema


def bench_table(work: Path, library: Path, rounds: int) -> bool:
    """Time each op at its target shapes; print one line per (shape, dtype) and whether it meets
    the targets. True when every row does."""
    from plugkit import bench
    from plugkit.host import PluginLibrary

    plugins = PluginLibrary(library)
    copy_gbps = bench.copy_bandwidth()
    pdl = bench.pdl_supported()
    print(f"\n==== generated ops against copy ({copy_gbps:.0f} GB/s), eager and torch.compile ====")
    print(f"{'op':<11} {'shapes':<24} {'dtype':<9} {'plugin us':>9} {'% copy':>7} {'eager us':>9} "
          f"{'compile us':>10} {'vs eager':>8} {'vs compile':>10} {'95% CI':>9}  target")
    all_met = True
    for op, (cases, (least_copy, least_eager, least_compile)) in BENCH.items():
        schema = load_schema(work / "plugins" / snake_case(op) / "op.py")
        for shapes in cases:
            for dtype in DTYPES:
                try:
                    row = bench.bench_case([plugins], schema, shapes, dtype, None, copy_gbps, True, rounds, False, pdl)
                except Exception as exc:  # one failed case must not hide the others
                    print(f"{op:<11} {';'.join('x'.join(map(str, s)) for s in shapes):<24} {dtype:<9} "
                          f"FAILED: {type(exc).__name__}: {exc}")
                    all_met = False
                    continue
                vs_eager = row.eager_us / row.plugin_us[0] if row.eager_us else None
                vs_compile = row.vs_compile[0]
                missed = []
                if row.copy_fraction() < least_copy:
                    missed.append(f"copy < {least_copy:.0%}")
                if least_eager is not None and (vs_eager is None or vs_eager < least_eager):
                    missed.append(f"eager < {least_eager:.2f}x")
                if least_compile is not None and (vs_compile is None or vs_compile < least_compile):
                    missed.append(f"compile < {least_compile:.2f}x")
                all_met = all_met and not missed
                ci = row.vs_compile_ci[0]
                print(f"{op:<11} {';'.join('x'.join(map(str, s)) for s in shapes):<24} {dtype:<9} "
                      f"{row.plugin_us[0]:>9.1f} {row.copy_fraction():>7.1%} {row.eager_us or 0:>9.1f} "
                      f"{row.compile_us or 0:>10.1f} {vs_eager or 0:>7.2f}x {vs_compile or 0:>9.2f}x "
                      f"{(f'{ci[0]:.2f}-{ci[1]:.2f}' if ci else '-'):>9}  {'MET' if not missed else 'MISSED: ' + ', '.join(missed)}",
                      flush=True)
    return all_met


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options both GPU check scripts take."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="90", help="PLUGKIT_CUDA_ARCHITECTURES (default: 90)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and print its path")
    parser.add_argument("--no-tests", action="store_true", help="skip the generated tests")
    parser.add_argument("--no-bench", action="store_true", help="skip the timing tables")
    parser.add_argument("--rounds", type=int, default=10, help="timing rounds per case (default: 10)")
    return parser


def main() -> int:
    args = arguments(__doc__).parse_args()

    started = time.monotonic()
    with project_copy("plugkit-scaffold-", PROJECT_FILES, args.keep) as work:
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
        print(f"[{time.monotonic() - started:.0f} s] built", flush=True)

        library = work / "build/libplugkit_plugins.so"
        env = dict(os.environ, PLUGKIT_LIBRARY=str(library), PLUGKIT_PLUGINS_DIR=str(work / "plugins"))
        listed = run([py, "-m", "plugkit", "list", library], cwd=work, env=env).stdout
        missing = [op for op in OPS if op not in listed]
        if missing:
            raise SystemExit(f"`plugkit list` does not show {missing}")
        run([py, "-m", "plugkit", "check", library, "--plugins-dir", work / "plugins"], cwd=work, env=env)

        results = {}
        if not args.no_tests:
            results = generated_tests(py, work, env, OPS)
            print(f"[{time.monotonic() - started:.0f} s] tested", flush=True)
        met = True
        if not args.no_bench:
            met = bench_table(work, library, args.rounds)
            print(f"[{time.monotonic() - started:.0f} s] timed", flush=True)

        failed = verdict("plugkit new: generated ops on this GPU", results)
        if not args.no_bench:
            print(f"targets: {'all met' if met else 'some MISSED (see the table)'}")
        return failed or (0 if met else 3)


if __name__ == "__main__":
    sys.exit(main())
