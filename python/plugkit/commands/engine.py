"""``plugkit engine MODEL.onnx --plugins LIB -o MODEL.engine``: build a TensorRT engine."""
from __future__ import annotations

from ._common import add_backend_argument, add_plugins_argument, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "engine", help="build a TensorRT engine from an ONNX model with plugkit plugins",
        description="Build a TensorRT engine (trtexec-style options). The plugin nodes are checked "
                    "against the libraries first (see `plugkit doctor`).")
    parser.add_argument("model", help="the ONNX model (usually the plugged one)")
    parser.add_argument("-o", "--output", "--saveEngine", dest="output", metavar="ENGINE",
                        help="where to save the engine (default: MODEL with suffix .engine)")
    add_plugins_argument(parser, "plugin library (.so) the model's plugin nodes need; repeatable")
    parser.add_argument("--fp16", action="store_true",
                        help="fp16: the FP16 builder flag on TensorRT 10; on TensorRT 11 (no weak "
                             "typing) the model's float tensors are cast to fp16, built strongly typed")
    parser.add_argument("--bf16", action="store_true", help="bf16, like --fp16")
    parser.add_argument("--strongly-typed", "--stronglyTyped", dest="strongly_typed",
                        action="store_true", help="build a strongly typed network")
    parser.add_argument("--shapes", action="append", default=[], metavar="NAME:MIN,OPT,MAX",
                        help="optimization-profile range of a dynamic input, e.g. "
                             "input:1x3x32x64,1x3x32x448,1x3x32x1024 (one shape fixes it); repeatable")
    parser.add_argument("--workspace", type=positive_int, metavar="MiB",
                        help="workspace memory-pool limit in MiB")
    parser.add_argument("--timing-cache", "--timingCacheFile", dest="timing_cache", metavar="PATH",
                        help="tactic timing cache: read if it exists, updated after the build")
    parser.add_argument("--version-compatible", "--versionCompatible", dest="version_compatible",
                        action="store_true",
                        help="build an engine that later TensorRT versions can load")
    parser.add_argument("--serialize-plugins", dest="serialize_plugins", action="store_true",
                        help="put the plugin libraries into the engine (needs --version-compatible), "
                             "so it loads without them")
    add_backend_argument(parser)
    parser.add_argument("--compute-capability", dest="compute_capabilities", action="append", default=[],
                        metavar="X.Y",
                        help="with --backend rtx: a GPU generation to build for, e.g. 8.9 (RTX 40xx) or "
                             "12.0 (RTX 50xx); repeatable (default: the GPU here, else every supported one)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--no-check", dest="check_plugins", action="store_false",
                        help="skip the plugin check before the build")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="do not show build progress")
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorRT's log")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    from ..engine import build

    result = build(args.model, args.output, plugins=args.plugins, fp16=args.fp16, bf16=args.bf16,
                   strongly_typed=args.strongly_typed, shapes=args.shapes,
                   workspace_mib=args.workspace, timing_cache=args.timing_cache,
                   version_compatible=args.version_compatible,
                   serialize_plugins=args.serialize_plugins, force=args.force,
                   check_plugins=args.check_plugins, progress=args.progress, verbose=args.verbose,
                   backend=args.backend, compute_capabilities=args.compute_capabilities)
    print(result.path)
    return 0
