"""Tensors of a scaffolded custom op: ``NAME:DTYPE``, output shapes and their data-dependent
dims (``SIZE<=BOUND``)."""
from __future__ import annotations

import dataclasses
import re
import ast
from typing import Sequence

from ..errors import ScaffoldError
from .names import MAX_DIM, MAX_RANK, _short


# --------------------------------------------------------------------------- output shapes (custom)

# Tensor dtypes a custom op may fix for one tensor (NAME:DTYPE), as C++ types and TensorRT enums.
TENSOR_DTYPES = {
    "float32": ("float", "kFLOAT"), "float16": ("__half", "kHALF"), "bfloat16": ("__nv_bfloat16", "kBF16"),
    "int32": ("int32_t", "kINT32"), "int64": ("int64_t", "kINT64"), "bool": ("bool", "kBOOL"),
    "uint8": ("uint8_t", "kUINT8"),
}
INPUT_ONLY_DTYPES = ("bool", "uint8")  # TensorRT's getOutputDataTypes: "kBOOL and kUINT8 are not supported"
MAX_BOUND_LENGTH = 200


def parse_tensor(text: str, what: str, kind: str) -> tuple[str, str | None]:
    """``NAME`` or (custom) ``NAME:DTYPE``: a tensor's name and its fixed dtype (None: the op's dtype)."""
    name, has_dtype, dtype = (part.strip() for part in str(text).partition(":"))
    if not has_dtype:
        return name, None
    if kind != "custom":
        raise ScaffoldError(f"--{what} {text!r}: a tensor's own dtype (NAME:DTYPE) is for --kind custom; a {kind} "
                            f"op's tensors all take --dtypes")
    if dtype == "int8":
        raise ScaffoldError(f"--{what} {text!r}: int8 is TensorRT's quantized type (it needs scales); use int32")
    allowed = [d for d in TENSOR_DTYPES if what == "input" or d not in INPUT_ONLY_DTYPES]
    if what == "output" and dtype in INPUT_ONLY_DTYPES:
        raise ScaffoldError(f"--output {text!r}: TensorRT does not allow {dtype} plugin outputs "
                            f"(getOutputDataTypes); use int32 (e.g. 0/1 for a mask)")
    if dtype not in allowed:
        raise ScaffoldError(f"--{what} {text!r}: unknown dtype {dtype!r}; use one of {', '.join(allowed)}, or none "
                            f"for the op's dtype (--dtypes)")
    return name, dtype


@dataclasses.dataclass(frozen=True)
class Bound:
    """The upper bound of a data-dependent dim: an expression of input dims and whole numbers with
    ``+ - *``, ``min(a, b)`` and ``max(a, b)``, e.g. ``X[0] * X[1]``."""

    text: str  # normalized Python, also what op.py's output_shapes() computes on shapes

    def _tree(self) -> ast.AST:
        return ast.parse(self.text, mode="eval").body

    def sources(self) -> list[tuple[str, int]]:
        return [(n.value.id, _subscript_index(n)) for n in ast.walk(self._tree()) if isinstance(n, ast.Subscript)]

    def cpp_expr(self, inputs: Sequence[str]) -> str:
        """An IExprBuilder expression (for outputShapes)."""
        ops = {ast.Add: "kSUM", ast.Sub: "kSUB", ast.Mult: "kPROD", "min": "kMIN", "max": "kMAX"}

        def emit(node) -> str:
            if isinstance(node, ast.BinOp):
                a, b, op = node.left, node.right, ops[type(node.op)]
            elif isinstance(node, ast.Call):
                (a, b), op = node.args, ops[node.func.id]
            elif isinstance(node, ast.Constant):
                return f"exprs.constant({node.value})"
            else:
                i, k = inputs.index(node.value.id), _subscript_index(node)
                return f"in[{i}].d[{k if k >= 0 else f'in[{i}].nbDims - {-k}'}]"
            return f"exprs.operation(nvinfer1::DimensionOperation::{op}, *{emit(a)}, *{emit(b)})"
        return emit(self._tree())

    def cpp_value(self, inputs: Sequence[str]) -> str:
        """The same bound on an enqueue's concrete dims (int64_t)."""
        def emit(node) -> str:
            if isinstance(node, ast.BinOp):
                op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}[type(node.op)]
                return f"({emit(node.left)} {op} {emit(node.right)})"
            if isinstance(node, ast.Call):
                return f"std::{node.func.id}<int64_t>({emit(node.args[0])}, {emit(node.args[1])})"
            if isinstance(node, ast.Constant):
                return f"int64_t{{{node.value}}}"
            i, k = inputs.index(node.value.id), _subscript_index(node)
            return f"t.inputDesc[{i}].dims.d[{k if k >= 0 else f't.inputDesc[{i}].dims.nbDims - {-k}'}]"
        text = emit(self._tree())
        return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def _subscript_index(node: ast.Subscript) -> int:
    index = node.slice
    if isinstance(index, ast.UnaryOp):
        return -index.operand.value
    return index.value


def parse_bound(text: str, size: str, inputs: Sequence[str]) -> Bound:
    """Check an upper bound ``text`` (of size output ``size``) and return it normalized."""
    why = (f"the upper bound of {size} ({_short(text)}) must be an expression of input dims (e.g. "
           f"{inputs[0]}[0] or {inputs[0]}[-1]) and whole numbers, with +, -, *, min(a, b), max(a, b)")
    if len(text) > MAX_BOUND_LENGTH:
        raise ScaffoldError(f"{why}; it is {len(text)} characters long, the limit is {MAX_BOUND_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ScaffoldError(why) from None

    def check(node) -> None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            check(node.left)
            check(node.right)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max")
              and len(node.args) == 2 and not node.keywords):
            for arg in node.args:
                check(arg)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            if node.value > MAX_DIM:
                raise ScaffoldError(f"{why}: {_short(str(node.value))} is larger than a dim can be ({MAX_DIM})")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            index = node.slice
            negative = isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub)
            value = index.operand if negative else index
            if node.value.id not in inputs:
                raise ScaffoldError(f"{why}: {node.value.id!r} is not an input (inputs: {', '.join(inputs)})")
            if not (isinstance(value, ast.Constant) and type(value.value) is int):
                raise ScaffoldError(why)
            if not -MAX_RANK <= (-value.value if negative else value.value) < MAX_RANK:
                raise ScaffoldError(f"{why}: tensors have at most {MAX_RANK} dims, so an index is {-MAX_RANK} to "
                                    f"{MAX_RANK - 1}")
        else:
            raise ScaffoldError(why)
    check(tree)
    return Bound(ast.unparse(tree))


@dataclasses.dataclass(frozen=True)
class Dim:
    """One output dim: a constant, dim `index` of input `source`, or data-dependent: the value of
    size output `size` (generated, 0-d INT32), at most `bound`."""

    value: int | None = None
    source: str | None = None
    index: int | None = None
    size: str | None = None
    bound: Bound | None = None


@dataclasses.dataclass(frozen=True)
class OutputShape:
    """An output's shape: `like` (an input's whole shape) or a list of dims."""

    like: str | None = None
    dims: tuple[Dim, ...] = ()

    def needed_rank(self, source: str) -> int:
        """The rank input `source` needs for this shape to exist."""
        indices = [d.index for d in self.dims if d.source == source]
        indices += [k for d in self.dims if d.bound for s, k in d.bound.sources() if s == source]
        return max((k + 1 if k >= 0 else -k for k in indices), default=0)

    @property
    def data_dependent(self) -> int | None:
        """The index of the data-dependent dim, or None."""
        return next((i for i, d in enumerate(self.dims) if d.size), None)


def _split_dims(spec: str) -> list[str]:
    """Comma-separated dims; commas inside parentheses (min(a, b)) belong to their dim."""
    items, depth, current = [], 0, ""
    for c in spec:
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += c
    return items + [current]


def parse_output_shape(text: str, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[str, OutputShape]:
    """``Y=X`` (X's shape) or ``Z=X[0],4`` (dims: constants or input dims, negative from the end), with at
    most one data-dependent dim ``SIZE<=BOUND`` (``Y=K<=X[0]*X[1],2``): SIZE names the generated size output."""
    output, eq, spec = (part.strip() for part in text.partition("="))
    if not eq or output not in outputs:
        raise ScaffoldError(f"--output-shape {text!r}: write OUTPUT=SHAPE with OUTPUT one of {', '.join(outputs)}, "
                            f"e.g. {outputs[0]}={inputs[0]} or {outputs[0]}={inputs[0]}[0],4")
    if spec in inputs:
        return output, OutputShape(like=spec)
    dims = []
    for item in (s.strip() for s in _split_dims(spec)):
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)\[(-?\d{1,4})\]", item)
        size = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)\s*<=(.*)", item, re.DOTALL)
        if match and match.group(1) in inputs:
            index = int(match.group(2))
            if not -MAX_RANK <= index < MAX_RANK:
                raise ScaffoldError(f"--output-shape {text!r}: {item} is out of range; tensors have at most "
                                    f"{MAX_RANK} dims, so an index is {-MAX_RANK} to {MAX_RANK - 1}")
            dims.append(Dim(source=match.group(1), index=index))
        elif re.fullmatch(r"\d+", item):
            if len(item) > 19 or int(item) > MAX_DIM:
                raise ScaffoldError(f"--output-shape {text!r}: {_short(item)} is larger than a dim can be "
                                    f"({MAX_DIM})")
            dims.append(Dim(value=int(item)))
        elif size:
            if any(d.size for d in dims):
                raise ScaffoldError(f"--output-shape {text!r}: an output has at most one data-dependent dim "
                                    f"(SIZE<=BOUND); make the others input dims or sizes")
            try:
                bound = parse_bound(size.group(2).strip(), size.group(1), inputs)
            except ScaffoldError as exc:
                raise ScaffoldError(f"--output-shape {text!r}: {exc}") from None
            dims.append(Dim(size=size.group(1), bound=bound))
        else:
            raise ScaffoldError(f"--output-shape {text!r}: {item!r} is neither a size nor an input dim such as "
                                f"{inputs[0]}[0] or {inputs[0]}[-1] (inputs: {', '.join(inputs)}), nor a "
                                f"data-dependent dim such as K<={inputs[0]}[0]")
    if not 1 <= len(dims) <= MAX_RANK:
        raise ScaffoldError(f"--output-shape {text!r}: an output has 1 to {MAX_RANK} dims")
    return output, OutputShape(dims=tuple(dims))


@dataclasses.dataclass(frozen=True)
class SizeOutput:
    """A generated size output (IExprBuilder::declareSizeTensor): 0-d INT32, after the op's outputs."""

    name: str
    bound: Bound

