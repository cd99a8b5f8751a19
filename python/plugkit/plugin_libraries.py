"""Plugin libraries named by path: the one place that checks the paths and
opens each library, once, through the host (dlopen + ``getCreators``, no
TensorRT). The doctor reads creators from what it returns, the engine build
and load check compiled-vs-runtime TensorRT versions on it, and only then hand
the same paths to TensorRT's registry."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import HostUnavailableError, PlugkitError
from .ops import _SOURCE_ROOT

DEFAULT_LIBRARY = "build/libplugkit_plugins.so"


def default_library_path() -> Path:
    """The plugin library commands and tests use when none is named:
    $PLUGKIT_LIBRARY, else ./build/libplugkit_plugins.so, else the source tree's."""
    if os.environ.get("PLUGKIT_LIBRARY"):
        return Path(os.environ["PLUGKIT_LIBRARY"])
    local = Path.cwd() / DEFAULT_LIBRARY
    return local if local.exists() else _SOURCE_ROOT / DEFAULT_LIBRARY


def check_library_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Each path must be an existing file; the message names the fix."""
    checked = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            hint = (" (build it first: cmake -S . -B build && cmake --build build -j)"
                    if path.name.startswith("libplugkit") else "")
            raise PlugkitError(f"plugin library {path} does not exist{hint}")
        if path.is_dir():
            raise PlugkitError(f"plugin library {path} is a directory; pass the .so file")
        checked.append(path)
    return checked


def open_libraries(paths: Iterable[str | os.PathLike]) -> list:
    """Check ``paths`` and open each library through the host: a list of
    :class:`plugkit.host.PluginLibrary` (path, tensorrt_version, creators).
    Raises :class:`HostUnavailableError` when the host extension is not built."""
    paths = check_library_paths(paths)
    if not paths:
        return []
    try:
        from . import host

        host._native()
    except (ImportError, PlugkitError) as exc:
        raise HostUnavailableError(
            f"cannot read plugin creators: the plugin host (plugkit._host) is not available "
            f"({exc}); build it with `pip install -e .`") from None
    return [host.PluginLibrary(str(p)) for p in paths]
