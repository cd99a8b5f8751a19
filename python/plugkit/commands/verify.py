"""``plugkit verify``: check a plugged model against the original."""
from __future__ import annotations


def register(subparsers):
    p = subparsers.add_parser(
        "verify", help="check that a plugged ONNX model computes what the original computed",
        description="Run the original model in ONNX Runtime and the plugged one in "
                    "onnx.reference.ReferenceEvaluator (plugin nodes run their op's reference), "
                    "on the same inputs, and compare every output under the dtype tolerance. "
                    "Exit status 1 when an output is off.")
    p.add_argument("original", help="the model before `plugkit insert`")
    p.add_argument("plugged", help="the model with plugin nodes")
    p.add_argument("--inputs", metavar="NPZ", help="inputs (one array per graph input name) instead of random ones")
    p.add_argument("--dim", dest="dims", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="values of a dynamic dimension, one per run (repeatable; default 1,3,8)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..onnx_tools.verify import verify_files
    from ._common import parse_dims

    report = verify_files(args.original, args.plugged, inputs=args.inputs,
                          dims=parse_dims(args.dims), seed=args.seed)
    nodes = report.plugin_nodes
    print(f"{args.plugged}: {len(nodes)} plugin node(s){': ' + ', '.join(nodes) if nodes else ''}")
    print(report.summary())
    return 0 if report.ok else 1
