"""plugkit build: configure and build the plugin library with CMake, then list and check it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import PlugkitError
from ..host import PluginLibrary
from ..library_check import describe
from ..ops import _SOURCE_ROOT
from ..triton_aot import require_triton
from ._common import print_check_report


def register(subparsers):
    p = subparsers.add_parser("build", help="build the plugin library with CMake, then list and check it")
    p.add_argument("--source", help="CMake source folder (default: . if it has CMakeLists.txt, else plugkit's)")
    p.add_argument("--build-dir", default="build", help="CMake build folder (default: build)")
    p.add_argument("--arch", default=os.environ.get("PLUGKIT_CUDA_ARCHITECTURES"),
                   help="CUDA architectures, e.g. '90' or '80-real;90' "
                        "(default: $PLUGKIT_CUDA_ARCHITECTURES, else 75;80;86;89;90 + PTX)")
    p.add_argument("--config", default="Release", help="CMake build type (default: Release)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="VAR=VALUE",
                   help="extra CMake cache entry, e.g. -D TENSORRT_INCLUDE_DIR=/opt/tensorrt/include")
    p.set_defaults(func=main)


def source_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    here = Path.cwd()
    if (here / "CMakeLists.txt").exists():
        return here
    return _SOURCE_ROOT


def main(args) -> int:
    if args.jobs < 1:
        raise PlugkitError(f"-j/--jobs {args.jobs}: give at least 1 parallel job")
    if not shutil.which("cmake"):
        raise PlugkitError("cmake is not on PATH; install it (apt-get install cmake, or pip install cmake)")
    source = source_dir(args.source)
    build = Path(args.build_dir)
    triton_kernels = sorted(source.glob("plugins/*/kernel.py"))
    if triton_kernels:
        require_triton(f"{triton_kernels[0].parent} (a Triton kernel, compiled at build time)")
    configure = ["cmake", "-S", str(source), "-B", str(build), f"-DCMAKE_BUILD_TYPE={args.config}",
                 f"-DPLUGKIT_PYTHON={sys.executable}"]
    if args.arch:
        configure.append(f"-DPLUGKIT_CUDA_ARCHITECTURES={args.arch}")
    configure += [f"-D{d}" for d in args.defines]
    if not (build / "CMakeCache.txt").exists() and shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    for cmd in (configure, ["cmake", "--build", str(build), "--parallel", str(args.jobs)]):
        print("+", " ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise PlugkitError(f"`{' '.join(cmd[:2])}` failed; see the CMake output above")
    library = build / "libplugkit_plugins.so"
    print(describe(PluginLibrary(library)))
    return print_check_report(str(library), None)
