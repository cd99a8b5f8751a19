"""The C++ side of engines, without TensorRT's libraries: plugkit/loader.h's version
rule and file checks (compiled and run), and examples/cpp configured through
find_package(plugkit) and compiled to object files (API misuse fails the compiler)."""
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from plugkit import testing

ROOT = Path(__file__).resolve().parents[1]

def cuda_include() -> Path:
    nvcc = shutil.which("nvcc")
    candidates = [Path(nvcc).resolve().parents[1] / "include"] if nvcc else []
    candidates.append(Path("/usr/local/cuda/include"))
    for path in candidates:
        if (path / "cuda_runtime_api.h").exists():
            return path
    pytest.fail(f"CUDA runtime headers (cuda_runtime_api.h) are in none of {candidates}; the plugin "
                "library needs the CUDA toolkit too: put its bin/ (nvcc) on PATH")


LOADER_TEST = r"""
#include "plugkit/loader.h"
#include <cstdio>
#include <cstring>

using plugkit::VersionMatch;
using plugkit::compareVersions;
static_assert(compareVersions(101401, 101401) == VersionMatch::kSAME);
static_assert(compareVersions(100800, 101401) == VersionMatch::kOLDER_HEADERS);
static_assert(compareVersions(101401, 100800) == VersionMatch::kNEWER_HEADERS);
static_assert(compareVersions(101401, 110000) == VersionMatch::kOTHER_MAJOR);
static_assert(plugkit::isCompatible(VersionMatch::kOLDER_HEADERS));
static_assert(!plugkit::isCompatible(VersionMatch::kNEWER_HEADERS));
static_assert(plugkit::TensorRTVersion::fromInt(101401).minor == 14);
static_assert(plugkit::kHeaderTensorRTVersion >= 100000);

// Prints the error (or the compiled version) for a library path, checked against `runtime`.
int main(int argc, char** argv)
{
    int32_t const runtime = std::atoi(argv[2]);
    try
    {
        std::printf("ok %d\n", plugkit::detail::inspectPluginLibrary(argv[1], runtime));
    }
    catch (plugkit::LoaderError const& e)
    {
        std::printf("error %s\n", e.what());
    }
    std::printf("%s\n", plugkit::describeMismatch("x", 101401, 110000).c_str());
    return argc == 3 ? 0 : 1;
}
"""


@pytest.fixture(scope="module")
def loader_program(tmp_path_factory):
    headers, cuda = testing.built_header_dir(), cuda_include()
    work = tmp_path_factory.mktemp("loader")
    (work / "loader_test.cpp").write_text(LOADER_TEST)
    # Plugin-like libraries: without getCreators, and one compiled for another major version.
    (work / "noentry.cpp").write_text('extern "C" int something() { return 1; }\n')
    (work / "trt11.cpp").write_text(textwrap.dedent("""
        extern "C" void* getCreators(int& n) { n = 0; return nullptr; }
        extern "C" int plugkit_tensorrt_version() { return 110000; }
    """))
    commands = [
        ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'csrc/include'}", "-isystem", str(headers),
         "-isystem", str(cuda), str(work / "loader_test.cpp"), "-o", str(work / "loader_test"), "-ldl"],
        ["g++", "-shared", "-fPIC", str(work / "noentry.cpp"), "-o", str(work / "libnoentry.so")],
        ["g++", "-shared", "-fPIC", str(work / "trt11.cpp"), "-o", str(work / "libtrt11.so")],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr}"
    (work / "notalib.so").write_text("not a shared library")
    return work


def inspect(work, path, runtime=101401):
    result = subprocess.run([str(work / "loader_test"), str(path), str(runtime)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_loader_missing_file_and_directory(loader_program):
    assert "does not exist" in inspect(loader_program, loader_program / "libnone.so")[0]
    assert "is a directory" in inspect(loader_program, loader_program)[0]


def test_loader_not_a_library(loader_program):
    line = inspect(loader_program, loader_program / "notalib.so")[0]
    assert line.startswith("error cannot open plugin library") and "ldd" in line


def test_loader_library_without_entry_point(loader_program):
    assert "exports no getCreators()" in inspect(loader_program, loader_program / "libnoentry.so")[0]


def test_loader_library_for_another_major_version(loader_program):
    line = inspect(loader_program, loader_program / "libtrt11.so", runtime=101401)[0]
    assert "compiled against TensorRT 11.0.0 headers" in line and "10.14.1" in line and "Rebuild" in line
    assert inspect(loader_program, loader_program / "libtrt11.so", runtime=110200)[0] == "ok 110000"


def test_loader_accepts_the_built_plugin_library(loader_program):
    library = testing.built_library()
    lines = inspect(loader_program, library)
    assert lines[0].startswith("ok 10"), lines
    # Headers newer than the runtime are refused.
    assert "newer than the TensorRT runtime 10.8.0" in inspect(loader_program, library, runtime=100800)[0]
    assert "the major versions differ" in lines[1]


def test_examples_compile_against_the_installed_sdk(tmp_path):
    """What CI does: install plugkit, configure examples/cpp with find_package(plugkit), build.
    Without TensorRT's libraries the examples compile to object files only."""
    headers = testing.built_header_dir()
    sdk_build, prefix, examples = tmp_path / "sdk", tmp_path / "prefix", tmp_path / "examples"
    steps = [
        ("-S", ROOT, "-B", sdk_build, "-DPLUGKIT_BUILD_PLUGINS=OFF", f"-DTENSORRT_INCLUDE_DIR={headers}"),
        ("--install", sdk_build, "--prefix", prefix),
        ("-S", ROOT / "examples/cpp", "-B", examples, f"-DCMAKE_PREFIX_PATH={prefix}",
         f"-DTENSORRT_INCLUDE_DIR={headers}"),
        ("--build", examples, "--parallel", "2"),
    ]
    outputs = []
    for step in steps:
        result = subprocess.run(["cmake", *map(str, step)], capture_output=True, text=True)
        assert result.returncode == 0, f"cmake {' '.join(map(str, step))}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    assert (prefix / "include/plugkit/loader.h").exists()
    objects = sorted(p.name for p in examples.rglob("*.o"))
    if "compiling the examples to object files only" in outputs[2]:
        assert objects == ["build_engine.cpp.o", "run_engine.cpp.o"]
    else:  # a machine with TensorRT's libraries links the programs
        assert (examples / "build_engine").exists() and (examples / "run_engine").exists()
