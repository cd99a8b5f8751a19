"""The TensorRT backend: the one module that imports ``tensorrt`` (lazily,
in :func:`import_tensorrt`) and touches its Python API; the rest of the
engine package works on what this module hands back. A second backend
(TensorRT-RTX) enters here."""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from ..errors import EngineError, TensorRTMissingError
from ..shapes import ShapeRange
from .progress import BuildProgress
from ..tensors import dtype_name
from .record import TensorInfo


def import_tensorrt():
    """``import tensorrt``, or a :class:`TensorRTMissingError` that says what to do."""
    try:
        import tensorrt as trt
    except Exception as exc:  # the PyPI stubs raise various errors
        raise TensorRTMissingError(
            f"TensorRT's Python package is not available ({type(exc).__name__}: {exc}). Building "
            f"and running engines needs it on a machine with an NVIDIA GPU: pip install "
            f"'plugkit[trt]' (`plugkit doctor` works without it)") from None
    if not hasattr(trt, "Builder") or not hasattr(trt, "__version__"):
        raise TensorRTMissingError(
            "the installed `tensorrt` package is a placeholder without the TensorRT libraries; "
            "install a real TensorRT wheel for your CUDA version (pip install 'plugkit[trt]')")
    return trt


_LOADED_LIBRARIES: dict[str, Any] = {}  # realpath -> registry handle, per process


def load_plugins_into_tensorrt(trt, paths: Iterable[str | os.PathLike]) -> list[str]:
    """Register the creators of each plugin library with TensorRT's plugin
    registry (``IPluginRegistry.load_library``, which calls the library's
    exported ``getCreators``). ``paths`` were checked by
    :func:`plugkit.plugin_libraries.check_library_paths`; a library is loaded
    into the registry once per process."""
    loaded = []
    registry = trt.get_plugin_registry()
    for path in paths:
        key = os.path.realpath(path)
        if key not in _LOADED_LIBRARIES:
            try:
                handle = registry.load_library(str(path))
            except Exception as exc:
                handle, error = None, f"{type(exc).__name__}: {exc}"
            else:
                error = "it returned no handle"
            if not handle:
                raise EngineError(
                    f"TensorRT could not load plugin library {path} ({error}). Common causes: the "
                    f"library does not export getCreators (build it with plugkit_add_plugin_library), "
                    f"it was built against other TensorRT headers, one of its dependencies is not "
                    f"on LD_LIBRARY_PATH (check with `ldd {path}`), or a plugin with the same name, "
                    f"version and namespace is already registered by another library")
            _LOADED_LIBRARIES[key] = handle
        loaded.append(str(path))
    return loaded


def capturing_logger(trt, verbose: bool = False):
    """A trt.ILogger that keeps errors (to explain failures) and prints warnings."""

    class CapturingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(msg)
            if severity <= trt.ILogger.Severity.WARNING or verbose:
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return CapturingLogger()


def describe_engine_tensors(trt, engine) -> list[TensorInfo]:
    """Inputs and outputs of a deserialized ICudaEngine (TensorRT 10 names API)."""
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input and any(d < 0 for d in shape) and engine.num_optimization_profiles > 0:
            lo, mid, hi = engine.get_tensor_profile_shape(name, 0)
            profile = ShapeRange(name, tuple(lo), tuple(mid), tuple(hi))
        tensors.append(TensorInfo(name, dtype_name(engine.get_tensor_dtype(name)), shape, is_input,
                                  profile))
    return tensors


def progress_monitor(trt, progress: BuildProgress):
    """A trt.IProgressMonitor that forwards to ``progress`` (None where this
    TensorRT has no progress monitor)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):
        def __init__(self):
            base.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            progress.phase_finish(phase_name)

    return Monitor()


def polygraphy_quiet(verbose: bool):
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.VERBOSE if verbose else G_LOGGER.WARNING

