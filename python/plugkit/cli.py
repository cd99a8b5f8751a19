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
    except Exception as exc:  # the boundary: every failure is one line and exit code 2
        if os.environ.get("PLUGKIT_DEBUG"):
            raise
        print(f"plugkit {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        return 2


def describe_error(exc: BaseException) -> str:
    """One line for a failure: a PlugkitError's own message (it names the thing and
    the fix); the OS's reason for a file error; a plain sentence for the rest."""
    if isinstance(exc, OutputExistsError):  # the library speaks of force=True; here it is a flag
        return str(exc).replace(" (force=True overwrites it)", "; pass --force to overwrite it")
    if isinstance(exc, PlugkitError):
        return str(exc) or type(exc).__name__  # a report (doctor's) may take several lines
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    elif isinstance(exc, MemoryError):
        text = "out of memory (are the shapes or dimension values far larger than meant?)"
    elif isinstance(exc, RecursionError):
        text = "the input is nested too deeply to process"
    else:
        text = (f"internal error {type(exc).__name__}: {exc} (a bug in plugkit; rerun with "
                f"PLUGKIT_DEBUG=1 for the traceback and report it)")
    return " ".join(text.split()) or type(exc).__name__
