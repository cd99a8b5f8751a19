"""Builds plugkit._host, the pybind11 plugin host, with CMake.

Everything else about the package is in pyproject.toml. The host needs
TensorRT's headers: FindTensorRT.cmake finds them (TENSORRT_INCLUDE_DIR,
TensorRT_ROOT, the system, or the pinned kernel-lens wheel; set
PLUGKIT_TENSORRT_HEADERS_WHEEL to a downloaded wheel where there is no network).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / "host"
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DPLUGKIT_BUILD_PLUGINS=OFF",
            "-DPLUGKIT_BUILD_HOST=ON",
            f"-DPLUGKIT_HOST_OUTPUT_DIR={out_dir}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", str(os.cpu_count() or 2)], check=True)


class BuildPyWithTemplates(build_py):
    """Ships templates/ (what `plugkit new` renders) inside the package as plugkit/templates, so that a
    non-editable install scaffolds too; an editable install reads the repository's templates/."""

    def run(self):
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "plugkit" / "templates"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / "templates", target)


setup(ext_modules=[CMakeExtension("plugkit._host")],
      cmdclass={"build_ext": CMakeBuild, "build_py": BuildPyWithTemplates})
