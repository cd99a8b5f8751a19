"""``plugkit list`` and ``plugkit check``: what a plugin library holds, and whether it is sound."""
from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path

from .errors import EngineMismatchError, PlugkitError, TensorRTMissingError
from .host import PluginError, PluginLibrary, PluginLibraryError
from .ops import load_schemas, plugins_dir
from .schema import OpSchema


def describe(library: PluginLibrary) -> str:
    """A table of the library's plugins and their fields."""
    lines = [f"{library.path}: {len(library.creators)} plugin(s), "
             f"compiled against TensorRT {library.tensorrt_version or 'unknown'} headers"]
    rows = [("plugin", "version", "namespace", "fields")]
    for c in library.creators:
        fields = ", ".join(f"{f.name}:{f.type}{'[]' if f.is_array else ''}" for f in c.fields) or "-"
        rows.append((c.name, c.version, c.namespace or '""', fields))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    for kind in library.skipped_creators:
        lines.append(f"  (a creator of interface {kind!r} is not an IPluginV3 creator; not listed)")
    return "\n".join(lines)


@dataclasses.dataclass
class CheckReport:
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_fields(library: PluginLibrary, schema: OpSchema) -> list[str]:
    """Differences between the fields the compiled creator reports and the schema's attributes
    (``check`` reports them; the plugin tests assert there are none)."""
    try:
        creator = library.creator(schema.name, schema.version, schema.namespace)
    except Exception as exc:  # noqa: BLE001 - reported as a problem, not raised
        return [str(exc)]
    expected = [(name, ftype, is_array) for name, ftype, is_array in schema.fields()]
    actual = [(f.name, f.type, f.is_array) for f in creator.info.fields]
    if expected == actual:
        return []

    def show(fields):
        return ", ".join(f"{n}:{t}{'[]' if a else ''}" for n, t, a in fields) or "none"

    return [f"{schema.name}: the compiled creator's fields ({show(actual)}) differ from "
            f"op.py's attributes ({show(expected)})"]


def _exports_entry_point(path: str) -> bool:
    try:
        lib = ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_LOCAL", 0))
    except OSError:
        return False
    return hasattr(lib, "getCreators")


def check(path: str | Path, plugins_root: str | Path | None = None) -> CheckReport:
    """Check a plugin library: the entry point, creation from default fields, fields against
    the op schemas in ``plugins/*/op.py``, and compiled-vs-installed TensorRT versions."""
    report = CheckReport()
    path = str(path)
    try:
        library = PluginLibrary(path)
    except PluginLibraryError as exc:
        report.problems.append(str(exc))
        return report
    if not _exports_entry_point(path):
        report.problems.append(f"{path} does not export getCreators")
    if not library.creators:
        report.problems.append(f"{path} has no IPluginV3 creators")

    for info in library.creators:
        creator = library.creator(info.name, info.version, info.namespace)
        for phase in ("build", "runtime"):
            try:
                creator.create({}, phase=phase)
            except PluginError as exc:
                report.problems.append(f"{info.key}: cannot be created from its default fields ({phase}): {exc}")

    try:
        schemas = load_schemas(plugins_root)
    except PlugkitError as exc:
        report.problems.append(str(exc))
        schemas = {}
    names = {(c.name, c.version, c.namespace) for c in library.creators}
    for schema in schemas.values():
        if (schema.name, schema.version, schema.namespace) in names:
            report.problems.extend(check_fields(library, schema))
        elif any(c.name == schema.name for c in library.creators):
            report.problems.extend(check_fields(library, schema) or [
                f"{schema.name}: version/namespace differ between op.py and the library"])
        else:
            report.notes.append(f"op {schema.name} (in {plugins_dir(plugins_root)}) is not in this library")
    for c in library.creators:
        if c.name not in schemas:
            report.notes.append(f"{c.key} has no op.py schema here; its fields were not checked")

    report.notes.extend(_check_runtime_version(library))
    return report


def _check_runtime_version(library: PluginLibrary) -> list[str]:
    from .engine import check_plugin_library_version, import_tensorrt

    try:
        trt = import_tensorrt()
    except TensorRTMissingError:
        return ["TensorRT is not installed: compiled-vs-runtime version check skipped"]
    try:
        note = check_plugin_library_version(library.path, library.tensorrt_version, trt.__version__)
    except EngineMismatchError as exc:
        raise PluginLibraryError(str(exc)) from None
    return [note or f"compiled against TensorRT {library.tensorrt_version}, runtime {trt.__version__}: compatible"]
