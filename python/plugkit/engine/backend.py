"""The engine backends: the one module that imports ``tensorrt`` (lazily,
in :func:`import_tensorrt`) or TensorRT-RTX (through :mod:`.rtx`) and touches
their Python API, which is the same for both; the rest of the engine package
works on what this module hands back.

Backends by name: ``"tensorrt"`` (TensorRT 10/11, ``plugkit[trt]``) and
``"rtx"`` (TensorRT-RTX, ``plugkit[rtx]``); ``None`` picks whichever is
installed, TensorRT first."""
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


BACKENDS = ("tensorrt", "rtx")
TITLES = {"tensorrt": "TensorRT", "rtx": "TensorRT-RTX"}
# What each backend's builder always does: TensorRT-RTX builds strongly typed networks only.
STRONGLY_TYPED_ONLY = {"rtx": "TensorRT-RTX builds strongly typed networks only (it has no FP16/BF16 "
                              "builder flags)"}


def import_backend(name: str | None = None):
    """The Python module of backend ``name`` (``tensorrt`` or ``rtx``; None: the first installed),
    or a :class:`TensorRTMissingError` that says what to install."""
    return import_named_backend(resolve_backend(name))


def import_named_backend(name: str):
    if name == "tensorrt":
        return import_tensorrt()
    from .rtx import import_tensorrt_rtx

    return import_tensorrt_rtx()


def resolve_backend(name: str | None = None) -> str:
    """``name`` checked, or the first installed backend (TensorRT, then TensorRT-RTX)."""
    if name is not None:
        if name not in BACKENDS:
            raise EngineError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
        return name
    reasons = []
    for candidate in BACKENDS:
        try:
            import_named_backend(candidate)
        except TensorRTMissingError as exc:
            reasons.append(str(exc))
            continue
        return candidate
    raise TensorRTMissingError("neither TensorRT nor TensorRT-RTX is installed. " + " ".join(reasons))


def backend_of(trt) -> str:
    """The backend name of an imported bindings module."""
    return "rtx" if "rtx" in trt.__name__ else "tensorrt"


def use_polygraphy(backend: str) -> None:
    """Point Polygraphy's TensorRT loaders and runner at ``backend``. Polygraphy reads its mode
    (``POLYGRAPHY_USE_TENSORRT_RTX``) once, when its TensorRT backend is first imported, so one
    process uses Polygraphy with one of the two: the other is refused with a message."""
    wanted = backend == "rtx"
    config = sys.modules.get("polygraphy.config")
    if "polygraphy.backend.trt" in sys.modules and config is not None and config.USE_TENSORRT_RTX != wanted:
        used, asked = TITLES["rtx" if config.USE_TENSORRT_RTX else "tensorrt"], TITLES[backend]
        raise EngineError(
            f"this process already used Polygraphy with {used}; Polygraphy serves one of TensorRT and "
            f"TensorRT-RTX per process (it reads POLYGRAPHY_USE_TENSORRT_RTX once), so {asked} needs a "
            f"process of its own (e.g. `python -m plugkit engine ... --backend {backend}`)")
    os.environ["POLYGRAPHY_USE_TENSORRT_RTX"] = "1" if wanted else "0"
    if config is not None:
        config.USE_TENSORRT_RTX = wanted


_LOADED_LIBRARIES: dict[tuple[str, str], Any] = {}  # (bindings, realpath) -> registry handle, per process


def load_plugins_into_tensorrt(trt, paths: Iterable[str | os.PathLike]) -> list[str]:
    """Register the creators of each plugin library with the backend's plugin
    registry (``IPluginRegistry.load_library``, which calls the library's
    exported ``getCreators``). ``paths`` were checked by
    :func:`plugkit.plugin_libraries.check_library_paths`; a library is loaded
    into the registry once per process."""
    loaded = []
    registry = trt.get_plugin_registry()
    for path in paths:
        key = (trt.__name__, os.path.realpath(path))
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


def describe_network_tensors(trt, network, ranges: dict[str, ShapeRange]) -> list[TensorInfo]:
    """Inputs and outputs of a parsed network, for a build record where the engine cannot be
    deserialized (TensorRT-RTX without a GPU it supports)."""
    tensors = []
    for tensor, is_input in [(network.get_input(i), True) for i in range(network.num_inputs)] + \
            [(network.get_output(i), False) for i in range(network.num_outputs)]:
        shape = tuple(int(d) for d in tensor.shape)
        profile = ranges.get(tensor.name) if is_input else None
        tensors.append(TensorInfo(tensor.name, dtype_name(tensor.dtype), shape, is_input, profile))
    return tensors


def plugin_layers(trt, network) -> list[dict]:
    """The network's plugin layers: name and the plugin (name/version/namespace) the parser made."""
    layers = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type != getattr(trt.LayerType, "PLUGIN_V3", None):
            continue
        layer.__class__ = trt.IPluginV3Layer  # the bindings hand out the ILayer base class
        core = layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
        layers.append({"name": layer.name,
                       "plugin": f"{core.plugin_name}/{core.plugin_version}/{core.plugin_namespace}"})
    return layers


def parse_onnx(trt, onnx_path, plugins: Iterable[str] = ()) -> tuple[list[str], list[dict]]:
    """Parse a model with the backend's ONNX parser (no build): its errors, and the plugin layers
    it made. The plugin libraries are loaded first, as for a build."""
    load_plugins_into_tensorrt(trt, plugins)
    logger = capturing_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
    if not ok and not errors:
        errors = logger.errors or ["the parser failed without saying why"]
    return errors, plugin_layers(trt, network)


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

