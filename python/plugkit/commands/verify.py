"""``plugkit verify``: check a plugged model against the original."""
from __future__ import annotations

from ._common import add_plugins_argument


def register(subparsers):
    p = subparsers.add_parser(
        "verify", help="check that a plugged ONNX model computes what the original computed",
        description="Run the original model and the plugged one in onnx.reference.ReferenceEvaluator "
                    "(plugin nodes run their op's numpy reference), on the same inputs, and compare "
                    "every output under the dtype tolerance. Exit status 0 when every output is "
                    "within it, 1 when one is not, 2 on an error (bad file, bad option).")
    p.add_argument("original", help="the model before `plugkit insert`")
    p.add_argument("plugged", help="the model with plugin nodes")
    p.add_argument("--inputs", metavar="NPZ", help="inputs (one array per graph input name) instead of random ones")
    p.add_argument("--dim", dest="dims", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="values of a dynamic dimension, one per run (repeatable; default 1,3,8)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs (>= 0)")
    p.add_argument("--rtol", type=float, help="relative tolerance instead of the dtype's (plugkit/tolerances.py)")
    p.add_argument("--atol", type=float, help="absolute tolerance instead of the dtype's")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: the plugin nodes run their plugins (from --plugins) on the GPU with the real "
                        "kernels, the rest of the plugged model as on cpu (default: cpu, the op references)")
    add_plugins_argument(p, "plugin library whose plugins run the plugin nodes with --device cuda (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..onnx_tools.verify import verify_files
    from ._common import parse_dims

    report = verify_files(args.original, args.plugged, inputs=args.inputs,
                          dims=parse_dims(args.dims), seed=args.seed, rtol=args.rtol, atol=args.atol,
                          device=args.device, plugins=args.plugins)
    nodes = report.plugin_nodes
    print(f"{args.plugged}: {len(nodes)} plugin node(s){': ' + ', '.join(nodes) if nodes else ''}")
    print(report.summary())
    return 0 if report.ok else 1
