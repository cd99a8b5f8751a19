"""Op schemas: the single description of a plugin op.

An ``op.py`` next to each plugin declares one :class:`OpSchema`. The scaffolder
renders C++ fields from it, ``plugkit check`` compares a compiled creator's
fields with it, the ONNX tooling emits nodes from it and the test harness
takes shapes, dtypes and the numerical reference from it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from .errors import SchemaError

# Attribute types, named as the plugin field they become. The values are the
# TensorRT PluginFieldType a creator reports for them (NvInferPluginBase.h).
ATTR_TYPES: dict[str, str] = {
    "float32": "FLOAT32",
    "int32": "INT32",
    "int64": "INT64",
    "float32[]": "FLOAT32",
    "int32[]": "INT32",
    "int64[]": "INT64",
    "string": "CHAR",
}

# Tensor dtypes a plugin may accept, named as numpy/torch name them.
DTYPES = ("float32", "float16", "bfloat16", "int32", "int64", "int8", "uint8", "bool")


def _is_array(attr_type: str) -> bool:
    return attr_type.endswith("[]")


@dataclasses.dataclass(frozen=True)
class Attr:
    """A typed op attribute with a default (every attribute has one)."""

    name: str
    type: str
    default: Any
    doc: str = ""

    def __post_init__(self):
        if self.type not in ATTR_TYPES:
            raise SchemaError(
                f"attribute {self.name!r}: unknown type {self.type!r}; "
                f"use one of {', '.join(ATTR_TYPES)}")
        object.__setattr__(self, "default", self.coerce(self.default))

    @property
    def is_array(self) -> bool:
        return _is_array(self.type)

    @property
    def field_type(self) -> str:
        """The PluginFieldType name a creator reports for this attribute."""
        return ATTR_TYPES[self.type]

    def coerce(self, value: Any) -> Any:
        """Return ``value`` as this attribute's Python type, or raise SchemaError."""
        base = self.type.rstrip("[]")
        if self.is_array:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "tolist"):
                raise SchemaError(f"attribute {self.name!r} is {self.type}; got {value!r}")
            value = list(value.tolist() if hasattr(value, "tolist") else value)
            return tuple(self._coerce_scalar(base, v) for v in value)
        return self._coerce_scalar(base, value)

    def _coerce_scalar(self, base: str, value: Any) -> Any:
        if base == "string":
            if not isinstance(value, str):
                raise SchemaError(f"attribute {self.name!r} is a string; got {value!r}")
            return value
        if isinstance(value, bool) or isinstance(value, (str, bytes)):
            raise SchemaError(f"attribute {self.name!r} is {self.type}; got {value!r}")
        if base.startswith("int"):
            if hasattr(value, "item"):
                value = value.item()
            if not isinstance(value, int):
                raise SchemaError(f"attribute {self.name!r} is {self.type}; got {value!r}")
            bits = 32 if base == "int32" else 64
            if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                raise SchemaError(f"attribute {self.name!r}: {value} does not fit {base}")
            return int(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SchemaError(f"attribute {self.name!r} is {self.type}; got {value!r}") from None


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A named input or output of an op; ``dtype`` fixes its dtype (``"int32"`` for indices or
    lengths), else it has the case's dtype (one of the op's ``dtypes``). An ``optional`` input
    may be left out (it is then None in the references); optional inputs come last, as in ONNX."""

    name: str
    doc: str = ""
    dtype: str | None = None
    optional: bool = False

    def __post_init__(self):
        if self.dtype is not None and self.dtype not in DTYPES:
            raise SchemaError(f"tensor {self.name!r}: unknown dtype {self.dtype!r}; use one of {', '.join(DTYPES)}")


@dataclasses.dataclass(frozen=True)
class OpSchema:
    """Everything plugkit knows about an op, declared once in its ``op.py``.

    ``reference(*inputs, **attrs)`` takes numpy arrays (float inputs arrive as
    float64, whatever the tensor's dtype) and returns one array per output.
    ``torch_reference`` is the same op in PyTorch (on the tensors' own dtypes):
    the benchmark's eager and ``torch.compile`` baselines. ``test_cases`` and
    ``bench_cases`` are dicts ``{"inputs": [shape, ...], "attrs": {...}}``: the
    shapes the generated tests check and the shapes the benchmark times; a case may
    add ``"values"``, what the op.py's own ``random_inputs`` needs beyond shapes
    (the contents of an index input, for example).
    ``check(input_shapes, **attrs)`` states the rules the plugin itself enforces
    on attribute values and input shapes (dims are ints, None where unknown; a
    shape is None where even the rank is unknown): it returns why a node would
    be refused, or None. ``plugkit insert`` writes no node that it refuses.
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attrs: tuple[Attr, ...] = ()
    dtypes: tuple[str, ...] = ("float32", "float16", "bfloat16")
    reference: Callable[..., Any] | None = None
    version: str = "1"
    namespace: str = "plugkit"
    doc: str = ""
    test_cases: tuple[Mapping[str, Any], ...] = ()
    torch_reference: Callable[..., Any] | None = None
    bench_cases: tuple[Mapping[str, Any], ...] = ()
    check: Callable[..., str | None] | None = None

    def __post_init__(self):
        if not self.name.isidentifier():
            raise SchemaError(f"op name {self.name!r} is not an identifier")
        for field in ("inputs", "outputs", "attrs", "dtypes", "test_cases", "bench_cases"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        object.__setattr__(self, "inputs", tuple(
            t if isinstance(t, TensorSpec) else TensorSpec(t) for t in self.inputs))
        object.__setattr__(self, "outputs", tuple(
            t if isinstance(t, TensorSpec) else TensorSpec(t) for t in self.outputs))
        required = [t.name for t in self.inputs if not t.optional]
        if any(t.optional for t in self.inputs[:len(required)]) or any(t.optional for t in self.outputs):
            raise SchemaError(f"op {self.name}: only the last inputs may be optional")
        names = [a.name for a in self.attrs]
        if len(set(names)) != len(names):
            raise SchemaError(f"op {self.name}: duplicate attribute names in {names}")
        unknown = set(self.dtypes) - set(DTYPES)
        if unknown:
            raise SchemaError(f"op {self.name}: unknown dtypes {sorted(unknown)}; use {DTYPES}")

    @property
    def attr_map(self) -> dict[str, Attr]:
        return {a.name: a for a in self.attrs}

    def defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.attrs}

    def resolve_attrs(self, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``attrs``, each coerced to its declared type."""
        attrs = dict(attrs or {})
        unknown = set(attrs) - set(self.attr_map)
        if unknown:
            raise SchemaError(
                f"op {self.name} has no attribute(s) {sorted(unknown)}; "
                f"its attributes are {sorted(self.attr_map) or 'none'}")
        out = self.defaults()
        for name, value in attrs.items():
            out[name] = self.attr_map[name].coerce(value)
        return out

    def fields(self) -> list[tuple[str, str, bool]]:
        """(name, PluginFieldType name, is_array) for each attribute, in order, as a creator
        reports them: a string is a CHAR array (any length), like the arrays."""
        return [(a.name, a.field_type, a.is_array or a.type == "string") for a in self.attrs]

    def refusal(self, input_shapes, attrs: Mapping[str, Any] | None = None) -> str | None:
        """Why the plugin would refuse a node with these input shapes and attributes, or None."""
        try:
            values = self.resolve_attrs(attrs)
        except SchemaError as exc:
            return str(exc)
        return self.check(list(input_shapes), **values) if self.check is not None else None

    def run_reference(self, *inputs, **attrs):
        """The reference outputs as a list, attributes defaulted and typed."""
        if self.reference is None:
            raise SchemaError(f"op {self.name} declares no reference implementation")
        result = self.reference(*inputs, **self.resolve_attrs(attrs))
        return list(result) if isinstance(result, (tuple, list)) else [result]
