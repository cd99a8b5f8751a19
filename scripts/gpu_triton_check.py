#!/usr/bin/env python3
"""Check `plugkit new --lang triton` end to end on a CUDA machine (issue 26): in a temporary copy
of this repository, scaffold an elementwise and a rowwise op twice, in Triton and in CUDA, build
the library (Triton kernels compiled ahead of time by `plugkit build`), list and check it, run the
generated tests (GPU, then CPU), optionally the Triton ops' GPU tests under compute-sanitizer
memcheck, then time each Triton op next to the same op in CUDA, PyTorch eager and torch.compile,
and every Triton config (tactic) at each case.

    python scripts/gpu_triton_check.py                    # --arch 90 (H100/H200)
    python scripts/gpu_triton_check.py --sanitize         # + memcheck of the Triton ops' GPU tests
    python scripts/gpu_triton_check.py --no-tests --rounds 10

What to look for: every generated test passes (GPU and CPU), memcheck reports 0 errors, and in the
table the Triton plugin's time is close to the CUDA plugin's and to torch.compile (itself Triton):
the Triton rows run their first config (TensorRT would time all of them: see the tactic tables).
Needs triton (the version plugkit pins), torch with CUDA, CMake, nvcc, and TensorRT headers (see
gpu_scaffold_check.py); no network. Exits non-zero when anything fails or the GPU tests did not run.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_scaffold_check import (arguments, generated_tests, load_schema, project_copy, run, summary,  # noqa: E402
                                tensorrt_include_dir, verdict)

from plugkit.scaffold import snake_case  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("CMakeLists.txt", "cmake", "csrc", "conftest.py", "pyproject.toml")
EXPR = ["--expr", "x * sigmoid(alpha * x) + b", "--attr", "alpha:float32=1.5"]
PAIRS = {  # Triton op -> (the same op in CUDA, `plugkit new` options)
    "TritonGatedAdd": ("CudaGatedAdd", EXPR),
    "TritonRowSoftmax": ("CudaRowSoftmax", ["--kind", "rowwise"]),
}
DTYPES = ("float32", "float16", "bfloat16")


def bench_table(work: Path, library: Path, rounds: int) -> bool:
    """One line per (op, shapes, dtype): Triton plugin, CUDA plugin, eager, torch.compile."""
    from plugkit import bench
    from plugkit.host import PluginLibrary

    plugins = PluginLibrary(library)
    copy_gbps = bench.copy_bandwidth()
    print(f"\n==== Triton plugins against the same op in CUDA, eager and torch.compile (copy {copy_gbps:.0f} GB/s) ====")
    print(f"{'op':<17} {'shapes':<24} {'dtype':<9} {'triton us':>9} {'% copy':>7} {'cuda us':>8} {'% copy':>7} "
          f"{'eager us':>9} {'compile us':>10} {'triton/cuda':>11} {'compile/triton':>14}")
    ok = True
    for triton_op, (cuda_op, _) in PAIRS.items():
        triton_schema = load_schema(work / "plugins" / snake_case(triton_op) / "op.py")
        cuda_schema = load_schema(work / "plugins" / snake_case(cuda_op) / "op.py")
        for case in triton_schema.bench_cases:
            shapes = case["inputs"]
            for dtype in DTYPES:
                label = ";".join("x".join(map(str, s)) for s in shapes)
                try:
                    tri = bench.bench_case([plugins], triton_schema, shapes, dtype, None, copy_gbps, True, rounds)
                    cu = bench.bench_case([plugins], cuda_schema, shapes, dtype, None, copy_gbps, False, rounds)
                except Exception as exc:  # one failed case must not hide the others
                    print(f"{triton_op:<17} {label:<24} {dtype:<9} FAILED: {type(exc).__name__}: {exc}")
                    ok = False
                    continue
                t_us, c_us = tri.plugin_us[0], cu.plugin_us[0]
                print(f"{triton_op:<17} {label:<24} {dtype:<9} {t_us:>9.1f} {tri.copy_fraction():>7.1%} "
                      f"{c_us:>8.1f} {cu.copy_fraction():>7.1%} {tri.eager_us or 0:>9.1f} {tri.compile_us or 0:>10.1f} "
                      f"{t_us / c_us:>10.2f}x {tri.vs_compile[0] or 0:>13.2f}x", flush=True)
    return ok


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--sanitize", action="store_true",
                        help="run the Triton ops' GPU tests under compute-sanitizer --tool memcheck")
    args = parser.parse_args()

    started = time.monotonic()
    py = sys.executable
    with project_copy("plugkit-triton-", PROJECT_FILES, args.keep) as work:
        env = dict(os.environ, PLUGKIT_LIBRARY=str(work / "build/libplugkit_plugins.so"),
                   PLUGKIT_PLUGINS_DIR=str(work / "plugins"), PYTHONPATH=os.pathsep.join(
                       [str(REPO / "python")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        for triton_op, (cuda_op, options) in PAIRS.items():
            run([py, "-m", "plugkit", "new", triton_op, "--lang", "triton", "--root", work, *options], cwd=work, env=env)
            run([py, "-m", "plugkit", "new", cuda_op, "--root", work, *options], cwd=work, env=env)
        build = [py, "-m", "plugkit", "build", "--arch", args.arch]
        if tensorrt_include_dir():
            build += ["-D", f"TENSORRT_INCLUDE_DIR={tensorrt_include_dir()}"]
        run(build, cwd=work, env=env)  # also lists and checks the library
        print(f"[{time.monotonic() - started:.0f} s] built", flush=True)
        library = work / "build/libplugkit_plugins.so"
        run([py, "-m", "plugkit", "check", library, "--plugins-dir", work / "plugins"], cwd=work, env=env)

        results = {}
        ops = [op for pair in PAIRS.items() for op in (pair[0], pair[1][0])]
        if not args.no_tests:
            results.update(generated_tests(py, work, env, ops))
            print(f"[{time.monotonic() - started:.0f} s] tested", flush=True)
        if args.sanitize:
            sanitizer = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
            tests = [f"tests/test_{snake_case(op)}.py" for op in PAIRS]
            # Without torch's caching allocator every tensor is its own allocation, so memcheck sees overruns.
            result = run([sanitizer, "--tool", "memcheck", "--error-exitcode", "1", py, "-m", "pytest", "-q",
                          "-p", "no:cacheprovider", "-m", "gpu", *tests], cwd=work,
                         env=dict(env, PYTORCH_NO_CUDA_MEMORY_CACHING="1"), check=False)
            results["memcheck"] = (result.returncode, summary(result.stdout) + " | " + next(
                (line for line in result.stdout.splitlines() if "ERROR SUMMARY" in line), "(no ERROR SUMMARY)"))
            print(f"[{time.monotonic() - started:.0f} s] sanitized", flush=True)
        ok = True
        if not args.no_bench:
            ok = bench_table(work, library, args.rounds)
            for triton_op in PAIRS:
                result = run([py, "-m", "plugkit", "bench", triton_op, "--tactics", "--library", library,
                              "--plugins-dir", work / "plugins", "--rounds", str(args.rounds)],
                             cwd=work, env=env, check=False)
                ok = ok and result.returncode == 0
            print(f"[{time.monotonic() - started:.0f} s] timed", flush=True)

        return verdict("plugkit new --lang triton on this GPU", results) or (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
