"""``plugkit run MODEL.engine --plugins LIB``: run an engine, compare it, time it."""
from __future__ import annotations

import sys

from ._common import add_backend_argument, add_plugins_argument, parse_input_files, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run a TensorRT engine on torch CUDA tensors; compare with ONNX, time it",
        description="Deserialize an engine and run it. Inputs come from --input NAME=FILE.npy or "
                    "are random (shaped by --shapes, else the profile's OPT shape).")
    parser.add_argument("engine", help="the engine file")
    add_plugins_argument(parser, "plugin library (.so) the engine's plugins need; repeatable")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                        help="an input from a .npy file; repeatable")
    parser.add_argument("--shapes", action="append", default=[], metavar="NAME:SHAPE",
                        help="shape of a random input, e.g. input:1x3x32x448; repeatable")
    parser.add_argument("--compare", metavar="MODEL.onnx",
                        help="compare outputs with this ONNX model (plugged or not) run on the CPU "
                             "reference path, under the shared tolerance table")
    parser.add_argument("--precision", choices=("float32", "float16", "bfloat16"),
                        help="tolerance to compare with (default: what the engine was built in)")
    parser.add_argument("--iterations", type=positive_int, metavar="N",
                        help="also time N runs and print latency percentiles")
    parser.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed runs first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--save-outputs", metavar="DIR", help="save each output as DIR/NAME.npy")
    add_backend_argument(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorRT's log")
    parser.set_defaults(func=run_command)


def summarize(name: str, array) -> str:
    import numpy as np

    array = np.asarray(array)
    text = f"{name}: {array.dtype} {'x'.join(map(str, array.shape)) or 'scalar'}"
    if array.size and array.dtype.kind in "fiub":
        values = array.astype(np.float64)
        finite = np.isfinite(values)
        text += (f"  min {values[finite].min() if finite.any() else float('nan'):.6g}"
                 f"  max {values[finite].max() if finite.any() else float('nan'):.6g}"
                 f"  mean {values[finite].mean() if finite.any() else float('nan'):.6g}")
        if not finite.all():
            text += f"  non-finite {int((~finite).sum())}"
    flat = array.reshape(-1)[:6]
    return text + f"\n    first values: {np.array2string(flat, precision=5, separator=', ')}"


def run_command(args) -> int:
    from pathlib import Path

    import numpy as np

    from .. import engine as engine_api
    from ..tensors import to_numpy
    from ..shapes import parse_run_shapes

    if args.seed < 0:
        raise engine_api.EngineError(f"--seed {args.seed}: expected a non-negative integer")
    given = parse_input_files(args.input)
    shapes = parse_run_shapes(args.shapes)
    if args.save_outputs and not Path(args.save_outputs).is_dir():
        raise engine_api.EngineError(f"--save-outputs {args.save_outputs} is not a directory")
    if args.compare and not Path(args.compare).is_file():
        raise engine_api.EngineError(f"--compare model {args.compare} does not exist")
    with engine_api.load(args.engine, args.plugins, verbose=args.verbose, backend=args.backend) as trt_engine:
        print(f"engine {args.engine}")
        for info in trt_engine.tensors:
            print(f"  {'input ' if info.is_input else 'output'} {info.describe()}")
        feeds = engine_api.make_inputs(trt_engine.inputs, given, shapes, seed=args.seed)
        outputs = {name: to_numpy(value)
                   for name, value in trt_engine.run(feeds).items()}
        print("outputs:")
        for name, value in outputs.items():
            print("  " + summarize(name, value))
            if args.save_outputs:
                np.save(Path(args.save_outputs) / f"{name}.npy", value)
        status = 0
        if args.compare:
            reference = engine_api.reference_outputs(
                args.compare, {k: to_numpy(v) for k, v in feeds.items()})
            precision = args.precision or trt_engine.precision
            print(f"compare with {args.compare} (CPU reference, {precision} tolerance):")
            for result in engine_api.compare_outputs(outputs, reference, precision):
                verdict = "ok  " if result.ok else "FAIL"
                print(f"  {verdict} {result.name}: {result.problem or result.comparison}")
                if not result.ok:
                    status = 1
        if args.iterations:
            print(trt_engine.benchmark(feeds, args.iterations, warmup=args.warmup))
    if status:
        print("some outputs are outside the tolerance", file=sys.stderr)
    return status
