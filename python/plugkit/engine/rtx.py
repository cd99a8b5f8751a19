"""TensorRT-RTX, the second backend: importing its Python bindings so that
its ONNX parser can import plugin nodes, and Polygraphy's TensorRT-RTX mode.

The cu13 wheels ship ``libtensorrt_rtx.so.1`` and
``libtensorrt_onnxparser_rtx.so.1`` (``tensorrt-rtx-cu13-libs``) and the
module ``tensorrt_rtx_bindings``. For a plugin node, the parser ``dlopen``\\ s
the unversioned ``libtensorrt_rtx.so``, which the wheel does not ship; the
failed ``dlopen`` ends the process (``std::terminate``, exit 134). Both
libraries look next to themselves first (RPATH ``$ORIGIN``, the directory of
the path they were loaded from, symlinks not resolved), so plugkit loads them
from a directory of its own that holds symlinks to them plus
``libtensorrt_rtx.so -> libtensorrt_rtx.so.1``, before the bindings import
them. Where the bindings were imported first, :func:`import_tensorrt_rtx`
checks that the parser finds the unversioned name, and otherwise says how to
fix it instead of letting a build abort.

Polygraphy 0.53.6 serves TensorRT-RTX when ``POLYGRAPHY_USE_TENSORRT_RTX=1``
and imports it as ``tensorrt_rtx``; the cu13 bindings are
``tensorrt_rtx_bindings``, so the module is also registered under the name
Polygraphy imports (:func:`plugkit.engine.backend.use_polygraphy` sets the mode).
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from ..errors import EngineError, TensorRTMissingError

BINDINGS = ("tensorrt_rtx_bindings", "tensorrt_rtx")  # the cu13 wheel's name, then the plain one
LIBRARIES = ("libtensorrt_rtx.so.1", "libtensorrt_onnxparser_rtx.so.1")
UNVERSIONED = "libtensorrt_rtx.so"  # what the parser dlopens for a plugin node
INSTALL_HINT = ("pip install 'plugkit[rtx]' (tensorrt-rtx-cu13-libs and tensorrt-rtx-cu13-bindings; "
                "`plugkit doctor` works without it)")

_RTLD_DI_ORIGIN = 6  # <dlfcn.h>


def _libraries_dir() -> Path | None:
    """The directory of the wheel's libraries (``tensorrt_rtx_libs``), found without importing it
    (its ``__init__`` loads them from there, which is what must not happen first)."""
    try:
        spec = importlib.util.find_spec("tensorrt_rtx_libs")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent
    return folder if all((folder / name).is_file() for name in LIBRARIES) else None


def _private_dir(libraries: Path) -> Path:
    """A directory plugkit owns with symlinks to the wheel's libraries and the unversioned name,
    one per installed wheel (keyed by its path), in the user's cache."""
    key = hashlib.sha256(str(libraries.resolve()).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plugkit" / "tensorrt_rtx"
    links = {name: libraries / name for name in LIBRARIES}
    links[UNVERSIONED] = libraries / LIBRARIES[0]
    for folder in (base / key, None):
        try:
            if folder is None:  # no writable cache: a directory for this process
                folder = Path(tempfile.mkdtemp(prefix="plugkit-tensorrt-rtx-"))
            folder.mkdir(parents=True, exist_ok=True)
            for name, target in links.items():
                link = folder / name
                if link.is_symlink() and os.readlink(link) == str(target):
                    continue
                tmp = folder / f".{name}.{os.getpid()}"
                if tmp.is_symlink():
                    tmp.unlink()
                tmp.symlink_to(target)
                os.replace(tmp, link)  # atomic: another process may be doing the same
            return folder
        except OSError:
            continue
    raise EngineError(f"could not create a directory for TensorRT-RTX's library links (tried {base} and "
                      f"{tempfile.gettempdir()}); set XDG_CACHE_HOME to a writable directory")


def _loaded_origin(soname: str) -> Path | None:
    """$ORIGIN of an already loaded library (the directory it was loaded from), or None."""
    try:
        handle = ctypes.CDLL(soname, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return None
    libc = ctypes.CDLL(None)
    buffer = ctypes.create_string_buffer(4096)
    if libc.dlinfo(ctypes.c_void_p(handle._handle), _RTLD_DI_ORIGIN, buffer) != 0:
        return None
    return Path(buffer.value.decode())


def _prepare_libraries() -> None:
    """Load the wheel's libraries through plugkit's symlink directory, unless they are loaded; if
    they are, check that the parser's own directory has the unversioned name."""
    loaded = _loaded_origin(LIBRARIES[1])
    if loaded is not None:
        if not (loaded / UNVERSIONED).exists():
            raise EngineError(
                f"TensorRT-RTX's libraries were loaded (by `import tensorrt_rtx_bindings`?) before plugkit "
                f"could prepare them, from {loaded}, which has no {UNVERSIONED}: its ONNX parser opens that "
                f"name for every plugin node and the process would abort. Let plugkit import TensorRT-RTX "
                f"(plugkit.engine.import_backend('rtx') before anything else imports it), or add the "
                f"link: ln -s {LIBRARIES[0]} {loaded / UNVERSIONED}")
        return
    libraries = _libraries_dir()
    if libraries is None:
        return  # no wheel layout: the bindings' import says what is missing
    folder = _private_dir(libraries)
    for name in LIBRARIES:  # the runtime first: the parser needs it
        ctypes.CDLL(str(folder / name), mode=os.RTLD_GLOBAL)


def import_tensorrt_rtx():
    """The TensorRT-RTX bindings module, ready for plugin nodes, or a
    :class:`TensorRTMissingError` that says what to install."""
    for name in BINDINGS:
        if name in sys.modules and hasattr(sys.modules[name], "Builder"):
            module = sys.modules[name]
            break
    else:
        _prepare_libraries()
        module, errors = None, []
        for name in BINDINGS:
            try:
                module = __import__(name)
                break
            except Exception as exc:  # a broken wheel raises more than ImportError
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        if module is None:
            raise TensorRTMissingError(f"TensorRT-RTX's Python bindings are not available "
                                       f"({'; '.join(errors)}): {INSTALL_HINT}")
    if not hasattr(module, "Builder") or not hasattr(module, "__version__"):
        raise TensorRTMissingError(f"the installed TensorRT-RTX bindings ({module.__name__}) lack the "
                                   f"builder: {INSTALL_HINT}")
    _prepare_libraries()  # where the bindings were imported before plugkit: is the parser safe?
    sys.modules.setdefault("tensorrt_rtx", module)  # the name Polygraphy's RTX mode imports
    return module


# --- targets ------------------------------------------------------------------

# What TensorRT-RTX 1.7 builds for and runs on (ComputeCapability.SM80 ... SM121); SM75 is in the
# enum too, but the runtime refuses Turing.
SUPPORTED_CAPABILITIES = ("8.0", "8.6", "8.9", "12.0", "12.1")


def compute_capability_targets(trt, capabilities) -> list:
    """``["8.9", "12.0"]`` -> ``[ComputeCapability.SM89, ComputeCapability.SM120]``; a target this
    TensorRT-RTX does not know is refused with the ones it does."""
    known = sorted((name[2:] for name in dir(trt.ComputeCapability) if name.startswith("SM")), key=int)
    readable = [f"{k[:-1]}.{k[-1]}" for k in known]
    readable = [c for c in readable if c in SUPPORTED_CAPABILITIES] or readable
    targets = []
    for capability in capabilities:
        text = str(capability).strip()
        member = "SM" + text.replace(".", "")
        if "." not in text or not hasattr(trt.ComputeCapability, member) or text not in readable:
            raise EngineError(
                f"--compute-capability {text}: TensorRT-RTX {trt.__version__} builds for compute "
                f"capability {', '.join(readable)} (RTX and Ampere-or-newer GPUs, e.g. 8.9 for "
                f"RTX 40xx, 12.0 for RTX 50xx); for other GPUs use --backend tensorrt")
        targets.append(getattr(trt.ComputeCapability, member))
    return targets


def check_gpu_supported(device_name: str | None, capability: str | None) -> None:
    """Before deserializing: TensorRT-RTX runs only on the GPUs it supports."""
    if capability is not None and capability not in SUPPORTED_CAPABILITIES:
        raise EngineError(
            f"TensorRT-RTX does not support this GPU ({device_name or 'unknown'}, compute capability "
            f"{capability}): its runtime runs on compute capability {', '.join(SUPPORTED_CAPABILITIES)} "
            f"(RTX and other Ampere, Ada and Blackwell GPUs). Run the engine on such a GPU, or build "
            f"and run with --backend tensorrt here")
