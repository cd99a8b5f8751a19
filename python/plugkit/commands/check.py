"""plugkit check LIB: entry point, default creation, fields vs op.py, TensorRT versions."""
from ._common import print_check_report


def register(subparsers):
    p = subparsers.add_parser(
        "check", help="check a plugin library: entry point, creators, fields vs op.py, TensorRT version")
    p.add_argument("library", help="plugin library (.so)")
    p.add_argument("--plugins-dir", help="folder of plugin folders with op.py (default: ./plugins)")
    p.set_defaults(func=main)


def main(args) -> int:
    return print_check_report(args.library, args.plugins_dir)
