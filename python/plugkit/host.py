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
import itertools
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import PlugkitError, PluginError, PluginLibraryError
from .plugin_libraries import check_library_file
from .tensors import (cuda_tensor_value, dtype_name as _dtype_name, empty_like, is_torch, stream_handle,
                      synchronize_stream, tensor_meta, to_numpy)

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
        try:
            with np.errstate(over="raise", invalid="ignore"):
                array = np.ascontiguousarray(np.atleast_1d(np.asarray(self.value, dtype=_FIELD_NUMPY_TYPES[self.type])))
        except (FloatingPointError, OverflowError, ValueError, TypeError) as exc:
            raise PluginError(f"field {self.name!r}: {self.value!r} is not a {self.type} value ({exc})") from None
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
        check_library_file(self.path)  # a truncated file would crash dlopen with SIGBUS
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

@dataclasses.dataclass(frozen=True)
class DataDependentDim:
    """An output dimension known only after enqueue: the value of size-tensor output
    ``size_output`` (IExprBuilder::declareSizeTensor), at most ``upper``; ``opt`` is what
    TensorRT tunes for. Prints as ``name<=upper``, e.g. ``M<=T``."""

    size_output: int
    opt: int | str
    upper: int | str
    name: str = ""

    def __str__(self):
        return f"{self.name or f'size{self.size_output}'}<={self.upper}"

    __repr__ = __str__


@dataclasses.dataclass(frozen=True)
class Tactic:
    """One of a plugin's kernel variants (getValidTactics), with the name the plugin gives it."""

    value: int
    name: str

    def __str__(self):
        return f"{self.value} ({self.name})"


def _call(fn, *args):
    try:
        return fn(*args)
    except RuntimeError as exc:
        raise PluginError(str(exc)) from None


def _range(shape) -> tuple[list[int], list[int], list[int]]:
    """A shape, or a (min, opt, max) triple of shapes."""
    if len(shape) == 3 and all(isinstance(s, (list, tuple)) for s in shape):
        return tuple([_dimension(d, symbolic=False) for d in s] for s in shape)
    dims = [_dimension(d, symbolic=False) for d in shape]
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

    def output_shapes(self, input_shapes: Sequence[Sequence[int | str]],
                      output_names: Sequence[str] | None = None) -> list[list[int | str | DataDependentDim]]:
        """Output shapes from input shapes whose dims are ints or symbol names; symbolic
        results come back as expressions such as ``"(B * T)"``, data-dependent ones as a
        :class:`DataDependentDim` named after its size output (``output_names``, if given)."""
        shapes = [_symbolic_shape(s) for s in input_shapes]
        result = _call(self._native.output_shapes, shapes)

        def dim(d):
            if isinstance(d, (int, str)):
                return d
            name = output_names[d.output_index] if output_names and d.output_index < len(output_names) else ""
            return DataDependentDim(d.output_index, d.opt, d.upper, name)
        return [[dim(d) for d in s] for s in result]

    def supports(self, pos: int, dtypes: Sequence[str], nb_inputs: int,
                 formats: Sequence[str] | None = None) -> bool:
        """supportsFormatCombination(pos, ...) for tensors of these dtypes (LINEAR unless given)."""
        formats = formats or ["LINEAR"] * len(dtypes)
        descs = [(_dtype_name(d), f, [1], [1], [1]) for d, f in zip(dtypes, formats)]
        return _call(self._native.supports, pos, descs, nb_inputs)

    def format_table(self, nb_inputs: int, candidates: Sequence[str] = (
            "float32", "float16", "bfloat16", "int8", "int32", "int64", "bool", "uint8")) -> list[tuple[str, ...]]:
        """Every dtype combination (LINEAR format) the plugin accepts, found the way TensorRT
        searches: position by position, asking about each with the earlier ones fixed; then,
        as the builder does, at most getFormatCombinationLimit of them."""
        total = nb_inputs + self.nb_outputs()
        combos: list[tuple[str, ...]] = [()]
        for pos in range(total):
            combos = [c + (d,) for c in combos for d in candidates
                      if self.supports(pos, list(c + (d,)) + [d] * (total - pos - 1), nb_inputs)]
        return combos[:self.format_combination_limit()]

    def format_combination_limit(self) -> int:
        """getFormatCombinationLimit: how many accepted combinations the builder goes on to time."""
        return _call(self._native.format_combination_limit)

    def configure(self, inputs, outputs) -> None:
        """configurePlugin with ``(dtype, shape)`` pairs; a shape may be (min, opt, max)."""
        _call(self._native.configure, _ranges(inputs), _ranges(outputs))

    def workspace_size(self, inputs, outputs) -> int:
        return _call(self._native.workspace_size, _ranges(inputs), _ranges(outputs))

    def valid_tactics(self) -> list[int]:
        """getNbTactics + getValidTactics: the plugin's custom tactics ([] when it has none)."""
        return _call(self._native.valid_tactics)

    def tactics(self) -> list[Tactic]:
        """The valid tactics with their names ("tactic N" where the plugin names none)."""
        return [Tactic(t, self.tactic_name(t)) for t in self.valid_tactics()]

    def tactic_name(self, tactic: int) -> str:
        return _call(self._native.tactic_name, int(tactic)) or f"tactic {tactic}"

    def set_tactic(self, tactic: int) -> None:
        """setTactic: the tactic the next enqueue runs (0 is TensorRT's default)."""
        _call(self._native.set_tactic, int(tactic))

    def timing_cache_id(self) -> str | None:
        """getTimingCacheID: None when the plugin opts out of timing caching."""
        return _call(self._native.timing_cache_id)

    def serialize(self) -> list[Field]:
        """getFieldsToSerialize, decoded: what TensorRT stores in the engine."""
        return [Field.decode(*f) for f in _call(self._native.fields_to_serialize)]

    def clone(self) -> "Plugin":
        return Plugin(_call(self._native.clone), self.phase)

    def attach_to_context(self) -> "Plugin":
        return Plugin(_call(self._native.attach_to_context), "runtime")

    def on_shape_change(self, inputs, outputs) -> None:
        """onShapeChange with concrete ``(dtype, shape)`` pairs."""
        _call(self._native.on_shape_change, _values(inputs), _values(outputs, unknown=True))

    def enqueue(self, inputs: Sequence[Any], outputs: Sequence[Any], workspace: int = 0, stream=None,
                output_dims: Sequence[Sequence[int]] | None = None) -> None:
        """enqueue on CUDA tensors (torch or cupy), on ``stream`` (default: the current one);
        ``output_dims`` replaces the outputs' dims in their descriptors (-1 where data-dependent)."""
        _call(self._native.enqueue, *self._enqueue_args(inputs, outputs, workspace, stream, output_dims))

    def enqueue_cpu_times(self, inputs: Sequence[Any], outputs: Sequence[Any], workspace: int = 0, stream=None,
                          output_dims: Sequence[Sequence[int]] | None = None, iterations: int = 100) -> list[float]:
        """Microseconds of CPU time of each of ``iterations`` enqueue calls, timed in C++ around
        the call TensorRT makes (what the plugin's own enqueue costs the host thread)."""
        ns = _call(self._native.enqueue_cpu_times,
                   *self._enqueue_args(inputs, outputs, workspace, stream, output_dims), int(iterations))
        return [t / 1e3 for t in ns]

    @staticmethod
    def _enqueue_args(inputs, outputs, workspace, stream, output_dims):
        if not inputs and not outputs:
            raise PluginError("enqueue needs the plugin's input and output CUDA tensors; got none")
        ins = [cuda_tensor_value(t) for t in inputs]
        outs = [cuda_tensor_value(t) for t in outputs]
        if output_dims is not None:
            outs = [(d, f, list(map(int, dims)), a) for (d, f, _, a), dims in zip(outs, output_dims, strict=True)]
        return ins, outs, int(workspace), stream_handle(stream, (list(inputs) + list(outputs))[0])


def _dimension(d, symbolic: bool, unknown: bool = False):
    """A dimension as the host takes it: a non-negative int, or (``symbolic``) a symbol name, or
    (``unknown``) -1, TensorRT's value for a data-dependent dimension before enqueue."""
    if symbolic and isinstance(d, str) and d.isidentifier():
        return d
    if isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)):
        if unknown and d == -1:
            return -1
        if d < 0:
            raise PluginError(f"dimension {d} is negative")
        if d >= 2**63:
            raise PluginError(f"dimension {d} is too large")
        return int(d)
    what = "a whole number or a symbol name" if symbolic else "a whole number"
    raise PluginError(f"dimension {d!r} is not {what}")


def _symbolic_shape(shape) -> list:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise PluginError(f"shape {shape!r} is not a list of dimensions")
    return [_dimension(d, symbolic=True) for d in shape]


def _ranges(pairs):
    out = []
    for dtype, shape in pairs:
        lo, opt, hi = _range(shape)
        out.append((_dtype_name(dtype), "LINEAR", lo, opt, hi))
    return out


def _values(pairs, unknown: bool = False):
    return [(_dtype_name(dtype), "LINEAR", [_dimension(d, symbolic=False, unknown=unknown) for d in shape], 0)
            for dtype, shape in pairs]


# --------------------------------------------------------------------------- lifecycle

@dataclasses.dataclass(frozen=True)
class OutputPlan:
    """A build-phase plugin's outputs at concrete input shapes, as TensorRT's builder sees them:
    ``declared`` shapes (a :class:`DataDependentDim` where data-dependent), the shapes to allocate
    (upper bounds), the dims configurePlugin/onShapeChange/enqueue see (-1 where data-dependent)
    and the min/opt/max ranges configurePlugin gets."""

    dtypes: list[str]
    declared: list[list]

    @property
    def alloc_shapes(self) -> list[list[int]]:
        return [[d.upper if isinstance(d, DataDependentDim) else int(d) for d in s] for s in self.declared]

    @property
    def dims(self) -> list[list[int]]:
        return [[-1 if isinstance(d, DataDependentDim) else int(d) for d in s] for s in self.declared]

    @property
    def ranges(self) -> list:
        return [(dtype, ([0 if isinstance(d, DataDependentDim) else d for d in s],
                         [d.opt if isinstance(d, DataDependentDim) else d for d in s], upper))
                for dtype, s, upper in zip(self.dtypes, self.declared, self.alloc_shapes)]

    @property
    def size_outputs(self) -> list[int]:
        """Indices of the size-tensor outputs (declareSizeTensor)."""
        return sorted({d.size_output for s in self.declared for d in s if isinstance(d, DataDependentDim)})


def plan_outputs(build: Plugin, input_specs, output_dtypes: Sequence[str]) -> OutputPlan:
    """getOutputShapes at concrete input shapes, refusing what TensorRT's builder would: BOOL/UINT8
    outputs, size tensors that are not 0-d INT32, data-dependent dims without a constant bound."""
    shapes = build.output_shapes([s for _, s in input_specs])
    for i, dtype in enumerate(output_dtypes):
        if dtype in ("bool", "uint8"):
            raise PluginError(f"{build.name}: output {i} has dtype {dtype}; TensorRT does not support BOOL or "
                              "UINT8 plugin outputs (getOutputDataTypes); use int32")
    for s in shapes:
        for d in s:
            if not isinstance(d, DataDependentDim):
                continue
            if output_dtypes[d.size_output] != "int32":
                raise PluginError(f"{build.name}: size-tensor output {d.size_output} has dtype "
                                  f"{output_dtypes[d.size_output]}; TensorRT requires int32")
            if not isinstance(d.upper, int) or not isinstance(d.opt, int):
                raise PluginError(f"{build.name}: data-dependent dimension {d} (opt {d.opt}) has no constant "
                                  "opt and upper bound for constant input shapes")
    symbolic = [s for s in shapes if any(isinstance(d, str) for d in s)]
    if symbolic:
        raise PluginError(f"{build.name}: output shapes {symbolic} depend on symbols for constant inputs")
    return OutputPlan(list(output_dtypes), shapes)


def check_formats(build: Plugin, in_dtypes: Sequence[str], out_dtypes: Sequence[str]) -> int:
    """supportsFormatCombination at every position, then getFormatCombinationLimit, in the
    builder's order; returns the limit."""
    all_dtypes = list(in_dtypes) + list(out_dtypes)
    for pos in range(len(all_dtypes)):
        if not build.supports(pos, all_dtypes, len(in_dtypes)):
            raise PluginError(
                f"{build.name} does not support dtype {all_dtypes[pos]} at position {pos} "
                f"(inputs then outputs: {all_dtypes}); supported: {build.format_table(len(in_dtypes))}")
    return build.format_combination_limit()


def trim_outputs(outputs, plan: OutputPlan, who: str) -> list[Any]:
    """Outputs cut to their real shapes: each data-dependent output becomes a view of its first
    prod(real shape) elements, reshaped (what TensorRT hands on). Reads the size tensors, which
    waits for the work queued before (host side only)."""
    if not plan.size_outputs:
        return list(outputs)
    sizes = {k: int(to_numpy(outputs[k]).reshape(())) for k in plan.size_outputs}
    trimmed = []
    for out, declared in zip(outputs, plan.declared):
        if not any(isinstance(d, DataDependentDim) for d in declared):
            trimmed.append(out)
            continue
        real = [sizes[d.size_output] if isinstance(d, DataDependentDim) else d for d in declared]
        for d, value in zip(declared, real):
            if isinstance(d, DataDependentDim) and not 0 <= value <= d.upper:
                raise PluginError(f"{who}: size output {d.size_output} holds {value}, outside "
                                  f"[0, {d.upper}] (the upper bound it declared)")
        trimmed.append(out.reshape(-1)[:math.prod(real)].reshape(real))
    return trimmed


class PreparedPlugin:
    """A plugin taken through TensorRT's build phase and into its runtime phase for
    fixed input shapes/dtypes, ready to enqueue repeatedly (tests, benchmarks).

    Build, in the order TensorRT-RTX's builder was recorded to use (docs/engines.md):
    createPlugin(kBUILD), getNbOutputs, getOutputDataTypes; a clone for getOutputShapes;
    a clone of that for supportsFormatCombination (every position), getFormatCombinationLimit,
    configurePlugin, getWorkspaceSize, getNbTactics + getValidTactics, getTimingCacheID (only
    when there are tactics) and getFieldsToSerialize:
    the builder configures and serializes a copy, so a clone that loses state fails here as in
    an engine build. Runtime: createPlugin(kRUNTIME) from the serialized fields,
    attachToContext, setTactic (``tactic``; by default the plugin's first, or TensorRT's
    default 0 when it has none), onShapeChange; then enqueue. :meth:`time_tactics` times each
    tactic on the build-phase plugin as TensorRT's builder does (setTactic, onShapeChange,
    enqueue).

    Outputs with a data-dependent dimension (a size tensor) are allocated for its upper
    bound; calling the object returns them trimmed to the size the plugin wrote.
    """

    def __init__(self, creator: Creator, attrs: Mapping[str, Any] | None,
                 input_specs: Sequence[tuple[str, Sequence[int]]], layer_name: str = "plugkit_host",
                 tactic: int | None = None):
        input_specs = [(_dtype_name(d), [int(x) for x in s]) for d, s in input_specs]
        in_dtypes = [d for d, _ in input_specs]
        build = creator.create(attrs, phase="build", layer_name=layer_name)
        self.output_dtypes = build.output_dtypes(in_dtypes)
        build = build.clone()
        self._plan = plan = plan_outputs(build, input_specs, self.output_dtypes)
        self.declared_shapes = plan.declared
        self.output_shapes = plan.alloc_shapes  # allocated: upper bounds where data-dependent
        self.output_dims = plan.dims            # configurePlugin/onShapeChange see -1 there
        out_ranges = plan.ranges
        build = build.clone()
        self.format_combination_limit = check_formats(build, in_dtypes, self.output_dtypes)
        build.configure(input_specs, out_ranges)
        self.build_plugin = build  # the configured copy, which the builder times tactics on
        self.workspace_bytes = build.workspace_size(input_specs, out_ranges)
        self.tactics = build.valid_tactics()
        # The builder asks for a timing-cache key only of a plugin it times tactics for.
        self.timing_cache_id = build.timing_cache_id() if self.tactics else None
        self.fields = build.serialize()
        runtime = creator.create(phase="runtime", layer_name=layer_name, fields=self.fields)
        self.plugin = runtime.attach_to_context()
        self.tactic = (self.tactics[0] if self.tactics else 0) if tactic is None else int(tactic)
        self.plugin.set_tactic(self.tactic)
        self._out_specs = list(zip(self.output_dtypes, self.output_dims))
        self.plugin.on_shape_change(input_specs, self._out_specs)
        self.input_specs = input_specs
        self._workspace = None

    @property
    def trace(self) -> list[str]:
        """The plugin methods called so far: the build-phase plugin's, then the runtime plugin's."""
        return self.build_plugin.trace + self.plugin.trace

    @property
    def size_outputs(self) -> list[int]:
        """Indices of the size-tensor outputs (declareSizeTensor)."""
        return self._plan.size_outputs

    def allocate_outputs(self, like):
        return [empty_like(like, s, d) for d, s in zip(self.output_dtypes, self.output_shapes)]

    def _workspace_address(self, like) -> int:
        if not self.workspace_bytes:
            return 0
        if self._workspace is None:
            self._workspace = empty_like(like, [self.workspace_bytes], "uint8")
        return cuda_tensor_value(self._workspace)[3]

    def enqueue(self, inputs, outputs, stream=None) -> None:
        self.plugin.enqueue(inputs, outputs, self._workspace_address(inputs[0]), stream, self.output_dims)

    def enqueue_cpu_times(self, inputs, outputs, iterations: int = 100, stream=None) -> list[float]:
        """Microseconds of CPU time of each of ``iterations`` enqueue calls (timed in C++)."""
        return self.plugin.enqueue_cpu_times(inputs, outputs, self._workspace_address(inputs[0]), stream,
                                             self.output_dims, iterations)

    def time_tactics(self, tensor_sets: Sequence[tuple[Sequence[Any], Sequence[Any]]],
                     timer: Callable[[Mapping[int, Callable[[], Any]]], Mapping[int, float]],
                     stream=None) -> dict[int, float]:
        """Time each tactic as TensorRT's builder does, on the build-phase plugin: setTactic and
        onShapeChange per tactic, then enqueue. ``tensor_sets`` are (inputs, outputs) pairs that
        successive launches take in turn (one pair, or copies that keep L2 cold). ``timer`` gets
        {tactic: launch} (each launch sets its tactic, then enqueues on the next set) and returns
        {tactic: time}; the fastest is what TensorRT would pick."""
        build = self.build_plugin
        workspace = self._workspace_address(tensor_sets[0][0][0])

        def launch(tactic):
            turn = itertools.cycle(tensor_sets)

            def call():
                inputs, outputs = next(turn)
                build.set_tactic(tactic)
                build.enqueue(inputs, outputs, workspace, stream, self.output_dims)
            return call
        for tactic in self.tactics:
            build.set_tactic(tactic)
            build.on_shape_change(self.input_specs, self._out_specs)
        return dict(timer({tactic: launch(tactic) for tactic in self.tactics}))

    def trim(self, outputs) -> list[Any]:
        """Outputs cut to their real shapes (:func:`trim_outputs`)."""
        return trim_outputs(outputs, self._plan, self.plugin.name)

    def __call__(self, *inputs, stream=None):
        outputs = self.allocate_outputs(inputs[0])
        self.enqueue(inputs, outputs, stream)
        if stream is not None and self._plan.size_outputs:
            # trim reads the size outputs on the host, which waits only for the current stream
            synchronize_stream(stream, inputs[0])
        return self.trim(outputs)


def run(creator: Creator, inputs: Sequence[Any], attrs: Mapping[str, Any] | None = None,
        stream=None, tactic: int | None = None) -> list[Any]:
    """Run a plugin once on CUDA tensors, through the whole lifecycle; returns its outputs,
    data-dependent ones trimmed to their real size. ``tactic`` picks a kernel variant
    (default: the plugin's first)."""
    for t in inputs:
        if not is_torch(t) and not hasattr(t, "__cuda_array_interface__"):
            raise PluginError(f"run needs torch or cupy CUDA tensors; got {type(t).__module__}."
                              f"{type(t).__name__} (move it to the GPU, e.g. torch.from_numpy(a).cuda())")
    specs = [tensor_meta(t) for t in inputs]
    return PreparedPlugin(creator, attrs, specs, tactic=tactic)(*inputs, stream=stream)


def cuda_available() -> bool:
    return _native().cuda_device_count() > 0
