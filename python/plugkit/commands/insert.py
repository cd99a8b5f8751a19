"""``plugkit insert``: replace subgraphs with plugin nodes."""
from __future__ import annotations

import sys

from ..output_files import FORCE_HELP


def register(subparsers):
    p = subparsers.add_parser(
        "insert", help="replace subgraphs of an ONNX model with plugin nodes",
        description="Replace every subgraph matching one of an op's patterns (plugins/<op>/patterns.py) "
                    "with the op's plugin node. The input file is never modified.")
    p.add_argument("model", help="ONNX model to read")
    p.add_argument("--op", dest="ops", action="append", required=True, metavar="NAME",
                   help="op whose patterns to replace (repeatable)")
    p.add_argument("-o", "--output", required=True, help="where to write the plugged model")
    p.add_argument("--allow-none", action="store_true",
                   help="exit 0 and write an unchanged copy when nothing matches")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..onnx_tools.insert import insert_file

    result = insert_file(args.model, args.output, args.ops, allow_none=args.allow_none, force=args.force)
    print(result.summary())
    if not result.count():
        print(f"no subgraph of {args.model} matches the patterns of {', '.join(args.ops)}; "
              + ("wrote an unchanged copy to " + args.output if args.allow_none else
                 "nothing written (pass --allow-none to accept that)"),
              file=sys.stderr)
        return 0 if args.allow_none else 1
    print(f"wrote {args.output}")
    return 0
