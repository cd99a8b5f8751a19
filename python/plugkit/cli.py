"""``python -m plugkit``: the command line."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import __version__, commands
from .errors import OutputExistsError, PlugkitError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plugkit", description="Develop, test and deploy custom TensorRT plugins.")
    parser.add_argument("--version", action="version", version=f"plugkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not commands
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (PlugkitError, FileNotFoundError) as exc:
        # Errors a user can cause carry a message that names the thing and the fix.
        if os.environ.get("PLUGKIT_DEBUG"):
            raise
        message = str(exc)
        if isinstance(exc, OutputExistsError):  # the library speaks of force=True; here it is a flag
            message = message.replace(" (force=True overwrites it)", "; pass --force to overwrite it")
        print(f"plugkit {args.command}: error: {message}", file=sys.stderr)
        return 2
