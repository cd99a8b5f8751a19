"""Plugin libraries named by path: the one place that checks the paths and
opens each library, once, through the host (dlopen + ``getCreators``, no
TensorRT). The doctor reads creators from what it returns, the engine build
and load check compiled-vs-runtime TensorRT versions on it, and only then hand
the same paths to TensorRT's registry.

A path is checked before anything dlopens it: dlopen maps a library's loadable
segments straight from the file, a segment that reaches past the end of a
truncated file is mapped anyway, and the first touch of it kills the process
with SIGBUS before any error can be printed. So the ELF headers must say: a
64- or 32-bit ELF of this machine's byte order and architecture, a shared
object, every PT_LOAD segment inside the file."""
from __future__ import annotations

import os
import platform
import struct
import sys
from pathlib import Path
from typing import Iterable

from .errors import HostUnavailableError, PlugkitError, PluginLibraryError
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
    """Each path must be a complete shared library for this machine; the message names the fix."""
    checked = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            hint = (" (build it first: cmake -S . -B build && cmake --build build -j)"
                    if path.name.startswith("libplugkit") else "")
            raise PlugkitError(f"plugin library {path} does not exist{hint}")
        if path.is_dir():
            raise PlugkitError(f"plugin library {path} is a directory; pass the .so file")
        checked.append(check_library_file(path))
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


_ET_DYN = 3
_PT_LOAD = 1
# e_machine of the architectures Python reports through platform.machine().
_MACHINES = {"x86_64": 62, "amd64": 62, "aarch64": 183, "arm64": 183, "ppc64le": 21, "ppc64": 21,
             "i386": 3, "i686": 3, "armv7l": 40, "s390x": 22, "riscv64": 243}
_MACHINE_NAMES = {62: "x86-64", 183: "AArch64", 21: "PowerPC64", 3: "x86", 40: "ARM", 22: "s390",
                  243: "RISC-V"}


def check_library_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it is a complete ELF shared object for this
    machine; PluginLibraryError naming what is wrong otherwise."""
    path = Path(path)
    if not path.exists():
        raise PluginLibraryError(f"plugin library {path} does not exist; build it with `python -m plugkit build`")
    if path.is_dir():
        raise PluginLibraryError(f"plugin library {path} is a directory; pass the .so file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            ident = f.read(64)
            problem = _header_problem(f, ident, size)
    except OSError as exc:
        raise PluginLibraryError(f"cannot load {path}: cannot read it ({exc.strerror or exc})") from None
    if problem:
        raise PluginLibraryError(f"cannot load {path}: {problem}")
    return path


def _header_problem(f, ident: bytes, size: int) -> str | None:
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        return "not an ELF file" + (" (it is empty)" if size == 0 else "")
    bits = {1: 32, 2: 64}.get(ident[4])
    order = {1: "<", 2: ">"}.get(ident[5])
    if bits is None or order is None:
        return "an ELF file with an invalid class or byte order"
    if bits != struct.calcsize("P") * 8:
        return f"a {bits}-bit library; this Python is {struct.calcsize('P') * 8}-bit"
    if order != ("<" if sys.byteorder == "little" else ">"):
        return "a library of the other byte order"
    header = struct.Struct(order + ("HHIQQQIHHHHHH" if bits == 64 else "HHIIIIIHHHHHH"))
    if len(ident) < 16 + header.size:
        return f"truncated ({size} bytes, shorter than an ELF header)"
    e_type, e_machine, _, _, e_phoff, _, _, _, e_phentsize, e_phnum, *_ = header.unpack_from(ident, 16)
    if e_type != _ET_DYN:
        return f"an ELF file of type {e_type}, not a shared object (type {_ET_DYN})"
    wanted = _MACHINES.get(platform.machine().lower())
    if wanted is not None and e_machine != wanted:
        return (f"built for {_MACHINE_NAMES.get(e_machine, f'machine {e_machine}')}; this machine is "
                f"{platform.machine()}")
    phdr = struct.Struct(order + ("IIQQQQQQ" if bits == 64 else "IIIIIIII"))
    if e_phnum == 0 or e_phentsize < phdr.size:
        return "it has no program headers"
    if e_phoff + e_phnum * e_phentsize > size:
        return f"truncated ({size} bytes; its program headers end at byte {e_phoff + e_phnum * e_phentsize})"
    f.seek(e_phoff)
    table = f.read(e_phnum * e_phentsize)
    for i in range(e_phnum):
        fields = phdr.unpack_from(table, i * e_phentsize)
        if bits == 64:
            p_type, _, p_offset, _, _, p_filesz, _, _ = fields
        else:
            p_type, p_offset, _, _, p_filesz, _, _, _ = fields
        if p_type == _PT_LOAD and p_offset + p_filesz > size:
            return (f"truncated ({size} bytes; a loadable segment ends at byte {p_offset + p_filesz}); "
                    f"rebuild or copy it again")
    return None
