"""The CMake side: FindTensorRT's search order and refusals, and an external
project that builds its own plugin library through find_package(plugkit)."""
import os
import subprocess
import sys
from pathlib import Path

from plugkit import testing
from plugkit.host import PluginLibrary

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).parent / "cmake" / "find_tensorrt"
CONSUMER = Path(__file__).parent / "cmake" / "consumer"

def cmake(*args, cwd=None):
    return subprocess.run(["cmake", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def probe(tmp_path, *defines, env=None):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TENSORRT_INCLUDE_DIR", "TensorRT_ROOT", "PLUGKIT_TENSORRT_HEADERS_WHEEL")}
    environment.update(env or {})
    return subprocess.run(["cmake", "-S", str(PROBE), "-B", str(tmp_path / "probe"), *defines],
                          capture_output=True, text=True, env=environment)


def fake_headers(tmp_path, major, minor, patch) -> Path:
    include = tmp_path / f"trt{major}" / "include"
    include.mkdir(parents=True)
    (include / "NvInferVersion.h").write_text(
        f"#define NV_TENSORRT_MAJOR {major}\n#define NV_TENSORRT_MINOR {minor}\n#define NV_TENSORRT_PATCH {patch}\n")
    return include


def test_explicit_include_dir_is_used_and_reported(tmp_path):
    headers = testing.built_header_dir()
    result = probe(tmp_path, f"-DTENSORRT_INCLUDE_DIR={headers}")
    assert result.returncode == 0, result.stderr
    assert "probe: version=10.14.1 source=TENSORRT_INCLUDE_DIR" in result.stdout
    assert f"TensorRT headers 10.14.1 from TENSORRT_INCLUDE_DIR: {headers}" in result.stdout


def test_environment_variable_works_like_the_cmake_variable(tmp_path):
    result = probe(tmp_path, env={"TENSORRT_INCLUDE_DIR": str(testing.built_header_dir())})
    assert result.returncode == 0, result.stderr
    assert "source=TENSORRT_INCLUDE_DIR" in result.stdout


def test_tensorrt_root_is_searched(tmp_path):
    include = fake_headers(tmp_path, 10, 3, 0)
    result = probe(tmp_path, f"-DTensorRT_ROOT={include.parent}")
    assert result.returncode == 0, result.stderr
    assert "probe: version=10.3.0 source=TensorRT_ROOT" in result.stdout


def test_headers_older_than_10_are_refused(tmp_path):
    include = fake_headers(tmp_path, 8, 6, 1)
    result = probe(tmp_path, f"-DTENSORRT_INCLUDE_DIR={include}")
    assert result.returncode != 0
    assert "are older than 10.0" in result.stderr and "8.6.1" in result.stderr


def test_missing_include_dir_is_named(tmp_path):
    result = probe(tmp_path, f"-DTENSORRT_INCLUDE_DIR={tmp_path / 'nowhere'}")
    assert result.returncode != 0
    assert "holds no NvInferVersion.h" in result.stderr


def test_header_wheel_with_another_hash_is_refused(tmp_path):
    wheel = tmp_path / "kernel_lens-2.0.1-py3-none-any.whl"
    wheel.write_bytes(b"not the pinned wheel")
    result = probe(tmp_path, f"-DPLUGKIT_TENSORRT_HEADERS_WHEEL={wheel}")
    assert result.returncode != 0
    assert "Refusing unpinned headers" in result.stderr


def pinned_header_wheel(tmp_path) -> Path:
    """The pinned kernel-lens wheel: the main build's copy, the one PLUGKIT_TENSORRT_HEADERS_WHEEL
    names, or (when the main build took its headers from elsewhere) a fresh download."""
    wheels = list(testing.library_path().parent.glob("_deps/tensorrt-headers/kernel_lens-*.whl"))
    if os.environ.get("PLUGKIT_TENSORRT_HEADERS_WHEEL"):
        wheels.append(Path(os.environ["PLUGKIT_TENSORRT_HEADERS_WHEEL"]))
    if wheels:
        return wheels[0]
    download = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "kernel-lens==2.0.1", "--dest", str(tmp_path / "wheel")],
                              capture_output=True, text=True)
    assert download.returncode == 0, f"no local kernel-lens wheel, and pip could not fetch it:\n{download.stderr}"
    return next((tmp_path / "wheel").glob("kernel_lens-*.whl"))


def test_local_header_wheel_is_unpacked_into_the_build_tree(tmp_path):
    result = probe(tmp_path, f"-DPLUGKIT_TENSORRT_HEADERS_WHEEL={pinned_header_wheel(tmp_path)}")
    assert result.returncode == 0, result.stderr
    assert "source=kernel-lens==2.0.1 wheel (pinned" in result.stdout
    assert (tmp_path / "probe/_deps/tensorrt-headers/kernel_lens/include/tensorrt/NvInfer.h").exists()


def test_external_project_builds_a_plugin_library_with_find_package(tmp_path):
    headers = testing.built_header_dir()
    sdk_build, prefix, consumer = tmp_path / "sdk", tmp_path / "prefix", tmp_path / "consumer"
    steps = [
        ("-S", ROOT, "-B", sdk_build, "-DPLUGKIT_BUILD_PLUGINS=OFF", f"-DTENSORRT_INCLUDE_DIR={headers}"),
        ("--install", sdk_build, "--prefix", prefix),
        ("-S", CONSUMER, "-B", consumer, f"-DCMAKE_PREFIX_PATH={prefix}", f"-DTENSORRT_INCLUDE_DIR={headers}",
         "-DPLUGKIT_CUDA_ARCHITECTURES=75", "-DCMAKE_BUILD_TYPE=Release"),
        ("--build", consumer, "--parallel", "2"),
    ]
    for step in steps:
        result = cmake(*step)
        assert result.returncode == 0, f"cmake {' '.join(map(str, step))}\n{result.stdout}\n{result.stderr}"
    assert (prefix / "include/plugkit/plugin.h").exists()
    assert (prefix / "lib/cmake/plugkit/plugkitConfig.cmake").exists()

    library = PluginLibrary(consumer / "libconsumer_plugins.so")
    (info,) = library.creators
    assert (info.name, info.version, info.namespace) == ("ExternalScale", "2", "consumer")
    assert [(f.name, f.type, f.is_array) for f in info.fields] == [("factor", "FLOAT32", False), ("label", "CHAR", True)]
    plugin = library.creator("ExternalScale").create({"factor": 3.0, "label": "x3"})
    assert {f.name: f.scalar for f in plugin.serialize()} == {"factor": 3.0, "label": "x3"}
    assert plugin.output_shapes([["N", 5]]) == [["N", 5]]
