"""``plugkit doctor MODEL.onnx --plugins LIB``: will every plugin node find its creator?"""
from __future__ import annotations

import json

from ._common import add_backend_argument, add_plugins_argument


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
    add_backend_argument(parser, "also parse the model with this backend's real ONNX parser (TensorRT "
                                 "or TensorRT-RTX; no GPU needed for rtx) and check the libraries against it")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    from ..doctor import check

    report = check(args.model, args.plugins)
    result = report.to_dict()
    text = report.format()
    status = 0 if report.ok else 1
    if args.backend and report.ok:
        parsed = parse_with_backend(args.model, args.plugins, args.backend)
        result["parser"] = parsed
        text += "\n" + parsed["summary"]
        status = status or (1 if parsed["errors"] else 0)
    print(json.dumps(result, indent=2) if args.json else text)
    return status


def parse_with_backend(model: str, plugins, backend: str) -> dict:
    from ..engine import TITLES, import_backend, parse_onnx
    from ..engine.versions import check_library_versions
    from ..plugin_libraries import open_libraries

    trt = import_backend(backend)
    notes = []
    check_library_versions(trt.__version__, open_libraries(plugins), notes.append, backend)
    errors, layers = parse_onnx(trt, model, plugins)
    name = f"{TITLES[backend]} {trt.__version__}'s ONNX parser"
    if errors:
        summary = f"{name}: {len(errors)} error(s):\n" + "\n".join(f"  {e}" for e in errors)
    else:
        summary = (f"{name}: ok, {len(layers)} plugin layer(s): "
                   + ", ".join(f"{l['name']} ({l['plugin']})" for l in layers))
    return {"backend": backend, "version": trt.__version__, "errors": errors, "plugin_layers": layers,
            "notes": notes, "summary": "\n".join([*notes, summary])}
