"""plugkit check LIB: entry point, default creation, fields vs op.py, TensorRT versions."""
import sys

from ..errors import PlugkitError
from ..library_check import check
from ..plugin_libraries import check_library_file


def register(subparsers):
    p = subparsers.add_parser(
        "check", help="check a plugin library: entry point, creators, fields vs op.py, TensorRT version")
    p.add_argument("library", help="plugin library (.so)")
    p.add_argument("--plugins-dir", help="folder of plugin folders with op.py (default: ./plugins)")
    p.set_defaults(func=main)


def main(args) -> int:
    return report(args.library, args.plugins_dir)


def report(library, plugins_dir=None) -> int:
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
