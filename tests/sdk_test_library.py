"""The test-only plugin library of tests/cmake/sdk_plugins (TacticScale, NonZeroProbe), built once
per session into build-sdk-tests/ (incremental across runs) against this tree's SDK."""
import functools
import os
import subprocess
from pathlib import Path

import pytest

from plugkit import testing
from plugkit.host import PluginLibrary

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "cmake" / "sdk_plugins"
BUILD = ROOT / "build-sdk-tests"


@functools.lru_cache(maxsize=None)
def library() -> PluginLibrary:
    # One architecture is enough for test kernels: the GPU present ("native"), else the last one asked for.
    from plugkit.host import cuda_available

    asked = os.environ.get("PLUGKIT_CUDA_ARCHITECTURES", "").split(";")[-1]
    arch = asked or ("native" if cuda_available() else "90")
    steps = [
        ["cmake", "-S", str(SOURCE), "-B", str(BUILD), f"-DPLUGKIT_SOURCE_DIR={ROOT}",
         f"-DTENSORRT_INCLUDE_DIR={testing.built_header_dir()}", f"-DPLUGKIT_CUDA_ARCHITECTURES={arch}",
         "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(BUILD), "--parallel", "2", "--target", "sdk_test_plugins"],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(step)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}", pytrace=False)
    return PluginLibrary(BUILD / "libsdk_test_plugins.so")
