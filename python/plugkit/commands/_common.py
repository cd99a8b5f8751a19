"""What several commands share: argument types, the parsers of the CLI's
``NAME=VALUE`` spellings (they turn strings into the values the library
functions take), and report printing. Not a command: the CLI skips modules
whose name starts with ``_``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import InputError, OnnxModelError, PlugkitError


# --- argument types and shared options ---------------------------------------

def add_plugins_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--plugins", "--plugin", dest="plugins", action="append", default=[],
                        metavar="LIB", help=help_text)


def add_backend_argument(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument("--backend", choices=("tensorrt", "rtx"),
                        help=help_text or "tensorrt (plugkit[trt]) or rtx, TensorRT-RTX (plugkit[rtx]); "
                                          "default: whichever is installed, tensorrt first")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive; got {value}")
    return value


# --- spec parsers ------------------------------------------------------------

def parse_input_files(specs: Iterable[str] | None) -> dict[str, Any]:
    """``run --input``: ``["input=x.npy", ...]`` -> {"input": array}; names the file and the fix."""
    import numpy as np

    feeds: dict[str, Any] = {}
    for spec in specs or ():
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise InputError(f"--input {spec!r}: write NAME=FILE.npy, e.g. --input images=batch.npy")
        if name in feeds:
            raise InputError(f"--input gives {name!r} twice")
        path = Path(file)
        if not path.is_file():
            raise InputError(f"--input {name}: file {path} does not exist")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"--input {name}: {path} is not a NumPy .npy array ({exc}); save it "
                             f"with numpy.save") from None
        if not isinstance(feeds[name], np.ndarray):
            raise InputError(f"--input {name}: {path} holds several arrays (.npz); pass one .npy per "
                             f"input")
    return feeds


def parse_dims(items: Sequence[str]) -> dict[str, list[int]]:
    """``verify --dim``: ``["W=448,320", "batch=1"]`` -> ``{"W": [448, 320], "batch": [1]}``."""
    dims: dict[str, list[int]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        try:
            parsed = [int(v) for v in values.split(",")]
        except ValueError:
            parsed = []
        if not sep or not name or not parsed or min(parsed) < 0:
            raise OnnxModelError(f"--dim {item!r}: expected NAME=V1,V2,... with non-negative integers")
        dims[name] = parsed
    return dims


def parse_case(text: str) -> dict:
    """``bench --shapes``: ``'16384x8192;8192'`` -> {"inputs": [[16384, 8192], [8192]]}."""
    try:
        return {"inputs": [[int(d) for d in part.strip().split("x") if d] for part in text.split(";")]}
    except ValueError:
        raise PlugkitError(f"--shapes {text!r}: expected shapes like '16384x8192;8192'") from None


# --- reports -----------------------------------------------------------------

def print_check_report(library, plugins_dir=None) -> int:
    """``plugkit check`` (and the end of ``plugkit build``): print the library
    check's problems and notes; the exit status."""
    from ..library_check import check
    from ..plugin_libraries import check_library_file

    check_library_file(library)  # not a library at all: an error (exit 2), not a failed check
    try:
        result = check(library, plugins_dir)
    except PlugkitError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    for note in result.notes:
        print(f"note: {note}")
    for problem in result.problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if result.ok:
        print(f"ok: {library}")
        return 0
    print(f"{len(result.problems)} problem(s) in {library}", file=sys.stderr)
    return 1
