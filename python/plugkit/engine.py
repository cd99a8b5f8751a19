"""Build, save, load and run TensorRT engines that use plugkit plugins.

    from plugkit import engine
    result = engine.build("model.plugged.onnx", "model.engine",
                          plugins=["build/libplugkit_plugins.so"], fp16=True,
                          shapes=["input:1x3x32x64,1x3x32x448,1x3x32x1024"])
    trt_engine = engine.load("model.engine", plugins=["build/libplugkit_plugins.so"])
    outputs = trt_engine.run({"input": x})          # torch CUDA tensors in and out

Builds go through Polygraphy's TensorRT loaders (NetworkFromOnnxPath,
CreateConfig, EngineBytesFromNetwork), runs through its TrtRunner. TensorRT,
Polygraphy and torch are imported when a function needs them, never when this
module is imported; everything that can be checked without them (files,
options, shapes, input feeds, engine metadata) is checked first, so mistakes
surface as clear messages before a minutes-long build or a cryptic TensorRT log.

Next to each engine, ``build`` writes ``<engine>.json``: the TensorRT version
and GPU it was built with, its inputs/outputs and profile ranges, its plugins
and its precision. ``load`` reads it to tell "built by another TensorRT" or
"built for another GPU" or "needs plugin library X" before deserializing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import __version__
from .errors import PlugkitError
from .shapes import (ShapeRange, check_ranges_against_model, check_shape_in_range,
                     format_shape, onnx_input_dims, parse_shape_specs)


class EngineError(PlugkitError):
    """Building, loading or running an engine failed for a reason a user can fix."""


class TensorRTMissingError(EngineError, ImportError):
    """The tensorrt package is not installed (or is a stub)."""


class EngineFileError(EngineError):
    """An engine file that is missing, empty, truncated or not an engine."""


class EngineMismatchError(EngineError):
    """An engine built by another TensorRT version or for another GPU."""


class InputError(EngineError, ValueError):
    """Inputs that do not fit the engine: names, dtypes or shapes."""


# --- TensorRT, lazily --------------------------------------------------------

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


_LOADED_LIBRARIES: dict[str, Any] = {}  # realpath -> registry handle, per process


def load_plugins_into_tensorrt(trt, paths: Iterable[str | os.PathLike]) -> list[str]:
    """Register the creators of each plugin library with TensorRT's plugin
    registry (``IPluginRegistry.load_library``, which calls the library's
    exported ``getCreators``). A library is loaded once per process."""
    from .doctor import check_library_paths

    loaded = []
    registry = trt.get_plugin_registry()
    for path in check_library_paths(paths):
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


def _library_versions(paths: Sequence[str]) -> dict[str, str | None]:
    """Compiled-against TensorRT version of each library, through the host
    (no TensorRT needed); {} when the host is unavailable."""
    try:
        from .host import PluginLibrary
    except ImportError:
        return {}
    versions = {}
    for path in paths:
        try:
            versions[str(path)] = PluginLibrary(str(path)).tensorrt_version
        except PlugkitError:
            raise
        except Exception:  # a host problem must not block TensorRT's own loading
            versions[str(path)] = None
    return versions


def _check_library_versions(trt, paths: Sequence[str], log: Callable[[str], None]) -> None:
    for path, compiled in _library_versions(paths).items():
        note = check_plugin_library_version(path, compiled, trt.__version__)
        if note:
            log(f"note: {note}")


# --- files -------------------------------------------------------------------

MIN_ENGINE_BYTES = 64


def check_engine_file(path: str | os.PathLike) -> Path:
    """Sanity checks on an engine file before TensorRT reads it: exists, is a
    file, is not empty or tiny, and is not an ONNX model, zip/PyTorch
    checkpoint, NumPy array or text file."""
    path = Path(path)
    if not path.exists():
        raise EngineFileError(f"engine file {path} does not exist; build it with "
                              f"`plugkit engine MODEL.onnx --plugins LIB -o {path}`")
    if path.is_dir():
        raise EngineFileError(f"{path} is a directory, not an engine file")
    size = path.stat().st_size
    if size == 0:
        raise EngineFileError(f"engine file {path} is empty (an interrupted build or copy?); "
                              f"rebuild it")
    with open(path, "rb") as f:
        head = f.read(512)
    kind = _sniff(head, path)
    if kind:
        raise EngineFileError(f"{path} is {kind}, not a TensorRT engine")
    if size < MIN_ENGINE_BYTES:
        raise EngineFileError(f"engine file {path} has only {size} bytes: it is truncated or not an "
                              f"engine; rebuild it")
    return path


def _sniff(head: bytes, path: Path) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch checkpoint?)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array file"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] in range(2, 6):
        return "a Python pickle"
    if head[:1] == b"\x08" and _is_onnx(path):
        return (f"an ONNX model; build an engine from it with `plugkit engine {path} --plugins LIB "
                f"-o {path.with_suffix('.engine')}`")
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file"
    return None


def _is_onnx(path: Path) -> bool:
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return len(model.graph.node) > 0 or len(model.graph.input) > 0


def _atomic_write(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


# --- tensor descriptions and metadata -----------------------------------------

# TensorRT DataType member names -> numpy/torch dtype names.
TRT_DTYPES = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8_e4m3fn",
}


def dtype_name(dtype) -> str:
    """A numpy, torch or TensorRT dtype (or name) as a plain name ("float16")."""
    name = getattr(dtype, "name", None)
    if name in TRT_DTYPES:  # tensorrt.DataType
        return TRT_DTYPES[name]
    text = str(dtype).replace("torch.", "")
    return {"half": "float16", "float": "float32", "double": "float64", "bool_": "bool",
            "long": "int64", "int": "int32"}.get(text, text)


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """An engine input or output. ``shape`` has -1 for dynamic dimensions;
    ``profile`` is the optimization-profile range of a dynamic input."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    is_input: bool
    profile: ShapeRange | None = None

    def describe(self) -> str:
        shape = "x".join("?" if d < 0 else str(d) for d in self.shape) or "scalar"
        text = f"{self.name}: {self.dtype} {shape}"
        if self.profile is not None and not self.profile.is_fixed:
            text += (f" (profile {format_shape(self.profile.min)} .. {format_shape(self.profile.opt)}"
                     f" .. {format_shape(self.profile.max)})")
        return text

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "is_input": self.is_input,
                "profile": self.profile.to_dict() if self.profile else None}

    @classmethod
    def from_dict(cls, data: Mapping) -> "TensorInfo":
        profile = ShapeRange.from_dict(data["profile"]) if data.get("profile") else None
        return cls(data["name"], data["dtype"], tuple(data["shape"]), bool(data["is_input"]), profile)


class _TensorsByRole:
    """``inputs`` and ``outputs`` of a class with a ``tensors`` list of TensorInfo."""

    tensors: list[TensorInfo]

    @property
    def inputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors if t.is_input]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors if not t.is_input]


@dataclasses.dataclass
class EngineMetadata(_TensorsByRole):
    """What ``<engine>.json`` records about a build."""

    tensorrt_version: str
    plugkit_version: str = __version__
    device_name: str | None = None
    compute_capability: str | None = None
    version_compatible: bool = False
    plugins_serialized: bool = False
    plugins: list[str] = dataclasses.field(default_factory=list)
    plugin_ops: list[str] = dataclasses.field(default_factory=list)  # "RMSNorm/1/plugkit"
    precision: str = "float32"  # what the engine computes in: float32, float16, bfloat16
    builder_flags: list[str] = dataclasses.field(default_factory=list)
    strongly_typed: bool = False
    tensors: list[TensorInfo] = dataclasses.field(default_factory=list)
    onnx: str | None = None
    engine_bytes: int | None = None
    sha256: str | None = None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["tensors"] = [t.to_dict() for t in self.tensors]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "EngineMetadata":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["tensors"] = [TensorInfo.from_dict(t) for t in data.get("tensors", [])]
        return cls(**data)


def metadata_path(engine_path: str | os.PathLike) -> Path:
    return Path(f"{engine_path}.json")


def read_metadata(engine_path: str | os.PathLike) -> EngineMetadata | None:
    path = metadata_path(engine_path)
    if not path.is_file():
        return None
    try:
        return EngineMetadata.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineFileError(f"{path} (the engine's build record) is unreadable: {exc}; delete it "
                              f"to load the engine without it") from None


def check_engine_against_metadata(path: Path, meta: EngineMetadata, *, verify_hash: bool = True) -> None:
    """The engine file must be the one the build wrote: same size, same hash."""
    size = path.stat().st_size
    if meta.engine_bytes is not None and size != meta.engine_bytes:
        raise EngineFileError(
            f"engine file {path} has {size} bytes but its build wrote {meta.engine_bytes}: it is "
            f"{'truncated' if size < meta.engine_bytes else 'modified'}; rebuild it or copy it again")
    if verify_hash and meta.sha256 and _sha256(path) != meta.sha256:
        raise EngineFileError(f"engine file {path} changed since it was built (its SHA-256 differs "
                              f"from {metadata_path(path).name}): it is corrupt; rebuild it")


def check_metadata_compatible(meta: EngineMetadata, runtime_version: str,
                              compute_capability: str | None = None,
                              device_name: str | None = None) -> list[str]:
    """Can this TensorRT and GPU load the engine ``meta`` describes? Raises
    :class:`EngineMismatchError` when not; returns warnings."""
    warnings = []
    built, have = parse_version(meta.tensorrt_version), parse_version(runtime_version)
    if meta.version_compatible:
        if have[:2] < built[:2]:
            raise EngineMismatchError(
                f"the engine is version compatible but was built with TensorRT {meta.tensorrt_version}; "
                f"this TensorRT ({runtime_version}) is older. Load it with TensorRT "
                f"{meta.tensorrt_version} or newer, or rebuild it here")
    elif built[:3] != have[:3]:
        raise EngineMismatchError(
            f"the engine was built with TensorRT {meta.tensorrt_version} but this is TensorRT "
            f"{runtime_version}: an engine loads only with the TensorRT version that built it. "
            f"Rebuild it here with `plugkit engine {meta.onnx or 'MODEL.onnx'} ...`, or build it with "
            f"--version-compatible")
    if meta.compute_capability and compute_capability and meta.compute_capability != compute_capability:
        raise EngineMismatchError(
            f"the engine was built for a GPU of compute capability {meta.compute_capability} "
            f"({meta.device_name or 'unknown'}); this GPU ({device_name or 'unknown'}) has "
            f"{compute_capability}. An engine holds kernels for the GPU it was built on: rebuild "
            f"it on this GPU")
    if meta.device_name and device_name and meta.device_name != device_name:
        warnings.append(f"the engine was built on {meta.device_name}, this GPU is {device_name} "
                        f"(same compute capability): it runs, but may be slower than an engine "
                        f"built here")
    return warnings


def explain_load_failure(messages: Sequence[str], *, path: str, plugins: Sequence[str],
                         meta: EngineMetadata | None = None) -> str:
    """Turn TensorRT's deserialization errors into a message that names the cause."""
    text = "\n".join(messages)
    lowered = text.lower()
    if any(k in lowered for k in ("plugin", "creator")):
        given = ", ".join(plugins) or "none"
        needed = f" (the engine uses {', '.join(meta.plugin_ops)})" if meta and meta.plugin_ops else ""
        cause = (f"a plugin the engine uses is not registered{needed}; plugin libraries given: "
                 f"{given}. Pass the library that provides it with --plugins, or build the engine "
                 f"with --version-compatible --serialize-plugins")
    elif any(k in lowered for k in ("version tag", "serialization version", "not compatible with this "
                                    "version", "expecting library version", "older version",
                                    "newer version")):
        cause = ("the engine was built by another TensorRT version; rebuild it with this one "
                 "(or build with --version-compatible)")
    elif any(k in lowered for k in ("compute capability", "incompatible device", "different "
                                    "models of devices", "platform")):
        cause = "the engine was built for another GPU; rebuild it on this GPU"
    elif any(k in lowered for k in ("magic tag", "magictag", "corrupt", "size", "truncat",
                                    "insufficient")):
        cause = "the file is corrupt, truncated or not a TensorRT engine; rebuild it"
    else:
        cause = ("possible causes: the engine was built by another TensorRT version or for "
                 "another GPU, a plugin library is missing (--plugins), or the file is corrupt")
    detail = "\nTensorRT said:\n  " + "\n  ".join(messages) if messages else ""
    return f"TensorRT could not load engine {path}: {cause}{detail}"


def _device() -> tuple[str | None, str | None]:
    """(name, compute capability "8.9") of the current CUDA device, if torch can tell."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return torch.cuda.get_device_name(), f"{major}.{minor}"
    except Exception:
        pass
    return None, None


# --- build options -----------------------------------------------------------

@dataclasses.dataclass
class BuildOptions:
    onnx_path: Path
    output: Path
    plugins: list[str]
    fp16: bool = False
    bf16: bool = False
    strongly_typed: bool = False
    shapes: dict[str, ShapeRange] = dataclasses.field(default_factory=dict)
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    version_compatible: bool = False
    serialize_plugins: bool = False
    force: bool = False


def default_engine_path(onnx_path: str | os.PathLike) -> Path:
    """``model.plugged.onnx`` -> ``model.plugged.engine``."""
    return Path(onnx_path).with_suffix(".engine")


def validate_build_options(onnx_path, output=None, *, plugins=(), fp16=False, bf16=False,
                           strongly_typed=False, shapes=None, workspace_mib=None, timing_cache=None,
                           version_compatible=False, serialize_plugins=False,
                           force=False) -> BuildOptions:
    """Everything about a build request that can be checked without TensorRT."""
    from .doctor import check_library_paths

    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        raise EngineError(f"ONNX model {onnx_path} does not exist")
    if onnx_path.is_dir():
        raise EngineError(f"{onnx_path} is a directory; pass the .onnx file")
    output = Path(output) if output else default_engine_path(onnx_path)
    if output.resolve() == onnx_path.resolve():
        raise EngineError(f"the engine would overwrite the model {onnx_path}; choose another -o path")
    if output.is_dir():
        raise EngineError(f"output {output} is a directory; pass a file name such as "
                          f"{output / default_engine_path(onnx_path).name}")
    if output.exists() and not force:
        raise EngineError(f"{output} already exists; pass --force to overwrite it")
    if not output.parent.exists():
        raise EngineError(f"the directory of {output} does not exist; create {output.parent} first")
    plugins = [str(p) for p in check_library_paths(plugins)]
    if serialize_plugins and not version_compatible:
        raise EngineError("--serialize-plugins needs --version-compatible: TensorRT serializes plugin "
                          "libraries only into version-compatible engines")
    if serialize_plugins and not plugins:
        raise EngineError("--serialize-plugins has nothing to serialize: pass --plugins LIB")
    if workspace_mib is not None and workspace_mib <= 0:
        raise EngineError(f"--workspace must be a positive number of MiB; got {workspace_mib}")
    if timing_cache is not None:
        timing_cache = Path(timing_cache)
        if timing_cache.is_dir():
            raise EngineError(f"--timing-cache {timing_cache} is a directory; pass a file path")
        if not timing_cache.parent.exists():
            raise EngineError(f"the directory of --timing-cache {timing_cache} does not exist")
    if isinstance(shapes, Mapping):
        ranges = dict(shapes)
    else:
        ranges = parse_shape_specs([shapes] if isinstance(shapes, str) else shapes)
    return BuildOptions(onnx_path, output, plugins, fp16, bf16, strongly_typed, ranges,
                        workspace_mib, timing_cache, version_compatible, serialize_plugins, force)


# --- progress ----------------------------------------------------------------

class BuildProgress:
    """Renders TensorRT's build phases (IProgressMonitor calls) as one status
    line: elapsed time, then each open phase with its step count. On a
    terminal the line is redrawn in place; elsewhere a line is printed at most
    every ``interval`` seconds. Thread safe (TensorRT calls from its threads)."""

    def __init__(self, stream=None, interval: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.phases: dict[str, list] = {}  # name -> [parent, steps, done]
        self.order: list[str] = []
        self._last = -1e9
        self._lock = threading.Lock()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.cancelled = False

    def status(self) -> str:
        parts = []
        for name in self.order:
            _, steps, done = self.phases[name]
            parts.append(f"{name} {done}/{steps}" if steps > 1 else name)
        return f"[{self.clock() - self.start:7.1f}s] " + (" > ".join(parts) or "building")

    def _render(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < (0.1 if self._tty else self.interval):
            return
        self._last = now
        line = self.status()
        if self._tty:
            self.stream.write("\r\033[K" + line[:160])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            self.phases[phase_name] = [parent_phase, max(int(num_steps), 1), 0]
            if phase_name not in self.order:
                self.order.append(phase_name)
            self._render(force=parent_phase is None)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            if phase_name in self.phases:
                self.phases[phase_name][2] = int(step) + 1
            self._render()
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            self.phases.pop(phase_name, None)
            if phase_name in self.order:
                self.order.remove(phase_name)

    def heartbeat(self) -> None:
        with self._lock:
            self._render()

    def close(self, message: str = "") -> None:
        with self._lock:
            if self._tty:
                self.stream.write("\r\033[K")
            if message:
                self.stream.write(message + "\n")
            self.stream.flush()


def _progress_monitor(trt, progress: BuildProgress):
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


class _Heartbeat:
    """Redraws the progress line every few seconds, for the stretches in which
    TensorRT reports nothing (parsing, long tactics, older versions)."""

    def __init__(self, progress: BuildProgress, every: float = 5.0):
        self.progress, self.every = progress, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.progress.heartbeat()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- build -------------------------------------------------------------------

@dataclasses.dataclass
class BuildResult:
    path: Path
    metadata: EngineMetadata
    seconds: float
    notes: list[str]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _polygraphy_quiet(verbose: bool):
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.VERBOSE if verbose else G_LOGGER.WARNING


def _plugin_report(model, options: BuildOptions, check_plugins: bool, log):
    """Run the doctor before the build; returns the plugin op keys it found."""
    from . import doctor

    nodes, _ = doctor.plugin_nodes(model)
    ops = sorted({f"{n.op_type}/{n.version}/{n.namespace}" for n in nodes})
    if not check_plugins:
        return ops
    try:
        libraries = doctor.load_libraries(options.plugins)
    except doctor.HostUnavailableError as exc:
        log(f"warning: plugin check skipped: {exc}")
        return ops
    report = doctor.check_model(model, libraries, str(options.onnx_path))
    for warning in report.warnings:
        log(f"warning: {warning}")
    if not report.ok:
        raise doctor.DoctorError(report)
    return ops


def build(onnx_path, output=None, *, plugins: Sequence = (), fp16: bool = False, bf16: bool = False,
          strongly_typed: bool = False, shapes=None, workspace_mib: int | None = None,
          timing_cache=None, version_compatible: bool = False, serialize_plugins: bool = False,
          force: bool = False, check_plugins: bool = True, progress: bool = True,
          verbose: bool = False, log: Callable[[str], None] = _stderr) -> BuildResult:
    """Build an engine from an ONNX model with plugkit plugins and save it.

    ``shapes``: ``{"input": ShapeRange}`` or spec strings like
    ``"input:1x3x32x64,1x3x32x448,1x3x32x1024"``. ``fp16``/``bf16`` follow
    :func:`plugkit.precision.precision_plan` (builder flags on TensorRT 10,
    a cast model built strongly typed on TensorRT 11). Raises a
    :class:`~plugkit.errors.PlugkitError` subclass for anything a user can fix.
    """
    import onnx

    from .precision import cast_model, precision_plan

    options = validate_build_options(
        onnx_path, output, plugins=plugins, fp16=fp16, bf16=bf16, strongly_typed=strongly_typed,
        shapes=shapes, workspace_mib=workspace_mib, timing_cache=timing_cache,
        version_compatible=version_compatible, serialize_plugins=serialize_plugins, force=force)
    try:
        model = onnx.load(str(options.onnx_path), load_external_data=False)
    except Exception as exc:
        raise EngineError(f"{options.onnx_path} is not a readable ONNX model: {exc}") from None
    ranges = check_ranges_against_model(options.shapes, onnx_input_dims(model))
    plugin_ops = _plugin_report(model, options, check_plugins, log)

    trt = import_tensorrt()
    plan = precision_plan(parse_version(trt.__version__)[0], fp16=options.fp16, bf16=options.bf16,
                          strongly_typed=options.strongly_typed)
    notes = list(plan.notes)
    for note in notes:
        log(f"note: {note}")
    _check_library_versions(trt, options.plugins, log)
    load_plugins_into_tensorrt(trt, options.plugins)

    _polygraphy_quiet(verbose)
    from polygraphy.backend.trt import (CreateConfig, EngineBytesFromNetwork, EngineFromBytes,
                                        NetworkFromOnnxPath, PostprocessConfig, Profile)
    from polygraphy.exception import PolygraphyException

    with tempfile.TemporaryDirectory(prefix="plugkit-build-") as tmp:
        parse_path = options.onnx_path
        if plan.cast_to:
            full = onnx.load(str(options.onnx_path))  # with external weights
            cast = cast_model(full, plan.cast_to)
            parse_path = Path(tmp) / f"{options.onnx_path.stem}.{plan.cast_to}.onnx"
            large = cast.ByteSize() > 1_800_000_000
            onnx.save(cast, str(parse_path), save_as_external_data=large,
                      location=f"{parse_path.name}.data" if large else None)

        parser_flags = []
        if options.version_compatible and hasattr(trt, "OnnxParserFlag") and \
                hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
            parser_flags.append(trt.OnnxParserFlag.NATIVE_INSTANCENORM)
        strongly_typed_flag = plan.strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag,
                                                              "STRONGLY_TYPED")
        network = NetworkFromOnnxPath(str(parse_path), flags=parser_flags or None,
                                      strongly_typed=strongly_typed_flag)

        profiles = None
        if ranges:
            profile = Profile()
            for shape_range in ranges.values():
                profile.add(shape_range.name, min=shape_range.min, opt=shape_range.opt,
                            max=shape_range.max)
            profiles = [profile]
        monitor_progress = BuildProgress() if progress else None
        monitor = _progress_monitor(trt, monitor_progress) if monitor_progress else None
        timing_cache_path = str(options.timing_cache) if options.timing_cache else None
        config = CreateConfig(
            fp16="FP16" in plan.builder_flags or None,
            bf16="BF16" in plan.builder_flags or None,
            profiles=profiles,
            memory_pool_limits=({trt.MemoryPoolType.WORKSPACE: options.workspace_mib << 20}
                                if options.workspace_mib else None),
            load_timing_cache=(timing_cache_path if options.timing_cache
                               and options.timing_cache.exists() else None),
            version_compatible=options.version_compatible or None,
            progress_monitor=monitor,
        )
        if options.serialize_plugins:
            libraries = [os.path.abspath(p) for p in options.plugins]

            def serialize_plugins_into_engine(builder, network, config):
                config.plugins_to_serialize = libraries

            config = PostprocessConfig(config, serialize_plugins_into_engine)

        start = time.monotonic()
        log(f"building {options.output} from {options.onnx_path} with TensorRT {trt.__version__}"
            + (f" ({', '.join(plan.builder_flags)})" if plan.builder_flags else "")
            + (" strongly typed" if plan.strongly_typed else ""))
        try:
            if monitor_progress:
                with _Heartbeat(monitor_progress):
                    engine_bytes = EngineBytesFromNetwork(network, config,
                                                          save_timing_cache=timing_cache_path)()
            else:
                engine_bytes = EngineBytesFromNetwork(network, config,
                                                      save_timing_cache=timing_cache_path)()
        except PolygraphyException as exc:
            if monitor_progress:
                monitor_progress.close()
            raise EngineError(
                f"TensorRT could not build an engine from {options.onnx_path}: {exc} (TensorRT's "
                f"messages above name the layer; `plugkit doctor {options.onnx_path} --plugins ...` "
                f"checks the plugin nodes)") from None
        seconds = time.monotonic() - start
        if monitor_progress:
            monitor_progress.close()

    data = bytes(engine_bytes)
    _atomic_write(options.output, data)
    device_name, capability = _device()
    meta = EngineMetadata(
        tensorrt_version=trt.__version__, device_name=device_name, compute_capability=capability,
        version_compatible=options.version_compatible, plugins_serialized=options.serialize_plugins,
        plugins=[os.path.abspath(p) for p in options.plugins], plugin_ops=plugin_ops,
        precision=compute_precision(plan.cast_to, plan.builder_flags),
        builder_flags=list(plan.builder_flags), strongly_typed=plan.strongly_typed,
        onnx=str(options.onnx_path), engine_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest())
    try:
        runtime = trt.Runtime(_capturing_logger(trt))
        meta.tensors = describe_engine_tensors(trt, EngineFromBytes(data, runtime=runtime)())
    except Exception as exc:  # the record is a convenience; the engine is already saved
        log(f"warning: could not read the engine's inputs/outputs for {metadata_path(options.output)}: "
            f"{exc}")
    metadata_path(options.output).write_text(meta.to_json())
    log(f"saved {options.output} ({len(data) / 1e6:.1f} MB) in {seconds:.1f} s")
    return BuildResult(options.output, meta, seconds, notes)


def compute_precision(cast_to: str | None, builder_flags: Sequence[str]) -> str:
    """The float type an engine computes in, for picking the comparison tolerance."""
    if cast_to:
        return cast_to
    if "BF16" in builder_flags:
        return "bfloat16"
    if "FP16" in builder_flags:
        return "float16"
    return "float32"


# --- load --------------------------------------------------------------------

def _capturing_logger(trt, verbose: bool = False):
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


class Engine(_TensorsByRole):
    """A deserialized engine, ready to run on torch CUDA tensors."""

    def __init__(self, trt, trt_engine, path: Path, metadata: EngineMetadata | None,
                 plugins: list[str]):
        self.trt = trt
        self.trt_engine = trt_engine
        self.path = path
        self.metadata = metadata
        self.plugins = plugins
        self.tensors = describe_engine_tensors(trt, trt_engine)
        self._runner = None

    @property
    def precision(self) -> str:
        return self.metadata.precision if self.metadata else "float32"

    def _activate(self):
        if self._runner is None:
            from polygraphy.backend.trt import TrtRunner

            self._runner = TrtRunner(self.trt_engine)
            self._runner.activate()
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _to_device(self, feeds: Mapping[str, Any]) -> dict:
        torch = _import_torch_cuda()
        check_feeds(self.inputs, feeds)
        device_feeds = {}
        for name, value in feeds.items():
            if isinstance(value, torch.Tensor):
                device_feeds[name] = value.cuda().contiguous()
            else:
                device_feeds[name] = _numpy_to_torch(torch, value).cuda()
        return device_feeds

    def run(self, feeds: Mapping[str, Any], *, to_host: bool = True) -> dict[str, Any]:
        """Run once. ``feeds``: input name -> numpy array or torch tensor. Returns
        output name -> torch tensor (on the CPU when ``to_host``)."""
        from polygraphy.exception import PolygraphyException

        device_feeds = self._to_device(feeds)
        runner = self._activate()
        try:
            outputs = runner.infer(device_feeds, copy_outputs_to_host=to_host)
        except PolygraphyException as exc:
            raise EngineError(f"running {self.path} failed: {exc}") from None
        return dict(outputs)

    def benchmark(self, feeds: Mapping[str, Any], iterations: int, warmup: int = 5) -> "LatencyStats":
        """Latency of ``iterations`` synchronous runs (inputs and outputs stay on the GPU)."""
        torch = _import_torch_cuda()
        device_feeds = self._to_device(feeds)
        runner = self._activate()
        for _ in range(max(warmup, 0)):
            runner.infer(device_feeds, copy_outputs_to_host=False)
        torch.cuda.synchronize()
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            runner.infer(device_feeds, copy_outputs_to_host=False)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return LatencyStats.from_seconds(times)


def _import_torch_cuda():
    try:
        import torch
    except ImportError:
        raise EngineError("running an engine needs PyTorch with CUDA: pip install torch") from None
    if not torch.cuda.is_available():
        raise EngineError("running an engine needs a CUDA GPU, and torch sees none "
                          "(torch.cuda.is_available() is False)")
    return torch


def _numpy_to_torch(torch, array):
    import numpy as np

    array = np.ascontiguousarray(array)
    if dtype_name(array.dtype) == "bfloat16":  # ml_dtypes.bfloat16: reinterpret the bits
        return torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def load(engine_path, plugins: Sequence = (), *, verify: bool = True, verbose: bool = False,
         log: Callable[[str], None] = _stderr) -> Engine:
    """Deserialize an engine after checking, without TensorRT, everything that
    can be: the file, its build record (TensorRT version, GPU, plugins), the
    plugin libraries. ``verify`` also checks the file's SHA-256 against the record."""
    from .doctor import check_library_paths

    path = check_engine_file(engine_path)
    meta = read_metadata(path)
    if meta is not None:
        check_engine_against_metadata(path, meta, verify_hash=verify)
    plugins = [str(p) for p in check_library_paths(plugins)]
    if meta is not None and meta.plugin_ops and not plugins and not meta.plugins_serialized:
        raise EngineError(
            f"engine {path} uses the plugin(s) {', '.join(meta.plugin_ops)} and was built without "
            f"--serialize-plugins: pass the plugin library with --plugins (it was built with "
            f"{', '.join(meta.plugins) or 'an unknown library'})")
    trt = import_tensorrt()
    if meta is not None:
        device_name, capability = _device()
        for warning in check_metadata_compatible(meta, trt.__version__, capability, device_name):
            log(f"warning: {warning}")
    _check_library_versions(trt, plugins, log)
    load_plugins_into_tensorrt(trt, plugins)

    _polygraphy_quiet(verbose)
    from polygraphy.backend.trt import EngineFromBytes
    from polygraphy.exception import PolygraphyException

    logger = _capturing_logger(trt, verbose)
    runtime = trt.Runtime(logger)
    data = path.read_bytes()
    try:
        trt_engine = EngineFromBytes(data, runtime=runtime)()
    except PolygraphyException:
        trt_engine = None
    if not trt_engine:
        raise EngineError(explain_load_failure(logger.errors, path=str(path), plugins=plugins,
                                               meta=meta))
    return Engine(trt, trt_engine, path, meta, plugins)


# --- inputs ------------------------------------------------------------------

def _feed_dtype(value) -> str:
    return dtype_name(getattr(value, "dtype", type(value).__name__))


def check_feeds(inputs: Sequence[TensorInfo], feeds: Mapping[str, Any]) -> None:
    """Input names, dtypes and shapes against the engine's inputs and profile,
    each mistake with a message that names the input and the fix."""
    expected = {t.name: t for t in inputs}
    unknown = [name for name in feeds if name not in expected]
    if unknown:
        raise InputError(f"the engine has no input(s) {', '.join(map(repr, unknown))}; its inputs are: "
                         + "; ".join(t.describe() for t in inputs))
    missing = [name for name in expected if name not in feeds]
    if missing:
        raise InputError(f"missing input(s) {', '.join(map(repr, missing))}; the engine's inputs are: "
                         + "; ".join(t.describe() for t in inputs))
    for name, value in feeds.items():
        info = expected[name]
        dtype = _feed_dtype(value)
        if dtype != info.dtype:
            raise InputError(f"input {name!r} is {dtype}, but the engine expects {info.dtype}; "
                             f"convert it (e.g. array.astype('{info.dtype}'))")
        shape = tuple(int(d) for d in getattr(value, "shape", ()))
        if info.profile is not None:
            check_shape_in_range(name, shape, info.profile)
        elif len(shape) != len(info.shape) or any(d >= 0 and d != s for d, s in zip(info.shape, shape)):
            raise InputError(f"input {name!r} has shape {format_shape(shape)}, but the engine's input "
                             f"is {info.describe()}")


def parse_input_files(specs: Iterable[str] | None) -> dict[str, Any]:
    """``["input=x.npy", ...]`` -> {"input": array}; names the file and the fix."""
    import numpy as np

    feeds: dict[str, Any] = {}
    for spec in specs or ():
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise InputError(f"--input {spec!r}: write NAME=FILE.npy, e.g. --input images=batch.npy")
        if name in feeds:
            raise InputError(f"--input gives {name!r} twice")
        path = Path(file)
        if not path.is_file():
            raise InputError(f"--input {name}: file {path} does not exist")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"--input {name}: {path} is not a NumPy .npy array ({exc}); save it "
                             f"with numpy.save") from None
        if not isinstance(feeds[name], np.ndarray):
            raise InputError(f"--input {name}: {path} holds several arrays (.npz); pass one .npy per "
                             f"input")
    return feeds


def make_inputs(inputs: Sequence[TensorInfo], given: Mapping[str, Any] | None = None,
                shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0) -> dict[str, Any]:
    """Inputs for a run: the given arrays, and random data for the rest, shaped
    by ``shapes`` (``run --shapes``), else the input's fixed shape, else its
    profile's OPT shape."""
    import numpy as np

    given = dict(given or {})
    shapes = dict(shapes or {})
    names = {t.name for t in inputs}
    for name in list(shapes) + list(given):
        if name not in names:
            raise InputError(f"the engine has no input {name!r}; its inputs are: "
                             + "; ".join(t.describe() for t in inputs))
    rng = np.random.default_rng(seed)
    feeds = {}
    for info in inputs:
        if info.name in given:
            feeds[info.name] = given[info.name]
            continue
        if info.name in shapes:
            shape = tuple(shapes[info.name])
        elif all(d >= 0 for d in info.shape):
            shape = info.shape
        elif info.profile is not None:
            shape = info.profile.opt
        else:
            raise InputError(f"input {info.name!r} has dynamic shape {info.describe()} and no profile; "
                             f"give it with --shapes {info.name}:SHAPE or --input {info.name}=FILE.npy")
        feeds[info.name] = random_array(rng, shape, info.dtype)
    return feeds


def random_array(rng, shape, dtype: str):
    import numpy as np

    if dtype in ("float32", "float16", "float64"):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "bfloat16":
        import ml_dtypes

        return rng.standard_normal(shape).astype(np.float32).astype(ml_dtypes.bfloat16)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype in ("int8", "uint8", "int32", "int64"):
        return rng.integers(0, 8, shape).astype(dtype)
    raise InputError(f"cannot make random data of dtype {dtype}; pass the input with --input NAME=FILE.npy")


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles in milliseconds."""

    count: int
    mean: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> "LatencyStats":
        import numpy as np

        if not len(seconds):
            raise ValueError("no timings")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
        return cls(len(ms), float(ms.mean()), float(ms.min()), float(ms.max()), float(p50),
                   float(p90), float(p95), float(p99))

    def __str__(self):
        return (f"latency over {self.count} runs (ms): mean {self.mean:.3f}, min {self.min:.3f}, "
                f"p50 {self.p50:.3f}, p90 {self.p90:.3f}, p95 {self.p95:.3f}, p99 {self.p99:.3f}, "
                f"max {self.max:.3f}; throughput {1e3 / self.mean:.1f} runs/s")


# --- comparison with the CPU reference ----------------------------------------

def reference_outputs(onnx_path, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """The CPU reference outputs of an ONNX model (plugged or not), through the
    ONNX tooling's reference path (plugin nodes run the op schema's reference)."""
    from . import onnx_reference

    return onnx_reference.run_reference_model(onnx_path, feeds)


@dataclasses.dataclass
class OutputComparison:
    name: str
    comparison: Any  # tolerances.Comparison, or None when the output is missing/mis-shaped
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.comparison is not None and self.comparison.ok


def compare_outputs(outputs: Mapping[str, Any], reference: Mapping[str, Any],
                    precision: str = "float32") -> list[OutputComparison]:
    """Each engine output against the reference output of the same name, under
    the shared tolerance table. ``precision`` is what the engine computed in
    (an fp16 build is held to fp16 tolerances even where its outputs are fp32);
    integer outputs must match exactly."""
    import numpy as np

    from .tolerances import compare

    results = []
    for name, value in outputs.items():
        actual = _to_numpy(value)
        if name not in reference:
            results.append(OutputComparison(name, None, "the reference model has no output of this name"))
            continue
        expected = np.asarray(reference[name])
        out_dtype = dtype_name(actual.dtype)
        dtype = out_dtype if out_dtype not in ("float32", "float64") else precision
        if out_dtype == "float16" and precision == "bfloat16":
            dtype = "bfloat16"
        try:
            results.append(OutputComparison(name, compare(actual.astype(np.float64),
                                                          expected.astype(np.float64), dtype)))
        except ValueError as exc:
            results.append(OutputComparison(name, None, str(exc)))
    return results


def _to_numpy(value):
    import numpy as np

    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)
