"""``plugkit doctor MODEL.onnx --plugins LIB``: will every plugin node find its creator?"""
from __future__ import annotations

import json

from ._common import add_plugins_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check a model's plugin nodes against plugin libraries (no TensorRT needed)",
        description="Compare every ONNX node that is not a standard op with the plugin creators "
                    "the given libraries export, the way TensorRT's ONNX parser looks them up "
                    "(op type, plugin_version, plugin_namespace). Exit status 1 when a node "
                    "would not be found.")
    parser.add_argument("model", help="the ONNX model")
    add_plugins_argument(parser, "plugin library (.so) to check against; repeatable")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    from ..doctor import check

    report = check(args.model, args.plugins)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1
