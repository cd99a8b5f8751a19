"""The CPU cost of an enqueue, as `plugkit bench --overhead` measures it: the plugin's own enqueue
timed in C++ around the call TensorRT makes, and the Python round trip. Times are printed by the
benchmark, never asserted against a target here."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plugkit import testing
from plugkit.host import PreparedPlugin

from sdk_test_library import library


def test_enqueue_cpu_times_need_a_gpu_and_say_so():
    printed = testing.run_without_a_gpu("""
import os
from plugkit.host import PluginLibrary, PreparedPlugin
prepared = PreparedPlugin(PluginLibrary(os.environ["PLUGKIT_LIBRARY"]).creator("TacticScale"), {}, [("float32", [4])])
try:
    prepared.plugin._native.enqueue_cpu_times([("float32", "LINEAR", [4], 0)], [], 0, 0, 3)
except RuntimeError as exc:
    print(exc)
""", library().path)
    assert "timing enqueue needs a CUDA device" in printed


@pytest.mark.gpu
def test_enqueue_cpu_times_time_each_call_in_cpp():
    import torch

    prepared = PreparedPlugin(library().creator("TacticScale"), {}, [("float32", [1024])])
    x = torch.randn(1024, device="cuda")
    outputs = prepared.allocate_outputs(x)
    times = prepared.enqueue_cpu_times([x], outputs, iterations=25)
    torch.cuda.synchronize()
    assert len(times) == 25 and all(t > 0 for t in times)
    assert prepared.plugin.trace[-1] == "enqueue"
    torch.testing.assert_close(outputs[0], x * 2)


@pytest.mark.gpu
def test_bench_overhead_prints_both_times_for_rms_norm():
    result = subprocess.run([sys.executable, "-m", "plugkit", "bench", "rms_norm", "--overhead", "--iterations", "50",
                             "--shapes", "1x4096;4096", "--dtype", "float16",
                             "--library", str(testing.built_library())],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "enqueue us" in lines[-2] and "python us" in lines[-2] and "torch op us" in lines[-2]
    row = lines[-1].split()
    assert lines[-1].startswith("1x4096 4096") and row[-1] in ("ok", "over") and row[-5] in ("ok", "over")
    assert float(row[-2]) == pytest.approx(float(row[-4]) - float(row[3]), abs=0.02)  # op minus enqueue


def test_device_queries_go_through_the_per_device_caches():
    """Occupancy, function and device attributes that an enqueue needs come from the SDK's caches
    (plugkit/launch.h, answered once per device): the SDK's other headers, the shipped plugins and
    the templates make no such query of their own, which would cost a driver call per enqueue."""
    repo = Path(__file__).resolve().parents[1]
    query = re.compile(r"\b(cudaOccupancy\w+|cudaFuncGetAttributes|cudaDeviceGetAttribute|cudaGetDeviceProperties"
                       r"|cuOccupancy\w+|cuFuncGetAttribute|cuDeviceGetAttribute)\s*\(")
    sources = [*(repo / "csrc/include/plugkit").glob("*.h"), *(repo / "templates").rglob("*.j2"),
               *(p for p in (repo / "plugins").rglob("*") if p.suffix in (".h", ".cuh", ".cu", ".cpp"))]
    assert len(sources) > 20
    offenders = [f"{path.relative_to(repo)}:{number}: {line.strip()}" for path in sources
                 if path.name != "launch.h"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if query.search(line)]
    assert offenders == []
