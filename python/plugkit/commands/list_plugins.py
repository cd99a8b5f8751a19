"""plugkit list LIB: the plugins of a library and their fields."""
from ..host import PluginLibrary
from ..library_check import describe


def register(subparsers):
    p = subparsers.add_parser("list", help="list a plugin library's plugins and their fields")
    p.add_argument("library", help="plugin library (.so), e.g. build/libplugkit_plugins.so")
    p.set_defaults(func=main)


def main(args) -> int:
    print(describe(PluginLibrary(args.library)))
    return 0
