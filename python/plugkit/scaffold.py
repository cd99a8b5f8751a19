"""``plugkit new``: a complete plugin from the templates in ``templates/``.

:func:`plan` turns a request (op name, kind, inputs, outputs, attributes,
dtypes, expression) into an :class:`OpSpec`, refusing names that cannot work
and explaining why; :func:`render` renders every file in memory; :func:`write`
writes them, refusing to overwrite without ``force``. A refused request writes
nothing: every check runs before the first file is written.

Kinds:

- ``elementwise``: inputs of one shape (or broadcasting to the first input's),
  one output; ``expr`` (e.g. ``"x * sigmoid(x)"``) becomes the CUDA kernel's
  math and the numpy reference (see :mod:`plugkit.expr`).
- ``rowwise``: one input; a reduction over the last axis, then an epilogue per
  element. Generated as softmax, with the reduction and epilogue as hooks.
- ``custom``: any inputs and outputs, output shapes declared with
  :class:`OutputShape`; the kernel copies input 0 to output 0 until the op is
  written in its place.
"""
from __future__ import annotations

import dataclasses
import keyword
import math
import pkgutil
import re
import ast
import json
from pathlib import Path
from typing import Any, Sequence

from .errors import PlugkitError, SchemaError
from .expr import FUNCTIONS, Translation, free_names, translate
from .ops import _SOURCE_ROOT
from .schema import ATTR_TYPES, Attr

KINDS = ("elementwise", "rowwise", "custom")
KERNEL_DTYPES = ("float32", "float16", "bfloat16")  # what dispatchFloat covers
MAX_ELEMENTWISE_INPUTS = 8

CPP_KEYWORDS = frozenset("""
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t class
    compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype
    default delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline
    int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public register
    reinterpret_cast requires return short signed sizeof static static_assert static_cast struct switch template
    this thread_local throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t
    while xor xor_eq
""".split())

# Identifiers of namespace plugkit that a plugin's namespace plugkit::<snake_name> would collide with,
# and names of the project's own folders and files.
SDK_NAMES = frozenset("""
    plugkit detail log volume field guarded broadcast sdk common plugins tests templates scaffold
""".split())
# Op types the SDK or the generated code already uses as C++ names.
SDK_TYPES = frozenset("""
    Plugin Creator Tensors Error Field FieldTraits IoRule TypeTag Vec Broadcast Problem RowState
""".split())
# Member names of a generated kernel's Problem, and names the generated code uses beside the op's.
RESERVED_TENSOR_NAMES = frozenset("""
    type count rows cols p np T VEC V t i k in out exprs stream workspace attrs self dims shape shapes first
    row active state total col step compute combine epilogue launch math torch
""".split())
# Attributes are members of the attribute struct and of Problem, and keyword arguments of `reference`.
RESERVED_ATTR_NAMES = frozenset("type count rows cols fields validate np math torch self".split())

# C++ types of attribute types, for op.py and the CLI's help.
_CPP_TYPES = {
    "float32": "float", "int32": "int32_t", "int64": "int64_t", "float32[]": "std::vector<float>",
    "int32[]": "std::vector<int32_t>", "int64[]": "std::vector<int64_t>", "string": "std::string",
}


class ScaffoldError(PlugkitError, ValueError):
    """A `plugkit new` request that cannot produce a working plugin; the message says why."""


# --------------------------------------------------------------------------- names

def snake_case(name: str) -> str:
    """MyOp -> my_op, RMSNorm -> rms_norm, my_op -> my_op."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def class_name(snake: str) -> str:
    """my_op -> MyOpPlugin (as rms_norm -> RmsNormPlugin)."""
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_")) + "Plugin"


def _plugkit_module_names() -> set[str]:
    import plugkit
    names = set()
    for package in (plugkit,):
        for info in pkgutil.walk_packages(package.__path__):
            names.add(info.name.rsplit(".", 1)[-1].lstrip("_"))
    return names


def _onnx_op_types() -> set[str]:
    try:
        import onnx.defs
    except ImportError:  # onnx is a dependency; without it the check is skipped, not the scaffold
        return set()
    return {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx")}


def check_op_name(name: str) -> None:
    """Refuse op names that cannot become a folder, a C++ class and namespace, and an op type."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name or ""):
        raise ScaffoldError(
            f"op name {name!r} is not an identifier: use letters, digits and underscores, starting with a "
            f"letter (e.g. MyOp)")
    snake = snake_case(name)
    if "__" in name or "__" in snake or name.endswith("_"):
        raise ScaffoldError(f"op name {name!r}: double and trailing underscores are reserved in C++; use e.g. "
                            f"{name.strip('_').replace('__', '_') or 'MyOp'}")
    for candidate in {name, snake}:
        if candidate in CPP_KEYWORDS:
            raise ScaffoldError(f"op name {name!r}: {candidate!r} is a C++ keyword (the plugin's namespace is "
                                f"plugkit::{snake}); pick another name")
        if keyword.iskeyword(candidate) or keyword.issoftkeyword(candidate):
            raise ScaffoldError(f"op name {name!r}: {candidate!r} is a Python keyword; pick another name")
    if snake in SDK_NAMES or name in SDK_TYPES or snake in _plugkit_module_names():
        raise ScaffoldError(f"op name {name!r} is reserved: {snake!r} names a part of plugkit itself "
                            f"(a module, SDK name or folder); pick another name, e.g. My{name[:1].upper()}{name[1:]}")
    if name in _onnx_op_types():
        raise ScaffoldError(
            f"op name {name!r} is an ONNX standard operator: TensorRT's ONNX parser imports such a node as the "
            f"built-in op and never asks the plugin registry; pick another name, e.g. {name}Plugin or Custom{name}")


def _check_identifier(what: str, name: str, reserved=RESERVED_TENSOR_NAMES) -> None:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name or ""):
        raise ScaffoldError(f"{what} {name!r} is not an identifier (letters, digits, underscores; a letter first)")
    if "__" in name:
        raise ScaffoldError(f"{what} {name!r}: double underscores are reserved in C++")
    if name in CPP_KEYWORDS or keyword.iskeyword(name):
        raise ScaffoldError(f"{what} {name!r} is a C++ or Python keyword; pick another name")
    if name in FUNCTIONS:
        raise ScaffoldError(f"{what} {name!r} is the name of an --expr function; pick another name")
    if name in reserved or name.endswith(("Count", "Broadcast")):
        raise ScaffoldError(f"{what} {name!r} is a name the generated code uses for itself; pick another name")


def _check_version(version: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", version or ""):
        raise ScaffoldError(f"version {version!r}: use digits, letters, '.', '_' or '-' (e.g. 1 or 2.1)")


def _check_namespace(namespace: str) -> None:
    if namespace and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:]*", namespace):
        raise ScaffoldError(f"namespace {namespace!r}: use letters, digits, '_', '.' or '::' (or '' for none)")
    if '"' in namespace or "\\" in namespace:
        raise ScaffoldError(f"namespace {namespace!r} may not contain quotes or backslashes")


# --------------------------------------------------------------------------- attributes

def parse_attr(text: str) -> Attr:
    """``name:type=default`` (or ``name:type``, default 0 / empty) as an :class:`Attr`.
    Arrays are comma separated: ``axes:int64[]=0,1``."""
    head, has_default, default_text = text.partition("=")
    name, has_type, type_name = head.partition(":")
    name, type_name = name.strip(), type_name.strip()
    if not has_type or not type_name:
        raise ScaffoldError(f"--attr {text!r}: give a type, as in {name or 'alpha'}:float32=1.0 "
                            f"(types: {', '.join(ATTR_TYPES)})")
    _check_identifier("attribute", name, RESERVED_ATTR_NAMES)
    if type_name not in ATTR_TYPES:
        raise ScaffoldError(f"--attr {text!r}: unknown type {type_name!r}; use one of {', '.join(ATTR_TYPES)}")
    base = type_name.rstrip("[]")

    def scalar(item: str):
        item = item.strip()
        try:
            if base.startswith("int"):
                return int(item, 0)
            value = float(item)
        except ValueError:
            raise ScaffoldError(f"--attr {text!r}: {item!r} is not a {base} value") from None
        if not math.isfinite(value):
            raise ScaffoldError(f"--attr {text!r}: the default must be finite")
        return value

    if type_name == "string":
        if any(not (32 <= ord(c) < 127) or c in '"\\' for c in default_text):
            raise ScaffoldError(f"--attr {text!r}: string defaults are printable ASCII without quotes or backslashes")
        default: Any = default_text
    elif type_name.endswith("[]"):
        default = [scalar(v) for v in default_text.split(",")] if default_text.strip() else []
    else:
        default = scalar(default_text) if has_default else 0
    try:
        return Attr(name, type_name, default)
    except SchemaError as exc:
        raise ScaffoldError(f"--attr {text!r}: {exc}") from None


def _cpp_float(value: float) -> str:
    text = repr(float(value))
    return text + "F" if ("." in text or "e" in text) else text + ".0F"


def _cpp_int(value: int, type_name: str) -> str:
    if type_name.startswith("int64") and value == -(2 ** 63):
        return "INT64_MIN"
    if type_name.startswith("int32") and value == -(2 ** 31):
        return "INT32_MIN"
    return str(value)


def cpp_default(attr: Attr) -> str:
    """The C++ default member initializer of an attribute: `= 1e-05F`, `{0, 1}`, `= "fast"`."""
    if attr.type == "string":
        return f' = "{attr.default}"' if attr.default else ""
    if attr.is_array:
        items = [_cpp_float(v) if attr.type.startswith("float") else _cpp_int(v, attr.type) for v in attr.default]
        return "{" + ", ".join(items) + "}" if items else ""
    if attr.type == "float32":
        return f" = {_cpp_float(attr.default)}"
    return f" = {_cpp_int(attr.default, attr.type)}"


def py_literal(value: Any) -> str:
    """A Python literal in the project's style: strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(map(py_literal, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(map(py_literal, value)) + "]"
    return repr(value)


def py_default(attr: Attr) -> str:
    return py_literal(attr.default)


def other_value(attr: Attr) -> Any:
    """A valid value that differs from the default: what the generated tests set."""
    if attr.type == "string":
        return attr.default + "x"
    if attr.is_array:
        extra = 1.5 if attr.type.startswith("float") else 1
        return list(attr.default) + [extra]
    if attr.type == "float32":
        return attr.default * 2 + 0.5
    limit = 2 ** 31 - 1 if attr.type == "int32" else 2 ** 63 - 1
    return attr.default + 1 if attr.default < limit else attr.default - 1


# --------------------------------------------------------------------------- output shapes (custom)

@dataclasses.dataclass(frozen=True)
class Dim:
    """One output dim: a constant, or dim `index` of input `source`."""

    value: int | None = None
    source: str | None = None
    index: int | None = None


@dataclasses.dataclass(frozen=True)
class OutputShape:
    """An output's shape: `like` (an input's whole shape) or a list of dims."""

    like: str | None = None
    dims: tuple[Dim, ...] = ()

    def needed_rank(self, source: str) -> int:
        """The rank input `source` needs for this shape to exist."""
        return max((d.index + 1 if d.index >= 0 else -d.index for d in self.dims if d.source == source), default=0)


def parse_output_shape(text: str, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[str, OutputShape]:
    """``Y=X`` (X's shape) or ``Z=X[0],4`` (dims: constants or input dims, negative from the end)."""
    output, eq, spec = (part.strip() for part in text.partition("="))
    if not eq or output not in outputs:
        raise ScaffoldError(f"--output-shape {text!r}: write OUTPUT=SHAPE with OUTPUT one of {', '.join(outputs)}, "
                            f"e.g. {outputs[0]}={inputs[0]} or {outputs[0]}={inputs[0]}[0],4")
    if spec in inputs:
        return output, OutputShape(like=spec)
    dims = []
    for item in (s.strip() for s in spec.split(",")):
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)\[(-?\d+)\]", item)
        if match and match.group(1) in inputs:
            dims.append(Dim(source=match.group(1), index=int(match.group(2))))
        elif re.fullmatch(r"\d+", item):
            dims.append(Dim(value=int(item)))
        else:
            raise ScaffoldError(f"--output-shape {text!r}: {item!r} is neither a size nor an input dim such as "
                                f"{inputs[0]}[0] or {inputs[0]}[-1] (inputs: {', '.join(inputs)})")
    if not 1 <= len(dims) <= 8:
        raise ScaffoldError(f"--output-shape {text!r}: an output has 1 to 8 dims")
    return output, OutputShape(dims=tuple(dims))


# --------------------------------------------------------------------------- the op

@dataclasses.dataclass(frozen=True)
class OpSpec:
    """Everything the templates need, checked."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[Attr, ...]
    dtypes: tuple[str, ...]
    version: str = "1"
    namespace: str = "plugkit"
    expr: Translation | None = None
    output_shapes: tuple[OutputShape, ...] = ()

    @property
    def snake(self) -> str:
        return snake_case(self.name)

    @property
    def class_name(self) -> str:
        return class_name(self.snake)

    @property
    def attrs_name(self) -> str:
        return self.class_name[: -len("Plugin")] + "Attrs"

    @property
    def kernel_name(self) -> str:
        """my_op -> myOpKernel."""
        head, *rest = self.snake.split("_")
        return head + "".join(part[:1].upper() + part[1:] for part in rest) + "Kernel"

    @property
    def field_table(self) -> str:
        """The `fields` initializer of the attribute struct, wrapped as the SDK's code is."""
        fields = [f'field("{a.name}", &{self.attrs_name}::{a.name})' for a in self.attrs]
        line = f"    static constexpr auto fields = fieldTable({', '.join(fields)});"
        if len(line) <= 120:
            return line
        return "    static constexpr auto fields = fieldTable(\n" + ",\n".join(" " * 8 + f for f in fields) + ");"

    @property
    def cpp_namespace(self) -> str:
        return f"plugkit::{self.snake}"

    @property
    def expr_attrs(self) -> list[Attr]:
        """Scalar attributes the expression uses, in declaration order."""
        used = set(self.expr.names) if self.expr else set()
        return [a for a in self.attrs if a.name in used]

    @property
    def type_mask(self) -> str:
        """kIoRules' mask for the dtypes: an SDK constant where one fits."""
        if set(self.dtypes) == set(KERNEL_DTYPES):
            return "kFloatTypes"
        if tuple(self.dtypes) == ("float32",):
            return "kFloat32Only"
        enum = {"float32": "kFLOAT", "float16": "kHALF", "bfloat16": "kBF16"}
        return " | ".join(f"typeBit(nvinfer1::DataType::{enum[d]})" for d in self.dtypes)

    def files(self) -> dict[str, str]:
        """Template -> path relative to the output root."""
        folder = f"plugins/{self.snake}"
        return {
            f"{self.kind}/plugin.cpp.j2": f"{folder}/{self.snake}_plugin.cpp",
            f"{self.kind}/kernel.h.j2": f"{folder}/{self.snake}_kernel.h",
            f"{self.kind}/kernel.cu.j2": f"{folder}/{self.snake}_kernel.cu",
            f"{self.kind}/op.py.j2": f"{folder}/op.py",
            "README.md.j2": f"{folder}/README.md",
            "test_op.py.j2": f"tests/test_{self.snake}.py",
        }


def _test_cases(spec: OpSpec) -> list[dict]:
    n = len(spec.inputs)
    if spec.kind == "elementwise":
        cases = [{"inputs": [s] * n} for s in [(1,), (3, 7), (2, 5, 64), (4, 4096), (1000003,), (0, 16)]]
        if n > 1:
            cases += [{"inputs": [x] + [b] * (n - 1)}
                      for x, b in [((3, 7), (7,)), ((2, 5, 64), (5, 1)), ((4, 4096), (1,)), ((2, 3, 40), (2, 1, 40))]]
        if spec.expr_attrs:
            cases.append({"inputs": [(8, 1024)] * n, "attrs": {a.name: other_value(a) for a in spec.expr_attrs}})
        return cases
    if spec.kind == "rowwise":
        return [{"inputs": [s]} for s in [(1, 1), (3, 7), (2, 5, 1000), (4, 4096), (64, 33), (2, 70000), (0, 16)]]
    rank = max([2] + [shape.needed_rank(name) for shape in spec.output_shapes for name in spec.inputs])
    bases = [(3, 7), (2, 5, 64), (4, 4096), (0, 16)]
    return [{"inputs": [(2,) * (rank - len(s)) + s] * n} for s in bases]


def plan(name: str, *, kind: str = "elementwise", inputs: Sequence[str] = (), outputs: Sequence[str] = (),
         attrs: Sequence[Attr | str] = (), dtypes: Sequence[str] = KERNEL_DTYPES, expr: str | None = None,
         output_shapes: Sequence[str] = (), version: str = "1", namespace: str = "plugkit") -> OpSpec:
    """Check a request and return the op it describes; raises ScaffoldError saying why not."""
    check_op_name(name)
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    _check_version(version)
    _check_namespace(namespace)
    attrs = tuple(a if isinstance(a, Attr) else parse_attr(a) for a in attrs)
    dtypes = tuple(dtypes)
    unknown = [d for d in dtypes if d not in KERNEL_DTYPES]
    if unknown or not dtypes:
        raise ScaffoldError(f"dtypes {', '.join(unknown) or '(none)'}: generated kernels take "
                            f"{', '.join(KERNEL_DTYPES)} (a non-empty subset)")
    if len(set(dtypes)) != len(dtypes):
        raise ScaffoldError(f"dtypes {', '.join(dtypes)} lists one twice")
    if expr is not None and kind != "elementwise":
        raise ScaffoldError(f"--expr is for --kind elementwise; a {kind} op's math is written in its kernel")
    if output_shapes and kind != "custom":
        raise ScaffoldError(f"--output-shape is for --kind custom; a {kind} op's output has its input's shape")

    scalars = [a.name for a in attrs if not a.is_array and a.type != "string"]
    translation = None
    if kind == "elementwise":
        if not inputs:  # the names of the expression that are not attributes, in order of use
            attr_names = {a.name for a in attrs}
            inputs = tuple(n for n in free_names(expr) if n not in attr_names) if expr else ("x",)
        if expr is None:
            expr = " + ".join(inputs)
    inputs = tuple(inputs) or ("X",)
    outputs = tuple(outputs) or (("y",) if kind == "elementwise" and inputs[0].islower() else ("Y",))
    for what, names in (("input", inputs), ("output", outputs)):
        for n in names:
            _check_identifier(what, n)
    everything = list(inputs) + list(outputs) + [a.name for a in attrs]
    duplicates = sorted({n for n in everything if everything.count(n) > 1})
    if duplicates:
        raise ScaffoldError(f"{', '.join(duplicates)}: inputs, outputs and attributes need distinct names")

    if kind == "elementwise":
        if len(outputs) != 1:
            raise ScaffoldError("an elementwise op has one output; use --kind custom for more")
        if not 1 <= len(inputs) <= MAX_ELEMENTWISE_INPUTS:
            raise ScaffoldError(f"an elementwise op has 1 to {MAX_ELEMENTWISE_INPUTS} inputs; got {len(inputs)}")
        translation = translate(expr, inputs, scalars, [a.name for a in attrs if a.name not in scalars])
        unused = [n for n in inputs if n not in translation.names]
        if unused:
            raise ScaffoldError(f"--expr {expr!r} does not use input(s) {', '.join(unused)}; use every input, "
                                f"or leave it out")
    elif kind == "rowwise":
        if len(inputs) != 1 or len(outputs) != 1:
            raise ScaffoldError("a rowwise op has one input and one output; use --kind custom for more")

    shapes: tuple[OutputShape, ...] = ()
    if kind == "custom":
        declared: dict[str, OutputShape] = {}
        for text in output_shapes:
            out, shape = parse_output_shape(text, inputs, outputs)
            if out in declared:
                raise ScaffoldError(f"--output-shape for {out} is given twice")
            declared[out] = shape
        shapes = tuple(declared.get(o, OutputShape(like=inputs[0])) for o in outputs)
    return OpSpec(name, kind, tuple(inputs), outputs, attrs, dtypes, version, namespace, translation, shapes)


# --------------------------------------------------------------------------- rendering and writing

def templates_dir() -> Path:
    path = _SOURCE_ROOT / "templates"
    if not (path / "test_op.py.j2").is_file():
        raise ScaffoldError(f"plugkit's templates are missing ({path}); reinstall plugkit from its repository "
                            f"(pip install -e .)")
    return path


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(cpp_type=lambda a: _CPP_TYPES[a.type], cpp_default=cpp_default, py_default=py_default,
                       other_value=other_value, add_suffix=lambda s, suffix: s + suffix, shape_doc=_shape_doc,
                       code=lambda s: f"`{s}`", py_repr=py_literal, field_check=_field_check,
                       other_values=lambda attrs: {a.name: other_value(a) for a in attrs},
                       py_tuple=lambda s: repr(tuple(s)),
                       py_dict=lambda d: "{" + ", ".join(f'"{k}": {py_literal(v)}' for k, v in d.items()) + "}")
    env.globals.update(repr=repr, float32=lambda v: float(_np().float32(v)))
    return env


def _field_check(attr: Attr, value: Any) -> str:
    """What a test compares a serialized field's value with: the value as the plugin stores it."""
    if attr.type == "string":
        return py_literal(value)
    values = list(value) if attr.is_array else [value]
    if attr.type.startswith("float"):
        return f"pytest.approx({[float(v) for v in values]!r})"
    return repr([int(v) for v in values])


def _shape_doc(output: str, spec: OpSpec) -> str:
    shape = spec.output_shapes[spec.outputs.index(output)]
    if shape.like:
        return f"{shape.like}'s shape"
    dims = [str(d.value) if d.source is None else f"{d.source}[{d.index}]" for d in shape.dims]
    return f"shape [{', '.join(dims)}]"


def _np():
    import numpy
    return numpy


def render(spec: OpSpec, root: str | Path = ".") -> dict[Path, str]:
    """Every file of the op, rendered in memory: path (under ``root``) -> text."""
    env = _environment()
    context = dict(op=spec, cases=_test_cases(spec), external=not _is_plugkit_source(Path(root)))
    files = {Path(root) / path: env.get_template(template).render(**context)
             for template, path in spec.files().items()}
    if not (Path(root) / "CMakeLists.txt").exists():
        files[Path(root) / "CMakeLists.txt"] = env.get_template("CMakeLists.txt.j2").render(**context)
    return files


def _is_plugkit_source(root: Path) -> bool:
    try:
        return (root / "csrc/include/plugkit/plugin.h").is_file()
    except OSError:
        return False


_REGISTER = re.compile(r"^\s*PLUGKIT_REGISTER_PLUGIN\s*\(\s*(\w+)\s*\)", re.MULTILINE)


def _declared_op_name(op_file: Path) -> str | None:
    """The name= of the OpSchema(...) in an op.py, read without running it."""
    try:
        tree = ast.parse(op_file.read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "OpSchema":
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return kw.value.value
    return None


def check_clashes(spec: OpSpec, root: str | Path, force: bool = False) -> None:
    """Refuse an op whose name, folder or class another plugin under ``root`` already has, and
    files that exist (unless ``force``, which still never lets one op overwrite another)."""
    plugins = Path(root) / "plugins"
    own = plugins / spec.snake
    for op_file in sorted(plugins.glob("*/op.py")):
        if op_file.parent == own:
            continue
        if _declared_op_name(op_file) == spec.name:
            raise ScaffoldError(f"op {spec.name} already exists in {op_file.parent}; pick another name")
    for source in sorted(plugins.glob("*/*.cpp")):
        if source.parent != own and spec.class_name in _REGISTER.findall(source.read_text(errors="replace")):
            raise ScaffoldError(f"{source} already registers a class {spec.class_name}; pick another op name")
    if own.exists():
        declared = _declared_op_name(own / "op.py")
        if declared and declared != spec.name:
            raise ScaffoldError(f"{own} holds op {declared}, not {spec.name}; --force never replaces another op")
        if not force:
            raise ScaffoldError(f"{own} already exists; pass --force to overwrite its generated files")


def write(files: dict[Path, str], force: bool = False) -> list[Path]:
    """Write rendered files. Existing files are refused, all of them named, before anything is
    written, unless ``force``."""
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise ScaffoldError("these files exist; pass --force to overwrite them: "
                            + ", ".join(str(p) for p in existing))
    for path in files:
        if path.exists() and not path.is_file():
            raise ScaffoldError(f"{path} exists and is not a file")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)


def scaffold(name: str, root: str | Path = ".", *, force: bool = False, dry_run: bool = False,
             **request) -> dict[Path, str]:
    """Check, render and (unless ``dry_run``) write an op; returns the files, written or not."""
    spec = plan(name, **request)
    check_clashes(spec, root, force=force)
    files = render(spec, root)
    if not dry_run:
        write(files, force=force)
    return files
