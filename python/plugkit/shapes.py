"""Shape specs, written the way trtexec users write them.

``1x3x32x64`` is one shape. ``input:1x3x32x64,1x3x32x448,1x3x32x1024`` is an
optimization-profile range (MIN,OPT,MAX) for the input called ``input``;
``input:1x3x32x64`` alone fixes it (MIN = OPT = MAX). A name that itself holds
a colon (``input:0``, TensorFlow style) is quoted as trtexec wants it
(``'input:0':1x3``) or simply left as is: the shape part never holds a colon,
so the spec is split at its last one.

Nothing here needs TensorRT; the checks against a model take its input
dimensions as plain lists (an int for a fixed dimension, a string or None for
a dynamic one).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

from .errors import ShapeSpecError


Shape = tuple[int, ...]


def parse_shape(text: str, *, what: str = "shape") -> Shape:
    """``"1x3x32x64"`` -> ``(1, 3, 32, 64)``. ``"scalar"`` or ``""`` is rank 0."""
    text = text.strip()
    if text in ("", "scalar"):
        return ()
    dims = []
    for part in text.lower().split("x"):
        part = part.strip()
        try:
            dim = int(part)
        except ValueError:
            raise ShapeSpecError(
                f"{what} {text!r}: {part!r} is not a whole number; write dimensions "
                f"separated by 'x', e.g. 1x3x224x224") from None
        if dim < 0:
            raise ShapeSpecError(
                f"{what} {text!r}: dimension {dim} is negative; a shape given here is "
                f"concrete (dynamic dimensions are what --shapes gives a range for)")
        dims.append(dim)
    return tuple(dims)


def format_shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if len(shape) else "scalar"


@dataclasses.dataclass(frozen=True)
class ShapeRange:
    """An optimization-profile range of one input: min <= opt <= max, per dimension."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self):
        ranks = {len(self.min), len(self.opt), len(self.max)}
        if len(ranks) != 1:
            raise ShapeSpecError(
                f"input {self.name!r}: MIN, OPT and MAX have different ranks "
                f"({format_shape(self.min)}, {format_shape(self.opt)}, {format_shape(self.max)})")
        for axis, (lo, mid, hi) in enumerate(zip(self.min, self.opt, self.max)):
            if not lo <= mid <= hi:
                raise ShapeSpecError(
                    f"input {self.name!r}: dimension {axis} must satisfy MIN <= OPT <= MAX; "
                    f"got {lo}, {mid}, {hi}")

    @property
    def is_fixed(self) -> bool:
        return self.min == self.opt == self.max

    def contains(self, shape: Sequence[int]) -> bool:
        shape = tuple(shape)
        return len(shape) == len(self.min) and all(
            lo <= d <= hi for d, lo, hi in zip(shape, self.min, self.max))

    def __str__(self):
        if self.is_fixed:
            return f"{self.name}:{format_shape(self.opt)}"
        return (f"{self.name}:{format_shape(self.min)},{format_shape(self.opt)},"
                f"{format_shape(self.max)}")

    def to_dict(self) -> dict:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt),
                "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ShapeRange":
        return cls(data["name"], tuple(data["min"]), tuple(data["opt"]), tuple(data["max"]))


def _split_name(spec: str) -> tuple[str, str]:
    spec = spec.strip()
    if spec[:1] in "'\"":
        quote = spec[0]
        end = spec.find(quote, 1)
        if end < 0 or spec[end + 1:end + 2] != ":":
            raise ShapeSpecError(f"shape spec {spec!r}: unbalanced quote around the input name")
        return spec[1:end], spec[end + 2:]
    name, sep, shapes = spec.rpartition(":")
    if not sep or not name:
        raise ShapeSpecError(
            f"shape spec {spec!r} names no input; write NAME:MIN,OPT,MAX, "
            f"e.g. input:1x3x32x64,1x3x32x448,1x3x32x1024")
    return name, shapes


def parse_shape_range(spec: str) -> ShapeRange:
    """``"input:1x3x32x64,1x3x32x448,1x3x32x1024"`` or ``"input:1x3x32x64"``."""
    name, shapes = _split_name(spec)
    parts = [p for p in shapes.split(",")]
    if len(parts) == 1:
        shape = parse_shape(parts[0], what=f"input {name!r} shape")
        return ShapeRange(name, shape, shape, shape)
    if len(parts) != 3:
        raise ShapeSpecError(
            f"input {name!r}: give one shape (fixed) or three, MIN,OPT,MAX; got {len(parts)} "
            f"in {spec!r}")
    lo, mid, hi = (parse_shape(p, what=f"input {name!r} {label} shape")
                   for p, label in zip(parts, ("MIN", "OPT", "MAX")))
    return ShapeRange(name, lo, mid, hi)


def parse_shape_specs(specs: Iterable[str] | None) -> dict[str, ShapeRange]:
    """Several ``--shapes`` values (each may also hold several specs joined by
    spaces) -> ranges by input name; an input given twice is an error."""
    ranges: dict[str, ShapeRange] = {}
    for spec in specs or ():
        for item in spec.split():
            shape_range = parse_shape_range(item)
            if shape_range.name in ranges:
                raise ShapeSpecError(f"input {shape_range.name!r} is given more than once in --shapes")
            ranges[shape_range.name] = shape_range
    return ranges


def parse_run_shapes(specs: Iterable[str] | None) -> dict[str, Shape]:
    """``run --shapes name:1x3x32x64``: one concrete shape per input."""
    shapes: dict[str, Shape] = {}
    for name, shape_range in parse_shape_specs(specs).items():
        if not shape_range.is_fixed:
            raise ShapeSpecError(
                f"input {name!r}: `run --shapes` takes one shape per input (the shape to run "
                f"with), not a MIN,OPT,MAX range")
        shapes[name] = shape_range.opt
    return shapes


ModelDims = Sequence["int | str | None"]


def is_dynamic(dim) -> bool:
    return not isinstance(dim, int) or dim < 0


def check_ranges_against_model(ranges: Mapping[str, ShapeRange],
                               model_inputs: Mapping[str, ModelDims]) -> dict[str, ShapeRange]:
    """Check ``--shapes`` against the model's inputs before a build.

    Every range must name an input, have its rank and agree with its fixed
    dimensions; every input with a dynamic dimension needs a range (TensorRT
    cannot build a profile without one). Returns the ranges, unchanged.
    """
    for name, shape_range in ranges.items():
        if name not in model_inputs:
            known = ", ".join(model_inputs) or "none"
            raise ShapeSpecError(f"--shapes names input {name!r}, which the model does not have; "
                                 f"its inputs are: {known}")
        dims = list(model_inputs[name])
        if len(dims) != len(shape_range.min):
            raise ShapeSpecError(
                f"input {name!r} has rank {len(dims)} ({describe_dims(dims)}) but --shapes gives "
                f"rank {len(shape_range.min)} ({shape_range})")
        for axis, dim in enumerate(dims):
            if is_dynamic(dim):
                continue
            for label, shape in (("MIN", shape_range.min), ("OPT", shape_range.opt),
                                 ("MAX", shape_range.max)):
                if shape[axis] != dim:
                    raise ShapeSpecError(
                        f"input {name!r}: dimension {axis} is fixed to {dim} in the model, but "
                        f"the {label} shape in --shapes has {shape[axis]}")
    missing = [name for name, dims in model_inputs.items()
               if any(is_dynamic(d) for d in dims) and name not in ranges]
    if missing:
        examples = " ".join(f"--shapes {n}:{_example(model_inputs[n])}" for n in missing)
        raise ShapeSpecError(
            "these inputs have dynamic dimensions and need an optimization-profile range: "
            + ", ".join(f"{n} ({describe_dims(model_inputs[n])})" for n in missing)
            + f"; add for example {examples}")
    return dict(ranges)


def describe_dims(dims: ModelDims) -> str:
    return "x".join("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in dims) \
        if len(dims) else "scalar"


def _example(dims: ModelDims) -> str:
    lo = [1 if is_dynamic(d) else d for d in dims]
    hi = [8 if is_dynamic(d) else d for d in dims]
    return f"{format_shape(lo)},{format_shape(lo)},{format_shape(hi)}"


def check_shape_in_range(name: str, shape: Sequence[int], shape_range: ShapeRange) -> None:
    """Raise a clear error when a run-time shape falls outside the engine's profile."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(shape_range.min):
        raise ShapeSpecError(
            f"input {name!r} has shape {format_shape(shape)} (rank {len(shape)}); the engine "
            f"expects rank {len(shape_range.min)}, within {shape_range}")
    bad = [axis for axis, (d, lo, hi) in enumerate(zip(shape, shape_range.min, shape_range.max))
           if not lo <= d <= hi]
    if bad:
        axis = bad[0]
        raise ShapeSpecError(
            f"input {name!r} has shape {format_shape(shape)}, outside the engine's optimization "
            f"profile: dimension {axis} is {shape[axis]}, allowed {shape_range.min[axis]}.."
            f"{shape_range.max[axis]} (profile MIN {format_shape(shape_range.min)}, MAX "
            f"{format_shape(shape_range.max)}); rebuild the engine with a wider --shapes range")


def onnx_input_dims(model) -> dict[str, list]:
    """The graph inputs of an ``onnx.ModelProto`` (initializers excluded) as
    name -> dims, a dim being an int, a symbolic name, or None."""
    initializers = {init.name for init in model.graph.initializer}
    inputs: dict[str, list] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = []
        if tensor_type.HasField("shape"):
            for dim in tensor_type.shape.dim:
                if dim.HasField("dim_value"):
                    dims.append(int(dim.dim_value))
                elif dim.HasField("dim_param"):
                    dims.append(dim.dim_param)
                else:
                    dims.append(None)
        inputs[value.name] = dims
    return inputs
