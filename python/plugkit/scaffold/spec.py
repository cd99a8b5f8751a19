"""The op a request describes: :func:`plan` checks a request and makes an :class:`OpSpec`,
which the templates render."""
from __future__ import annotations

import dataclasses
import shlex
from typing import Sequence

from ..errors import ScaffoldError
from ..expr import Translation, free_names, translate
from ..schema import Attr
from .. import triton_aot
from .names import GENERATED_MARK, KERNEL_DTYPES, KINDS, LANGS, MAX_ELEMENTWISE_INPUTS, TRITON_KINDS, TRITON_NAMES, _check_identifier, _check_namespace, _check_version, check_op_name, class_name, snake_case
from .tensors import OutputShape, SizeOutput, TENSOR_DTYPES, parse_output_shape, parse_tensor
from .values import other_value, parse_attr


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
    command: str = ""  # the `plugkit new` command that regenerates the op
    input_dtypes: tuple[str | None, ...] = ()   # custom: a fixed dtype per input, None for the op's (--dtypes)
    output_dtypes: tuple[str | None, ...] = ()  # custom: the same per output
    sizes: tuple[SizeOutput, ...] = ()          # custom: generated size outputs, after `outputs`
    lang: str = "cuda"

    @property
    def all_outputs(self) -> tuple[str, ...]:
        """Every output the plugin has: the op's, then the size outputs."""
        return self.outputs + tuple(s.name for s in self.sizes)

    def dtype_of(self, tensor: str) -> str | None:
        """A tensor's fixed dtype, or None where it has the op's dtype (one of ``dtypes``)."""
        if tensor in self.inputs:
            return (self.input_dtypes or (None,) * len(self.inputs))[self.inputs.index(tensor)]
        if tensor in self.outputs:
            return (self.output_dtypes or (None,) * len(self.outputs))[self.outputs.index(tensor)]
        return "int32"  # a size output

    @property
    def anchor(self) -> int:
        """The first input of the op's dtype: the dtype every unfixed tensor shares."""
        return next(i for i, name in enumerate(self.inputs) if self.dtype_of(name) is None)

    def cpp_type(self, tensor: str) -> str:
        """A tensor's C++ element type in the kernel: T for the op's dtype."""
        dtype = self.dtype_of(tensor)
        return "T" if dtype is None else TENSOR_DTYPES[dtype][0]

    @property
    def kernel_uses_op_dtype(self) -> bool:
        """Whether the custom placeholder kernel touches a tensor of the op's dtype (input 0 or an output)."""
        return any(self.dtype_of(t) is None for t in (self.inputs[0],) + self.outputs)

    def torch_dtype(self, tensor: str) -> str:
        """A tensor's dtype in op.py's torch code: torch.int32, or the anchor input's dtype."""
        dtype = self.dtype_of(tensor)
        return f"{self.inputs[self.anchor]}.dtype" if dtype is None else f"torch.{dtype}"

    @property
    def data_dependent_dims(self) -> list[tuple[int, int, str]]:
        """(output, dim, size output) of every data-dependent dim."""
        return [(j, s.data_dependent, s.dims[s.data_dependent].size) for j, s in enumerate(self.output_shapes)
                if s.data_dependent is not None]

    def size_index(self, size: str) -> int:
        return [s.name for s in self.sizes].index(size)

    def per_size_count(self, output: str) -> str:
        """C++ (enqueue): the elements of a data-dependent output per unit of its size, the product of
        its other dims."""
        j = self.outputs.index(output)
        shape = self.output_shapes[j]
        dims = [f"t.outputDesc[{j}].dims.d[{i}]" for i in range(len(shape.dims)) if i != shape.data_dependent]
        return " * ".join(dims) if dims else "int64_t{1}"

    @property
    def io_rules(self) -> list[str]:
        """kIoRules, inputs then outputs: the op's dtypes (kTypes) once, sameAs for the other tensors of
        that dtype, a single type for each fixed one."""
        mask = "kTypes" if self.type_mask.startswith("typeBit") else self.type_mask
        anchor = self.anchor
        rules = []
        for i, tensor in enumerate(self.inputs + self.all_outputs):
            dtype = self.dtype_of(tensor)
            if dtype is not None:
                rules.append(f"anyOf(typeBit(nvinfer1::DataType::{TENSOR_DTYPES[dtype][1]}))")
            else:
                rules.append(f"anyOf({mask})" if i == anchor else f"sameAs({anchor})")
        return rules

    @property
    def generated_by(self) -> str:
        return f"{GENERATED_MARK} {self.command}"

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
        if self.lang == "triton":
            return {
                f"triton/{self.kind}/plugin.cpp.j2": f"{folder}/{self.snake}_plugin.cpp",
                f"triton/{self.kind}/kernel.py.j2": f"{folder}/kernel.py",
                f"{self.kind}/op.py.j2": f"{folder}/op.py",
                "README.md.j2": f"{folder}/README.md",
                "test_op.py.j2": f"tests/test_{self.snake}.py",
            }
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
            # A Triton kernel repeats the other inputs whole along the first's leading axes (see triton.h).
            broadcasts = ([((3, 7), (7,)), ((4, 4096), (1,)), ((2, 3, 40), (1, 3, 40)), ((2, 5, 64), (64,))]
                          if spec.lang == "triton" else
                          [((3, 7), (7,)), ((2, 5, 64), (5, 1)), ((4, 4096), (1,)), ((2, 3, 40), (2, 1, 40))])
            cases += [{"inputs": [x] + [b] * (n - 1)} for x, b in broadcasts]
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
         output_shapes: Sequence[str] = (), version: str = "1", namespace: str = "plugkit",
         lang: str = "cuda") -> OpSpec:
    """Check a request and return the op it describes; raises ScaffoldError saying why not."""
    check_op_name(name)
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if lang not in LANGS:
        raise ScaffoldError(f"unknown kernel language {lang!r}; use one of {', '.join(LANGS)}")
    if lang == "triton":
        if kind not in TRITON_KINDS:
            raise ScaffoldError(f"--lang triton scaffolds --kind {' or '.join(TRITON_KINDS)}; a {kind} op's kernel "
                                f"is CUDA (or move your own @triton.jit kernel into a plugin: docs/triton.md)")
        if not triton_aot.triton_available():
            raise ScaffoldError("--lang triton needs the triton package, which is not installed: "
                                "pip install 'plugkit[triton]'")
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
    tensor_texts = (inputs, outputs)  # as asked, for the regenerating command
    inputs, input_dtypes = zip(*(parse_tensor(t, "input", kind) for t in inputs))
    outputs, output_dtypes = zip(*(parse_tensor(t, "output", kind) for t in outputs))
    for what, names in (("input", inputs), ("output", outputs)):
        for n in names:
            _check_identifier(what, n)
    if lang == "triton":
        for n in list(inputs) + list(outputs) + [a.name for a in attrs]:
            if n in TRITON_NAMES or n.endswith(("_ptr", "_numel")):
                raise ScaffoldError(f"{n!r} is a name the generated Triton kernel uses for itself; pick another name")
    if all(input_dtypes):
        raise ScaffoldError(f"every input has a dtype of its own ({', '.join(map(_tensor_text, inputs, input_dtypes))}); "
                            f"give at least one input the op's dtype (no :DTYPE): --dtypes ({', '.join(dtypes)}) "
                            f"applies to it")
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
    sizes: dict[str, SizeOutput] = {}
    if kind == "custom":
        declared: dict[str, OutputShape] = {}
        for text in output_shapes:
            out, shape = parse_output_shape(text, inputs, outputs)
            if out in declared:
                raise ScaffoldError(f"--output-shape for {out} is given twice")
            declared[out] = shape
        shapes = tuple(declared.get(o, OutputShape(like=inputs[0])) for o in outputs)
        for output, shape in zip(outputs, shapes):
            for d in shape.dims:
                if d.size is None:
                    continue
                _check_identifier("size output", d.size)
                if d.size in everything:
                    raise ScaffoldError(f"size output {d.size} (data-dependent dim of {output}) needs a name no "
                                        f"input, output or attribute has")
                if d.size in sizes and sizes[d.size].bound != d.bound:
                    raise ScaffoldError(f"size output {d.size} has two upper bounds ({sizes[d.size].bound.text} and "
                                        f"{d.bound.text}); outputs that share a size give it the same bound")
                sizes.setdefault(d.size, SizeOutput(d.size, d.bound))
        members = {f"{s}Upper" for s in sizes} | {f"{o}Per{d.size}" for o, shape in zip(outputs, shapes)
                                                 for d in shape.dims if d.size}
        clashes = sorted(members & set(everything))
        if clashes:
            raise ScaffoldError(f"{', '.join(clashes)}: the generated code uses these names for itself; pick "
                                f"other names")
    return OpSpec(name, kind, tuple(inputs), tuple(outputs), attrs, dtypes, version, namespace, translation, shapes,
                  _command(name, kind, *tensor_texts, attrs, dtypes, translation, output_shapes, version, namespace,
                           lang),
                  input_dtypes if any(input_dtypes) else (), output_dtypes if any(output_dtypes) else (),
                  tuple(sizes.values()), lang)


def _tensor_text(name: str, dtype: str | None) -> str:
    return f"{name}:{dtype}" if dtype else name


def _attr_text(attr: Attr) -> str:
    default = ",".join(map(str, attr.default)) if attr.is_array else attr.default
    return f"{attr.name}:{attr.type}={default}"


def _command(name, kind, inputs, outputs, attrs, dtypes, translation, output_shapes, version, namespace,
             lang="cuda") -> str:
    args = ["plugkit", "new", name] + (["--kind", kind] if kind != "elementwise" else [])
    args += ["--lang", lang] if lang != "cuda" else []
    args += [a for i in inputs for a in ("--input", i)] + [a for o in outputs for a in ("--output", o)]
    args += [a for attr in attrs for a in ("--attr", _attr_text(attr))]
    args += ["--dtypes", ",".join(dtypes)] if tuple(dtypes) != KERNEL_DTYPES else []
    args += ["--expr", translation.source] if translation else []
    args += [a for shape in output_shapes for a in ("--output-shape", shape)]
    args += ["--version", version] if version != "1" else []
    args += ["--namespace", namespace] if namespace != "plugkit" else []
    return shlex.join(args)

