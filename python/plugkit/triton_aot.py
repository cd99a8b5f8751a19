"""Triton kernels ahead of time: ``python -m plugkit.triton_aot PLUGIN_DIR --arch ARCHS --out DIR``.

A plugin folder whose kernel is written in Triton holds ``kernel.py`` next to ``op.py``. Its
``LAUNCH`` says how the C++ plugin calls the kernel::

    LAUNCH = dict(
        kernel=my_op_kernel,                     # @triton.jit, or @triton.autotune(configs=...) over it
        args=["x", "y", "numel(y)", "alpha"],     # one per kernel argument that is not a tl.constexpr
        grid=["cdiv(numel(y), BLOCK)"],            # 1 to 3 dims
        config={"BLOCK": 1024, "num_warps": 4},   # without @triton.autotune: the one configuration
    )

An argument is a tensor of op.py by name (its pointer), ``numel(T)``, ``rows(T)`` (all dims but
the last, multiplied) or ``cols(T)`` (the last dim) of a tensor (int64), or a scalar attribute by
name (float32 -> fp32, int32 -> i32, int64 -> i64). The grid uses the same size terms, integers,
``+ - * //``, ``cdiv(a, b)`` and the config's constexpr meta-parameters.

The generator compiles the kernel for every architecture (no GPU needed: an explicit target),
every dtype of the op and every config, each twice: once for 16-byte aligned tensors and sizes
that are multiples of 16 (what Triton's JIT specializes on, and what lets it vectorize), once for
anything. It writes ``<op>_triton.cpp`` (the cubins as byte arrays) and ``<op>_triton.h`` (the
launch, the tactics: one per config) for ``plugkit/triton.h``. Exit status 2 with one line on
stderr when something is wrong.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

from .errors import PlugkitError

TRITON_VERSION = "3.6.0"  # what plugkit is tested with
MISSING_TRITON = ("{what} needs the triton package, which is not installed: pip install 'plugkit[triton]' "
                  "(triton==" + TRITON_VERSION + ")")

_POINTER_TYPES = {"float32": "*fp32", "float16": "*fp16", "bfloat16": "*bf16", "int32": "*i32", "int64": "*i64",
                  "int8": "*i8", "uint8": "*u8", "bool": "*i1"}
_TRT_TYPES = {"float32": "kFLOAT", "float16": "kHALF", "bfloat16": "kBF16", "int32": "kINT32", "int64": "kINT64",
              "int8": "kINT8", "uint8": "kUINT8", "bool": "kBOOL"}
_SCALAR_TYPES = {"float32": ("fp32", "float"), "int32": ("i32", "int32_t"), "int64": ("i64", "int64_t")}
_SIZE_TERMS = ("numel", "rows", "cols")
MAX_BINARIES = 512  # TritonKernel::kMaxBinaries in plugkit/triton.h


class TritonAotError(PlugkitError):
    pass


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def require_triton(what: str) -> None:
    if not triton_available():
        raise TritonAotError(MISSING_TRITON.format(what=what))


def architectures(text: str) -> list[int]:
    """``"75-real;80;90"`` -> [75, 80, 90]: the compute capabilities of PLUGKIT_CUDA_ARCHITECTURES."""
    archs = []
    for item in re.split(r"[;, ]+", text.strip()):
        if not item:
            continue
        match = re.fullmatch(r"(\d+)[a-z]?(?:-real|-virtual)?", item)
        if not match:
            raise TritonAotError(f"architecture {item!r}: Triton kernels need explicit architectures such as "
                                 f"80 or 90 (PLUGKIT_CUDA_ARCHITECTURES; 'native' and 'all' cannot be compiled "
                                 f"ahead of time)")
        arch = int(match.group(1))
        if arch < 75:
            raise TritonAotError(f"architecture {arch}: Triton compiles for compute capability 7.5 and newer")
        if arch not in archs:
            archs.append(arch)
    if not archs:
        raise TritonAotError("no architecture given (PLUGKIT_CUDA_ARCHITECTURES is empty)")
    return archs


# --------------------------------------------------------------------------- the declaration

@dataclasses.dataclass(frozen=True)
class Config:
    constexprs: dict
    num_warps: int
    num_stages: int

    @property
    def name(self) -> str:
        return ",".join([f"{k}={v}" for k, v in self.constexprs.items()] +
                        [f"num_warps={self.num_warps}", f"num_stages={self.num_stages}"])


@dataclasses.dataclass(frozen=True)
class Arg:
    """One runtime argument of the kernel, and where the plugin takes it from."""

    param: str        # the kernel's parameter name
    term: str         # as written in LAUNCH["args"]
    kind: str         # "tensor", "size" or "attr"
    cpp_type: str     # of the C++ variable passed by address
    cpp_value: str    # how the plugin computes it from `t` (Tensors) and `attrs`
    triton_type: str  # in the kernel's signature; "*" for tensors (the dtype's pointer type)
    tensor_dtype: str | None = None  # a tensor of fixed dtype (TensorSpec.dtype)


@dataclasses.dataclass(frozen=True)
class Launch:
    kernel: object          # the JITFunction
    name: str
    args: tuple[Arg, ...]
    params: tuple[str, ...]  # every parameter, constexprs too
    grid: tuple[ast.expr, ...]
    configs: tuple[Config, ...]


def _tensor_ref(schema, name: str, where: str) -> tuple[str, int, str | None]:
    inputs = [t.name for t in schema.inputs]
    outputs = [t.name for t in schema.outputs]
    if name in inputs:
        i = inputs.index(name)
        return f"t.inputDesc[{i}]", i, schema.inputs[i].dtype
    if name in outputs:
        i = outputs.index(name)
        return f"t.outputDesc[{i}]", i, schema.outputs[i].dtype
    raise TritonAotError(f"{where}: {name!r} is not a tensor of op {schema.name} (inputs: {', '.join(inputs)}; "
                         f"outputs: {', '.join(outputs)})")


def _size_value(schema, term: str, where: str) -> str | None:
    """The C++ of numel(T)/rows(T)/cols(T), or None when `term` is not one."""
    match = re.fullmatch(r"(numel|rows|cols)\(\s*([A-Za-z_]\w*)\s*\)", term.strip())
    if not match:
        return None
    desc, _, _ = _tensor_ref(schema, match.group(2), where)
    return f"plugkit::triton::{match.group(1)}({desc}.dims)"


def _arg(schema, param: str, term: str, where: str) -> Arg:
    term = str(term).strip()
    size = _size_value(schema, term, where)
    if size is not None:
        return Arg(param, term, "size", "int64_t", size, "i64")
    tensors = {t.name for t in schema.inputs} | {t.name for t in schema.outputs}
    if term in tensors:
        desc, index, dtype = _tensor_ref(schema, term, where)
        pointer = (f"const_cast<void*>(t.inputs[{index}])" if desc.startswith("t.input") else f"t.outputs[{index}]")
        return Arg(param, term, "tensor", "void*", pointer, "*", dtype)
    attrs = {a.name: a for a in schema.attrs}
    if term in attrs:
        attr = attrs[term]
        if attr.type not in _SCALAR_TYPES:
            raise TritonAotError(f"{where}: attribute {term!r} is a {attr.type}; a kernel argument takes scalar "
                                 f"attributes ({', '.join(_SCALAR_TYPES)})")
        triton_type, cpp_type = _SCALAR_TYPES[attr.type]
        return Arg(param, term, "attr", cpp_type, f"static_cast<{cpp_type}>(attrs.{term})", triton_type)
    raise TritonAotError(f"{where}: {term!r} is none of op {schema.name}'s tensors ({', '.join(sorted(tensors))}), "
                         f"attributes ({', '.join(attrs) or 'none'}), or numel(T), rows(T), cols(T)")


def _configs(kernel, launch: dict, where: str) -> tuple[object, tuple[Config, ...]]:
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    if isinstance(kernel, Autotuner):
        if "config" in launch:
            raise TritonAotError(f"{where}: the kernel is @triton.autotune'd; its configs are the tactics, "
                                 f"so LAUNCH takes no 'config'")
        configs = []
        for c in kernel.configs:
            if getattr(c, "pre_hook", None) is not None:
                raise TritonAotError(f"{where}: autotune config {c} has a pre_hook, which a plugin cannot run")
            configs.append(Config(dict(c.kwargs), int(c.num_warps), int(c.num_stages)))
        if (getattr(kernel, "user_defined_pre_hook", False) or getattr(kernel, "user_defined_post_hook", False)
                or getattr(kernel, "reset_to_zero", None) or getattr(kernel, "restore_value", None)):
            raise TritonAotError(f"{where}: @triton.autotune's hooks, reset_to_zero and restore_value cannot run in a "
                                 f"plugin; zero outputs inside the kernel instead")
        kernel = kernel.fn
    else:
        config = dict(launch.get("config", {}))
        warps = config.pop("num_warps", 4)
        stages = config.pop("num_stages", 3)
        configs = [Config(config, int(warps), int(stages))]
    if not isinstance(kernel, JITFunction):
        raise TritonAotError(f"{where}: LAUNCH['kernel'] is a {type(kernel).__name__}, not a @triton.jit function "
                             f"(optionally under @triton.autotune)")
    if not configs:
        raise TritonAotError(f"{where}: @triton.autotune has no configs")
    if len(configs) > 64:
        raise TritonAotError(f"{where}: {len(configs)} autotune configs; at most 64 (each is a TensorRT tactic)")
    return kernel, tuple(configs)


def read_launch(kernel_file: Path, schema) -> Launch:
    """The LAUNCH of a kernel.py, checked against the op's schema."""
    from .ops import import_file

    where = str(kernel_file)
    try:
        module = import_file(kernel_file, f"plugkit_triton.{kernel_file.parent.name}")
    except Exception as exc:  # the user's file: any error, named
        raise TritonAotError(f"{where} cannot be imported: {type(exc).__name__}: {exc}") from None
    launch = getattr(module, "LAUNCH", None)
    if not isinstance(launch, dict) or not {"kernel", "args", "grid"} <= set(launch):
        raise TritonAotError(f"{where} has no LAUNCH = dict(kernel=..., args=[...], grid=[...]); see docs/triton.md")
    unknown = set(launch) - {"kernel", "args", "grid", "config"}
    if unknown:
        raise TritonAotError(f"{where}: LAUNCH has unknown keys {', '.join(sorted(unknown))} "
                             f"(kernel, args, grid, config)")
    kernel, configs = _configs(launch["kernel"], launch, where)
    params = tuple(kernel.arg_names)
    runtime = [p.name for p in kernel.params if not p.is_constexpr]
    constexprs = [p.name for p in kernel.params if p.is_constexpr]
    terms = list(launch["args"])
    if len(terms) != len(runtime):
        raise TritonAotError(f"{where}: {kernel.__name__} takes {len(runtime)} arguments that are not tl.constexpr "
                             f"({', '.join(runtime)}); LAUNCH['args'] names {len(terms)}")
    args = tuple(_arg(schema, p, term, f"{where}: argument {p}") for p, term in zip(runtime, terms))
    for config in configs:
        extra = [c for c in config.constexprs if c not in constexprs]
        if extra:
            raise TritonAotError(f"{where}: config {config.name} sets {', '.join(extra)}, which "
                                 f"{kernel.__name__} has no tl.constexpr parameter for")
        unset = [c for c in constexprs if c not in config.constexprs and not _has_default(kernel, c)]
        if unset:
            raise TritonAotError(f"{where}: config {config.name} gives no value for tl.constexpr "
                                 f"{', '.join(unset)}")
    grid = launch["grid"]
    if isinstance(grid, str) or not 1 <= len(grid) <= 3:
        raise TritonAotError(f"{where}: LAUNCH['grid'] is a list of 1 to 3 expressions, e.g. "
                             f"['cdiv(numel(y), BLOCK)']")
    parsed = []
    for text in grid:
        try:
            parsed.append(ast.parse(str(text).strip(), mode="eval").body)
        except SyntaxError as exc:
            raise TritonAotError(f"{where}: grid {text!r} is not an expression: {exc.msg}") from None
    launch_ = Launch(kernel, kernel.__name__, args, params, tuple(parsed), configs)
    for config in configs:
        for expr in parsed:
            grid_cpp(expr, schema, config, where)  # check every dim with every config now
    return launch_


def _has_default(kernel, name: str) -> bool:
    import inspect

    return kernel.signature.parameters[name].default is not inspect.Parameter.empty


def grid_cpp(node: ast.expr, schema, config: Config, where: str) -> str:
    """A grid expression as int64 C++, the config's meta-parameters substituted."""
    def fail(why):
        raise TritonAotError(f"{where}: grid {ast.unparse(node)!r}: {why}")

    def emit(n) -> str:
        if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool):
            return f"int64_t{{{n.value}}}"
        if isinstance(n, ast.Name):
            if n.id in config.constexprs and isinstance(config.constexprs[n.id], int):
                return f"int64_t{{{config.constexprs[n.id]}}}"
            fail(f"{n.id!r} is not an integer meta-parameter of config {config.name}")
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)):
            symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "/"}[type(n.op)]
            return f"({emit(n.left)} {symbol} {emit(n.right)})"
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            if n.func.id == "cdiv" and len(n.args) == 2 and not n.keywords:
                return f"plugkit::triton::cdiv({emit(n.args[0])}, {emit(n.args[1])})"
            if n.func.id in _SIZE_TERMS:
                size = _size_value(schema, ast.unparse(n), where)
                if size is not None:
                    return size
        fail("use integers, the config's meta-parameters, + - * //, cdiv(a, b), numel(T), rows(T), cols(T)")

    return emit(node)


# --------------------------------------------------------------------------- compiling

@dataclasses.dataclass(frozen=True)
class Binary:
    arch: int
    dtype: str
    config: int  # 1-based: the tactic
    aligned: bool
    cubin: bytes
    symbol: str
    threads: int
    shared: int


def _signature(launch: Launch, dtype: str, config: Config) -> tuple[dict, dict]:
    signature, constexprs = {}, {}
    runtime = {a.param: a for a in launch.args}
    for name in launch.params:
        if name in runtime:
            arg = runtime[name]
            signature[name] = _POINTER_TYPES[arg.tensor_dtype or dtype] if arg.kind == "tensor" else arg.triton_type
        else:
            signature[name] = "constexpr"
            if name in config.constexprs:
                constexprs[name] = config.constexprs[name]
            else:
                constexprs[name] = launch.kernel.signature.parameters[name].default
    return signature, constexprs


def compile_one(launch: Launch, arch: int, dtype: str, config_index: int, aligned: bool, where: str) -> Binary:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    config = launch.configs[config_index]
    signature, constexprs = _signature(launch, dtype, config)
    # Aligned: pointers 16-byte aligned and sizes multiples of 16; the plugin checks before it picks this one.
    hinted = [i for i, name in enumerate(launch.params)
              for a in launch.args if a.param == name and a.kind in ("tensor", "size")]
    attrs = {(i,): [["tt.divisibility", 16]] for i in hinted} if aligned else {}
    target = GPUTarget("cuda", arch, 32)
    backend = triton.compiler.make_backend(target)
    options = backend.parse_options({"num_warps": config.num_warps, "num_stages": config.num_stages})
    source = ASTSource(fn=launch.kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    try:
        compiled = triton.compile(source, target=target, options=options.__dict__)
    except Exception as exc:  # Triton's compile errors name the line of the kernel
        first = str(exc).strip().splitlines()[:12]
        raise TritonAotError(f"{where}: {launch.name} does not compile for sm_{arch}, {dtype}, {config.name}: "
                             + " | ".join(line for line in first if line.strip())) from None
    meta = compiled.metadata
    if getattr(meta, "global_scratch_size", 0) or getattr(meta, "profile_scratch_size", 0):
        raise TritonAotError(f"{where}: {launch.name} needs Triton's global scratch memory ({config.name}), "
                             f"which plugkit does not provide yet")
    return Binary(arch, dtype, config_index + 1, aligned, compiled.asm["cubin"], meta.name,
                  meta.num_warps * 32, meta.shared)


def compile_all(launch: Launch, schema, archs: list[int], where: str) -> list[Binary]:
    return [compile_one(launch, arch, dtype, i, aligned, where)
            for arch in archs for dtype in schema.dtypes
            for i in range(len(launch.configs)) for aligned in (True, False)]


# --------------------------------------------------------------------------- writing

_PRINTABLE = {c: chr(c) for c in range(32, 127) if chr(c) not in '\\"?'}


def _bytes(data: bytes) -> str:
    """A cubin as adjacent string literals (compilers read those far faster than a list of numbers);
    bytes that are not plain printable characters as three-digit octal escapes."""
    lines = []
    for start in range(0, len(data), 64):
        chunk = data[start:start + 64]
        lines.append('    "' + "".join(_PRINTABLE.get(c) or f"\\{c:03o}" for c in chunk) + '"')
    return "\n".join(lines)


def _cpp_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_header(launch: Launch, schema, snake: str, source: str) -> str:
    where = source
    aligned_terms = [f"plugkit::triton::aligned(arg{i})" if a.kind == "tensor" else f"arg{i} % 16 == 0"
                     for i, a in enumerate(launch.args) if a.kind in ("tensor", "size")]
    cases = []
    for i, config in enumerate(launch.configs):
        dims = [grid_cpp(node, schema, config, where) for node in launch.grid]
        sets = " ".join(f"grid[{d}] = {text};" for d, text in enumerate(dims))
        cases.append(f"    case {i + 1}: {sets} break; // {config.name}")
    names = "\n".join(f"    case {i + 1}: return {_cpp_string(c.name)};" for i, c in enumerate(launch.configs))
    variables = "\n".join(f"    {a.cpp_type} arg{i} = {a.cpp_value}; // {a.param} = {a.term}"
                          for i, a in enumerate(launch.args))
    pointers = ", ".join([f"&arg{i}" for i in range(len(launch.args))] + ["&scratch", "&scratch"])
    tactics = ", ".join(str(i + 1) for i in range(len(launch.configs)))
    # The cubins are per dtype of the op: read it from the first tensor whose dtype is not fixed in op.py.
    free = [f"t.inputDesc[{i}].type" for i, s in enumerate(schema.inputs) if s.dtype is None]
    free += [f"t.outputDesc[{i}].type" for i, s in enumerate(schema.outputs) if s.dtype is None]
    dtype = (free or ["t.inputDesc[0].type"])[0]
    return f"""\
// Generated by `python -m plugkit.triton_aot` from {source}: do not edit (plugkit build rewrites it).
// {launch.name}: {len(launch.configs)} config(s), each a tactic; cubins in {snake}_triton.cpp.
#pragma once

#include "plugkit/plugin.h"
#include "plugkit/triton.h"

#include <cstdint>
#include <vector>

namespace plugkit::{snake}::triton
{{

extern plugkit::TritonKernel const kKernel;

//! The tactics: one per config of the kernel, 1 = the first.
inline std::vector<int32_t> tactics()
{{
    return {{{tactics}}};
}}

inline char const* tacticName(int32_t tactic)
{{
    switch (tactic)
    {{
{names}
    default: return nullptr;
    }}
}}

//! Launch {launch.name} on the tensors of one enqueue with the config `tactic`.
template <typename Attrs>
void launch(plugkit::Tensors const& t, [[maybe_unused]] Attrs const& attrs, int32_t tactic, cudaStream_t stream)
{{
{variables}
    void* scratch = nullptr; // Triton's global and profile scratch: none (refused at build time otherwise)
    void* args[] = {{{pointers}}};
    bool const aligned = {" && ".join(aligned_terms) or "true"};
    int64_t grid[3] = {{1, 1, 1}};
    switch (tactic)
    {{
{chr(10).join(cases)}
    default: PLUGKIT_CHECK(false, "{launch.name}: tactic " << tactic << " is not one of its configs ({tactics})");
    }}
    kKernel.launch({dtype}, tactic, aligned, grid, args, stream);
}}

}} // namespace plugkit::{snake}::triton
"""


def render_source(launch: Launch, binaries: list[Binary], snake: str, source: str) -> str:
    arrays = "\n\n".join(
        f"// sm_{b.arch}, {b.dtype}, config {b.config}, {'aligned' if b.aligned else 'any alignment'}\n"
        f"alignas(16) char const kCubin{i}[] =\n{_bytes(b.cubin)};"
        for i, b in enumerate(binaries))
    table = "\n".join(
        f"    {{{b.arch}, nvinfer1::DataType::{_TRT_TYPES[b.dtype]}, {b.config}, {str(b.aligned).lower()}, kCubin{i}, "
        f"{len(b.cubin)}, {_cpp_string(b.symbol)}, {b.threads}, {b.shared}}},"
        for i, b in enumerate(binaries))
    return f"""\
// Generated by `python -m plugkit.triton_aot` from {source}: do not edit (plugkit build rewrites it).
// {launch.name}, compiled ahead of time by Triton: {len(binaries)} cubins.
#include "{snake}_triton.h"

namespace plugkit::{snake}::triton
{{
namespace
{{

{arrays}

plugkit::TritonBinary const kBinaries[] = {{
{table}
}};

}} // namespace

plugkit::TritonKernel const kKernel{{"{launch.name}", kBinaries, {len(binaries)}}};

}} // namespace plugkit::{snake}::triton
"""


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(plugin_dir: Path, archs: list[int], out: Path) -> list[Path]:
    """Compile plugin_dir/kernel.py and write <op>_triton.h/.cpp into out; returns their paths."""
    from .ops import load_op_module

    plugin_dir = Path(plugin_dir)
    kernel_file = plugin_dir / "kernel.py"
    require_triton(f"{kernel_file} (a Triton kernel)")
    snake = plugin_dir.name
    if not re.fullmatch(r"[A-Za-z_]\w*", snake):
        raise TritonAotError(f"{plugin_dir}: the folder name becomes a C++ namespace; use letters, digits, '_'")
    try:
        schema = load_op_module(plugin_dir / "op.py").schema
    except PlugkitError:
        raise
    except Exception as exc:
        raise TritonAotError(f"{plugin_dir / 'op.py'} cannot be imported: {type(exc).__name__}: {exc}") from None
    launch = read_launch(kernel_file, schema)
    count = len(archs) * len(schema.dtypes) * len(launch.configs) * 2
    if count > MAX_BINARIES:
        raise TritonAotError(f"{kernel_file}: {count} cubins (architectures x dtypes x configs x 2 alignments); "
                             f"a kernel holds at most {MAX_BINARIES}: fewer configs or architectures")
    binaries = compile_all(launch, schema, archs, str(kernel_file))
    out.mkdir(parents=True, exist_ok=True)
    header, source = out / f"{snake}_triton.h", out / f"{snake}_triton.cpp"
    shown = f"plugins/{snake}/kernel.py"
    _write_if_changed(header, render_header(launch, schema, snake, shown))
    _write_if_changed(source, render_source(launch, binaries, snake, shown))
    return [header, source]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugkit.triton_aot", description=__doc__.split("\n\n")[0])
    parser.add_argument("plugin_dir", type=Path, help="the plugin folder: kernel.py and op.py")
    parser.add_argument("--arch", required=True, help="architectures, as PLUGKIT_CUDA_ARCHITECTURES: '80;90'")
    parser.add_argument("--out", type=Path, required=True, help="folder for <op>_triton.h and <op>_triton.cpp")
    args = parser.parse_args(argv)
    try:
        paths = generate(args.plugin_dir, architectures(args.arch), args.out)
    except PlugkitError as exc:
        print(f"plugkit.triton_aot: error: {exc}", file=sys.stderr)
        return 2
    print(f"plugkit.triton_aot: wrote {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
