"""plugkit new NAME: scaffold a complete plugin (C++ class, CUDA kernel, op.py, README, tests)."""
import argparse
import sys
from pathlib import Path

from .. import scaffold
from ..expr import FUNCTIONS
from ..schema import ATTR_TYPES

EXAMPLES = """\
examples:
  plugkit new MySwish --expr "x * sigmoid(x)"
  plugkit new ScaledAdd --expr "a * b + alpha" --attr alpha:float32=1.0
  plugkit new MyLeakyRelu --expr "where(x > 0, x, slope * x)" --attr slope:float32=0.01 --dtypes float16,bfloat16
  plugkit new RowSoftmax --kind rowwise
  plugkit new TritonSwish --lang triton --expr "x * sigmoid(x)"
  plugkit new TopKLike --kind custom --input X --output values --output indices:int32 \\
      --output-shape "values=X[0],4" --output-shape "indices=X[0],4" --attr k:int32=4
  plugkit new NonZeroLike --kind custom --input X --input lengths:int32 --output indices:int32 \\
      --output-shape "indices=K<=X[0]*X[1],2"    # [K, 2], K data-dependent; K is the last output

custom tensors: NAME:DTYPE fixes a tensor's dtype; without one it has the op's dtype (--dtypes),
  as at least one input must. TensorRT allows no bool or uint8 plugin outputs.
  inputs:  {in_dtypes}
  outputs: {out_dtypes}
custom shapes: OUT=IN (IN's shape) or comma-separated dims, each a size (4), an input dim (X[0],
  X[-1]) or at most one data-dependent dim SIZE<=BOUND: SIZE names a generated 0-d int32 output
  (after the others; outputs that share it give the same BOUND); BOUND is input dims and whole
  numbers with +, -, *, min(a, b), max(a, b).

--expr functions: {functions}
"""


def register(subparsers):
    p = subparsers.add_parser(
        "new", help="scaffold a new plugin: C++ class, CUDA kernel, op.py, README and tests",
        description="Render plugkit's templates into plugins/<snake_name>/ and tests/test_<snake_name>.py "
                    "under --root. The plugin builds with the next CMake build (no CMake edit), shows up "
                    "in `plugkit list`, passes `plugkit check` and its generated tests. Nothing is written "
                    "when a check fails, and no existing file is overwritten without --force.",
        epilog=EXAMPLES.format(functions=", ".join(sorted(FUNCTIONS)), in_dtypes=", ".join(scaffold.TENSOR_DTYPES),
                               out_dtypes=", ".join(d for d in scaffold.TENSOR_DTYPES
                                                    if d not in scaffold.INPUT_ONLY_DTYPES)),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="op type, e.g. MyOp: folder plugins/my_op/, class MyOpPlugin, op type MyOp")
    p.add_argument("--kind", choices=scaffold.KINDS, default="elementwise",
                   help="elementwise: y = EXPR of inputs of one shape (or broadcasting to the first's); "
                        "rowwise: reduction over the last axis written back per element (softmax to start); "
                        "custom: any inputs/outputs, a placeholder kernel (default: elementwise)")
    p.add_argument("--lang", choices=scaffold.LANGS, default="cuda",
                   help="what the kernel is written in: cuda, or triton (a @triton.jit kernel in kernel.py, "
                        "compiled ahead of time by plugkit build; --kind elementwise or rowwise; needs "
                        "pip install 'plugkit[triton]') (default: cuda)")
    p.add_argument("-i", "--input", dest="inputs", action="append", default=[], metavar="NAME[:DTYPE]",
                   help="an input, in order (repeatable); custom: :DTYPE fixes its dtype (e.g. ids:int32). "
                        "Default: elementwise, the names --expr uses that are not attributes (else x); other kinds, X")
    p.add_argument("-o", "--output", dest="outputs", action="append", default=[], metavar="NAME[:DTYPE]",
                   help="an output, in order (repeatable; several and :DTYPE for --kind custom only). Default: y or Y")
    p.add_argument("-a", "--attr", dest="attrs", action="append", default=[], metavar="NAME:TYPE[=DEFAULT]",
                   help=f"a typed attribute with its default (repeatable); TYPE is one of {', '.join(ATTR_TYPES)}; "
                        "arrays are comma separated (axes:int64[]=0,1). Scalar numbers can be used in --expr")
    p.add_argument("--dtypes", default=",".join(scaffold.KERNEL_DTYPES), metavar="LIST",
                   help="comma-separated tensor dtypes the plugin accepts (default: float32,float16,bfloat16)")
    p.add_argument("-e", "--expr", help="elementwise: the output as an expression of inputs and attributes, "
                                        "e.g. \"x * sigmoid(x)\" (default: the sum of the inputs)")
    p.add_argument("--output-shape", dest="output_shapes", action="append", default=[], metavar="OUT=SHAPE",
                   help="custom: an output's shape, as an input's (Y=X) or dims that are sizes, input dims "
                        "or one data-dependent dim SIZE<=BOUND (Z=X[0],W[-1],4; Y=K<=X[0]*X[1],2); outputs not "
                        "given have the first input's shape")
    p.add_argument("--namespace", default="plugkit", help="plugin namespace (default: plugkit)")
    p.add_argument("--version", dest="op_version", default="1", metavar="VERSION",
                   help="plugin version (default: 1)")
    p.add_argument("--root", default=".",
                   help="project root to write plugins/ and tests/ into (default: .); a root without "
                        "CMakeLists.txt also gets one that builds its plugins with find_package(plugkit)")
    p.add_argument("-n", "--dry-run", action="store_true", help="list the files it would write; write nothing")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing files of this op")
    p.set_defaults(func=main)


def main(args) -> int:
    root = Path(args.root)
    files = scaffold.scaffold(
        args.name, root, force=args.force, dry_run=args.dry_run, kind=args.kind, inputs=args.inputs,
        outputs=args.outputs, attrs=args.attrs, dtypes=[d.strip() for d in args.dtypes.split(",") if d.strip()],
        expr=args.expr, output_shapes=args.output_shapes, version=args.op_version, namespace=args.namespace,
        lang=args.lang)
    verb = "would write" if args.dry_run else "wrote"
    for path in files:
        state = " (exists; overwritten)" if args.force and path.exists() and args.dry_run else ""
        print(f"{verb} {path}{state}")
    if not args.dry_run:
        snake = scaffold.snake_case(args.name)
        in_plugkit = (root / "csrc/include/plugkit/plugin.h").is_file()
        build = ("python -m plugkit build" if in_plugkit else
                 f"cmake -S {root} -B {root / 'build'} -DCMAKE_PREFIX_PATH=<plugkit install prefix> && "
                 f"cmake --build {root / 'build'}")
        print(f"\nnext: build ({build}), then python -m pytest tests/test_{snake}.py; "
              f"the op is described in plugins/{snake}/README.md", file=sys.stderr)
    return 0
