"""The plugin host's Python face: load a plugin library and drive its plugins
through TensorRT's lifecycle, without TensorRT.

    lib = PluginLibrary("build/libplugkit_plugins.so")
    rms = lib.creator("RMSNorm").create({"epsilon": 1e-6})
    rms.output_shapes([["B", "T", 4096], [4096]])   # -> [["B", "T", 4096]]
    y, = run(lib.creator("RMSNorm"), [x, w], {"epsilon": 1e-6})   # torch/cupy CUDA tensors

Attributes become plugin fields the way TensorRT's ONNX parser makes them from
node attributes: int -> INT32, float -> FLOAT32, str -> CHAR, lists -> arrays.
The C++ creator then parses and validates them, so a wrong type is reported by
the plugin itself, exactly as in an engine build.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import PlugkitError, PluginError, PluginLibraryError
from .tensors import dtype_name as _dtype_name

try:
    from . import _host
except ImportError as exc:  # pragma: no cover - only without the compiled extension
    _host = None
    _HOST_IMPORT_ERROR = exc


def _native():
    if _host is None:
        raise PlugkitError(
            f"plugkit's host extension is not built ({_HOST_IMPORT_ERROR}); run `pip install -e .`")
    return _host


# --------------------------------------------------------------------------- fields

_NUMPY_FIELD_TYPES = {
    np.dtype(np.float32): "FLOAT32", np.dtype(np.float64): "FLOAT64", np.dtype(np.float16): "FLOAT16",
    np.dtype(np.int8): "INT8", np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
}
_FIELD_NUMPY_TYPES = {v: k for k, v in _NUMPY_FIELD_TYPES.items()}


@dataclasses.dataclass(frozen=True)
class Field:
    """One plugin field with an explicit type; ``value`` is a str (CHAR) or numbers."""

    name: str
    value: Any
    type: str

    def encode(self) -> tuple[str, str, bytes, int]:
        if self.type == "CHAR":
            data = self.value.encode() if isinstance(self.value, str) else bytes(self.value)
            return (self.name, "CHAR", data, len(data))
        if self.type not in _FIELD_NUMPY_TYPES:
            raise PluginError(f"field {self.name!r}: the host cannot encode type {self.type}")
        array = np.ascontiguousarray(np.atleast_1d(np.asarray(self.value, dtype=_FIELD_NUMPY_TYPES[self.type])))
        return (self.name, self.type, array.tobytes(), int(array.size))

    @classmethod
    def decode(cls, name: str, type_name: str, data: bytes, length: int) -> "Field":
        if type_name == "CHAR":
            return cls(name, data[:length].decode(errors="replace").rstrip("\0"), "CHAR")
        if type_name not in _FIELD_NUMPY_TYPES:
            return cls(name, data, type_name)
        values = np.frombuffer(data, dtype=_FIELD_NUMPY_TYPES[type_name], count=length)
        return cls(name, values.tolist(), type_name)

    @property
    def scalar(self) -> Any:
        """The value, unwrapped when it holds exactly one number."""
        if isinstance(self.value, list) and len(self.value) == 1:
            return self.value[0]
        return self.value


def field_from_value(name: str, value: Any) -> Field:
    """The field TensorRT's ONNX parser would pass for an attribute of this value."""
    if isinstance(value, Field):
        return value
    if isinstance(value, str):
        return Field(name, value, "CHAR")
    if isinstance(value, np.ndarray):
        if value.dtype not in _NUMPY_FIELD_TYPES:
            raise PluginError(f"attribute {name!r}: numpy dtype {value.dtype} has no plugin field type")
        return Field(name, value, _NUMPY_FIELD_TYPES[value.dtype])
    if isinstance(value, np.generic):
        return field_from_value(name, np.asarray(value))
    if isinstance(value, bool):
        return Field(name, int(value), "INT32")
    if isinstance(value, int):
        return Field(name, value, "INT32" if -2**31 <= value < 2**31 else "INT64")
    if isinstance(value, float):
        return Field(name, value, "FLOAT32")
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            big = any(not -2**31 <= int(v) < 2**31 for v in value)
            return Field(name, list(value), "INT64" if big else "INT32")
        if all(isinstance(v, (int, float, np.number)) for v in value):
            return Field(name, [float(v) for v in value], "FLOAT32")
    raise PluginError(f"attribute {name!r}: cannot make a plugin field from {value!r}")


# --------------------------------------------------------------------------- library

@dataclasses.dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    length: int

    @property
    def is_array(self) -> bool:
        """Arrays and strings report length 0 (any length); scalars 1."""
        return self.length != 1


@dataclasses.dataclass(frozen=True)
class CreatorInfo:
    name: str
    version: str
    namespace: str
    fields: tuple[FieldInfo, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace + '::' if self.namespace else ''}{self.name} v{self.version}"


class PluginLibrary:
    """A plugin library loaded with dlopen, as TensorRT's IPluginRegistry::loadLibrary does."""

    def __init__(self, path):
        self.path = str(path)
        try:
            self._lib = _native().Library(self.path)
        except RuntimeError as exc:
            raise PluginLibraryError(str(exc)) from None
        self._creators = {}
        for c in self._lib.creators():
            info = CreatorInfo(c.name, c.version, c.namespace,
                               tuple(FieldInfo(*f) for f in c.field_names()))
            self._creators[(info.name, info.version, info.namespace)] = (info, c)

    def __repr__(self):
        return f"PluginLibrary({self.path!r})"

    @property
    def creators(self) -> list[CreatorInfo]:
        return [info for info, _ in self._creators.values()]

    @property
    def skipped_creators(self) -> list[str]:
        """Interface kinds of creators that are not IPluginV3 creators (the host cannot drive them)."""
        return list(self._lib.skipped_creators)

    @property
    def tensorrt_version(self) -> str | None:
        """The TensorRT header version the library was compiled against ("10.14.1"), if it says."""
        v = self._lib.tensorrt_version
        return None if v is None else f"{v // 10000}.{v // 100 % 100}.{v % 100}"

    def creator(self, name: str, version: str | None = None, namespace: str | None = None) -> "Creator":
        matches = [(info, c) for info, c in self._creators.values()
                   if info.name == name and version in (None, info.version)
                   and namespace in (None, info.namespace)]
        if not matches:
            known = ", ".join(i.key for i in self.creators) or "none"
            raise PluginLibraryError(
                f"{self.path} has no plugin {name!r}"
                f"{f' version {version!r}' if version else ''}"
                f"{f' in namespace {namespace!r}' if namespace is not None else ''}; it has: {known}")
        if len(matches) > 1:
            raise PluginLibraryError(
                f"{self.path} has several plugins named {name!r} "
                f"({', '.join(i.key for i, _ in matches)}); give version= and namespace=")
        return Creator(*matches[0])


class Creator:
    """One plugin creator of a loaded library."""

    def __init__(self, info: CreatorInfo, native):
        self.info = info
        self._native = native

    def __repr__(self):
        return f"Creator({self.info.key})"

    def create(self, attrs: Mapping[str, Any] | None = None, *, phase: str = "build",
               layer_name: str = "", fields: Iterable[Field] | None = None) -> "Plugin":
        """createPlugin(layer_name, fields, phase). ``attrs`` become fields as the ONNX
        parser makes them; ``fields`` passes explicitly typed fields instead."""
        if fields is None:
            fields = [field_from_value(k, v) for k, v in (attrs or {}).items()]
        encoded = [f.encode() for f in fields]
        try:
            return Plugin(self._native.create(layer_name, encoded, phase), phase)
        except RuntimeError as exc:
            raise PluginError(str(exc)) from None


# --------------------------------------------------------------------------- plugin

def _call(fn, *args):
    try:
        return fn(*args)
    except RuntimeError as exc:
        raise PluginError(str(exc)) from None


def _range(shape) -> tuple[list[int], list[int], list[int]]:
    """A shape, or a (min, opt, max) triple of shapes."""
    if len(shape) == 3 and all(isinstance(s, (list, tuple)) for s in shape):
        return tuple(list(map(int, s)) for s in shape)
    dims = list(map(int, shape))
    return dims, dims, dims


class Plugin:
    """A plugin object, as TensorRT holds it in one phase (build or runtime)."""

    def __init__(self, native, phase: str):
        self._native = native
        self.phase = phase

    def __repr__(self):
        return f"Plugin({self.namespace + '::' if self.namespace else ''}{self.name} v{self.version}, {self.phase})"

    name = property(lambda self: self._native.name)
    version = property(lambda self: self._native.version)
    namespace = property(lambda self: self._native.namespace)

    @property
    def trace(self) -> list[str]:
        """The plugin methods called so far, in order (shared with clones and the runtime plugin)."""
        return list(self._native.trace)

    @property
    def recorded_errors(self) -> list[str]:
        """Errors the plugin reported to its runtime error recorder."""
        return list(self._native.recorded_errors)

    def nb_outputs(self) -> int:
        return _call(self._native.nb_outputs)

    def output_dtypes(self, input_dtypes: Sequence[str]) -> list[str]:
        return _call(self._native.output_dtypes, [_dtype_name(d) for d in input_dtypes])

    def output_shapes(self, input_shapes: Sequence[Sequence[int | str]]) -> list[list[int | str]]:
        """Output shapes from input shapes whose dims are ints or symbol names; symbolic
        results come back as expressions such as ``"(B * T)"``."""
        shapes = [[d if isinstance(d, str) else int(d) for d in s] for s in input_shapes]
        return _call(self._native.output_shapes, shapes)

    def supports(self, pos: int, dtypes: Sequence[str], nb_inputs: int,
                 formats: Sequence[str] | None = None) -> bool:
        """supportsFormatCombination(pos, ...) for tensors of these dtypes (LINEAR unless given)."""
        formats = formats or ["LINEAR"] * len(dtypes)
        descs = [(_dtype_name(d), f, [1], [1], [1]) for d, f in zip(dtypes, formats)]
        return _call(self._native.supports, pos, descs, nb_inputs)

    def format_table(self, nb_inputs: int, candidates: Sequence[str] = (
            "float32", "float16", "bfloat16", "int8", "int32", "int64", "bool")) -> list[tuple[str, ...]]:
        """Every dtype combination (LINEAR format) the plugin accepts, found the way TensorRT
        searches: position by position, asking about each with the earlier ones fixed."""
        total = nb_inputs + self.nb_outputs()
        combos: list[tuple[str, ...]] = [()]
        for pos in range(total):
            combos = [c + (d,) for c in combos for d in candidates
                      if self.supports(pos, list(c + (d,)) + [d] * (total - pos - 1), nb_inputs)]
        return combos

    def configure(self, inputs, outputs) -> None:
        """configurePlugin with ``(dtype, shape)`` pairs; a shape may be (min, opt, max)."""
        _call(self._native.configure, _ranges(inputs), _ranges(outputs))

    def workspace_size(self, inputs, outputs) -> int:
        return _call(self._native.workspace_size, _ranges(inputs), _ranges(outputs))

    def valid_tactics(self) -> list[int]:
        return _call(self._native.valid_tactics)

    def set_tactic(self, tactic: int) -> None:
        _call(self._native.set_tactic, tactic)

    def serialize(self) -> list[Field]:
        """getFieldsToSerialize, decoded: what TensorRT stores in the engine."""
        return [Field.decode(*f) for f in _call(self._native.fields_to_serialize)]

    def clone(self) -> "Plugin":
        return Plugin(_call(self._native.clone), self.phase)

    def attach_to_context(self) -> "Plugin":
        return Plugin(_call(self._native.attach_to_context), "runtime")

    def on_shape_change(self, inputs, outputs) -> None:
        """onShapeChange with concrete ``(dtype, shape)`` pairs."""
        _call(self._native.on_shape_change, _values(inputs), _values(outputs))

    def enqueue(self, inputs: Sequence[Any], outputs: Sequence[Any], workspace: int = 0, stream=None) -> None:
        """enqueue on CUDA tensors (torch or cupy), on ``stream`` (default: the current one)."""
        ins = [_tensor_value(t) for t in inputs]
        outs = [_tensor_value(t) for t in outputs]
        stream_handle = _stream_handle(stream, (list(inputs) + list(outputs))[0])
        _call(self._native.enqueue, ins, outs, int(workspace), stream_handle)


def _ranges(pairs):
    out = []
    for dtype, shape in pairs:
        lo, opt, hi = _range(shape)
        out.append((_dtype_name(dtype), "LINEAR", lo, opt, hi))
    return out


def _values(pairs):
    return [(_dtype_name(dtype), "LINEAR", list(map(int, shape)), 0) for dtype, shape in pairs]


# --------------------------------------------------------------------------- tensors

def _is_torch(t) -> bool:
    return type(t).__module__.startswith("torch")


def _tensor_value(t):
    """(dtype, format, dims, address) of a CUDA tensor: torch through its attributes
    (bf16 has no __cuda_array_interface__), anything else through that interface."""
    if _is_torch(t):
        if not t.is_cuda:
            raise PluginError("enqueue needs CUDA tensors; got a tensor on " + str(t.device))
        if not t.is_contiguous():
            raise PluginError("enqueue needs contiguous tensors (TensorRT's LINEAR format); call .contiguous()")
        return (_dtype_name(t.dtype), "LINEAR", list(t.shape), t.data_ptr())
    cai = getattr(t, "__cuda_array_interface__", None)
    if cai is None:
        raise PluginError(f"enqueue needs torch or cupy CUDA tensors; got {type(t).__name__}")
    if cai.get("strides") is not None:
        expected = np.empty(cai["shape"], dtype=np.dtype(cai["typestr"])).strides
        if tuple(cai["strides"]) != tuple(expected):
            raise PluginError("enqueue needs contiguous tensors (TensorRT's LINEAR format)")
    return (np.dtype(cai["typestr"]).name, "LINEAR", list(cai["shape"]), int(cai["data"][0]))


def _stream_handle(stream, like) -> int:
    if stream is None:
        if _is_torch(like):
            import torch
            return torch.cuda.current_stream(like.device).cuda_stream
        import cupy
        return cupy.cuda.get_current_stream().ptr
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    return int(stream)


def _empty_like_family(like, shape, dtype: str):
    if _is_torch(like):
        import torch
        return torch.empty(tuple(shape), dtype=getattr(torch, dtype), device=like.device)
    import cupy
    return cupy.empty(tuple(shape), dtype=dtype)


def _tensor_meta(t) -> tuple[str, list[int]]:
    if _is_torch(t):
        return _dtype_name(t.dtype), list(t.shape)
    if hasattr(t, "__cuda_array_interface__"):
        cai = t.__cuda_array_interface__
        return np.dtype(cai["typestr"]).name, list(cai["shape"])
    return np.asarray(t).dtype.name, list(np.shape(t))


# --------------------------------------------------------------------------- lifecycle

class PreparedPlugin:
    """A plugin taken through TensorRT's build phase and into its runtime phase for
    fixed input shapes/dtypes, ready to enqueue repeatedly (tests, benchmarks).

    Build, in the order TensorRT-RTX's builder was recorded to use (docs/engines.md):
    createPlugin(kBUILD), getNbOutputs, getOutputDataTypes; a clone for getOutputShapes;
    a clone of that for supportsFormatCombination (every position), configurePlugin,
    getWorkspaceSize, getValidTactics and getFieldsToSerialize: the builder configures
    and serializes a copy, so a clone that loses state fails here as in an engine build.
    Runtime: createPlugin(kRUNTIME) from the serialized fields, attachToContext,
    onShapeChange; then enqueue.
    """

    def __init__(self, creator: Creator, attrs: Mapping[str, Any] | None,
                 input_specs: Sequence[tuple[str, Sequence[int]]], layer_name: str = "plugkit_host"):
        input_specs = [(_dtype_name(d), [int(x) for x in s]) for d, s in input_specs]
        in_dtypes = [d for d, _ in input_specs]
        build = creator.create(attrs, phase="build", layer_name=layer_name)
        self.build_plugin = build
        self.output_dtypes = build.output_dtypes(in_dtypes)
        build = build.clone()
        shapes = build.output_shapes([s for _, s in input_specs])
        symbolic = [s for s in shapes if any(isinstance(d, str) for d in s)]
        if symbolic:
            raise PluginError(f"{build.name}: output shapes {symbolic} depend on symbols for constant inputs")
        self.output_shapes = [list(map(int, s)) for s in shapes]
        build = build.clone()
        all_dtypes = in_dtypes + self.output_dtypes
        for pos in range(len(all_dtypes)):
            if not build.supports(pos, all_dtypes, len(in_dtypes)):
                raise PluginError(
                    f"{build.name} does not support dtype {all_dtypes[pos]} at position {pos} "
                    f"(inputs then outputs: {all_dtypes}); supported: {build.format_table(len(in_dtypes))}")
        out_specs = list(zip(self.output_dtypes, self.output_shapes))
        build.configure(input_specs, out_specs)
        self.workspace_bytes = build.workspace_size(input_specs, out_specs)
        self.tactics = build.valid_tactics()
        self.fields = build.serialize()
        runtime = creator.create(phase="runtime", layer_name=layer_name, fields=self.fields)
        self.plugin = runtime.attach_to_context()
        if self.tactics:
            self.plugin.set_tactic(self.tactics[0])
        self.plugin.on_shape_change(input_specs, out_specs)
        self.input_specs = input_specs
        self._workspace = None

    @property
    def trace(self) -> list[str]:
        return self.build_plugin.trace + self.plugin.trace

    def allocate_outputs(self, like):
        return [_empty_like_family(like, s, d) for d, s in zip(self.output_dtypes, self.output_shapes)]

    def enqueue(self, inputs, outputs, stream=None) -> None:
        workspace = 0
        if self.workspace_bytes:
            if self._workspace is None:
                self._workspace = _empty_like_family(inputs[0], [self.workspace_bytes], "uint8")
            workspace = _tensor_value(self._workspace)[3]
        self.plugin.enqueue(inputs, outputs, workspace, stream)

    def __call__(self, *inputs, stream=None):
        outputs = self.allocate_outputs(inputs[0])
        self.enqueue(inputs, outputs, stream)
        return outputs


def run(creator: Creator, inputs: Sequence[Any], attrs: Mapping[str, Any] | None = None,
        stream=None) -> list[Any]:
    """Run a plugin once on CUDA tensors, through the whole lifecycle; returns its outputs."""
    specs = [_tensor_meta(t) for t in inputs]
    return PreparedPlugin(creator, attrs, specs)(*inputs, stream=stream)


def cuda_available() -> bool:
    return _native().cuda_device_count() > 0
