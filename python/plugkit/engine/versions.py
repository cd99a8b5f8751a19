"""TensorRT versions: parsing them, and the rule for which plugin library
(compiled against some TensorRT headers) works with which runtime."""
from __future__ import annotations

from typing import Callable, Sequence

from ..errors import EngineMismatchError


def parse_version(version: str | int) -> tuple[int, ...]:
    """``"10.14.1.48"`` -> (10, 14, 1, 48); an int as getInferLibVersion() returns
    it (``101401``) -> (10, 14, 1)."""
    if isinstance(version, int):
        return (version // 10000, version // 100 % 100, version % 100)
    parts = []
    for part in str(version).strip().split("."):
        digits = ""
        for ch in part:  # leading digits only: "0rc1" -> 0
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) < len(part):
            break
    if not parts:
        raise ValueError(f"not a version: {version!r}")
    return tuple(parts)


def check_plugin_library_version(library: str, compiled: str | None, runtime: str) -> str | None:
    """The compiled-against headers of a plugin library vs. the TensorRT runtime.

    Same rule as ``plugkit::loadPlugins`` in C++: the major versions must be
    equal, and the headers must not be newer (major.minor) than the runtime
    (the library may call interfaces the older runtime lacks). Older headers of
    the same major version work and return a note. ``compiled=None`` (unknown)
    passes."""
    if not compiled:
        return None
    built, have = parse_version(compiled), parse_version(runtime)
    if built[0] != have[0]:
        raise EngineMismatchError(
            f"plugin library {library} was compiled against TensorRT {compiled} headers, but the "
            f"TensorRT runtime here is {runtime}: a plugin library works only with the TensorRT "
            f"major version it was compiled for. Rebuild it against TensorRT {have[0]}.x headers "
            f"(cmake -DTensorRT_ROOT=<TensorRT {runtime}> -S . -B build)")
    if built[:2] > have[:2]:
        raise EngineMismatchError(
            f"plugin library {library} was compiled against TensorRT {compiled} headers, newer than "
            f"the TensorRT runtime here ({runtime}); it may call what this runtime lacks. Upgrade "
            f"TensorRT to {built[0]}.{built[1]} or newer, or rebuild the library against {runtime} "
            f"headers")
    if built[:2] < have[:2]:
        return (f"plugin library {library} was compiled against TensorRT {compiled} headers; the "
                f"runtime is {runtime} (newer, compatible)")
    return None



# TensorRT-RTX has versions of its own (1.x) and the plugin interfaces of TensorRT 10: it loads
# plugin libraries compiled against TensorRT 10 headers.
RTX_PLUGIN_HEADERS_MAJOR = 10


def check_library_versions(runtime_version: str, libraries: Sequence, log: Callable[[str], None],
                           backend: str = "tensorrt") -> None:
    """:func:`check_plugin_library_version` for each library already opened by
    :func:`plugkit.plugin_libraries.open_libraries`; notes go to ``log``. For TensorRT-RTX the
    headers must be TensorRT 10's."""
    if backend == "rtx":
        for library in libraries:
            compiled = library.tensorrt_version
            if compiled and parse_version(compiled)[0] != RTX_PLUGIN_HEADERS_MAJOR:
                raise EngineMismatchError(
                    f"plugin library {library.path} was compiled against TensorRT {compiled} headers; "
                    f"TensorRT-RTX {runtime_version} loads plugin libraries built against TensorRT "
                    f"{RTX_PLUGIN_HEADERS_MAJOR}.x headers. Rebuild it with them (the default header "
                    f"set, cmake/FindTensorRT.cmake) or use --backend tensorrt")
        return
    for library in libraries:
        note = check_plugin_library_version(str(library.path), library.tensorrt_version, runtime_version)
        if note:
            log(f"note: {note}")
