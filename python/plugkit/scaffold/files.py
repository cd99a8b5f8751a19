"""Rendering an :class:`OpSpec` into files and writing them all or nothing."""
from __future__ import annotations

import re
import ast
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError, ScaffoldError
from ..ops import _SOURCE_ROOT
from ..schema import Attr
from .names import GENERATED_MARK, _CPP_TYPES
from .spec import OpSpec, _test_cases, plan
from .values import cpp_default, other_value, py_default, py_literal


# --------------------------------------------------------------------------- rendering and writing

def templates_dir() -> Path:
    """The templates: shipped inside the package by `pip install .`, in the repository's templates/
    for an editable install."""
    shipped = Path(__file__).resolve().parents[1] / "templates"  # plugkit/templates
    for path in (shipped, _SOURCE_ROOT / "templates"):
        if (path / "test_op.py.j2").is_file():
            return path
    raise ScaffoldError(f"plugkit's templates are missing (neither {shipped} nor "
                        f"{_SOURCE_ROOT / 'templates'}); reinstall plugkit")


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(cpp_type=lambda a: _CPP_TYPES[a.type], cpp_default=cpp_default, py_default=py_default,
                       other_value=other_value, add_suffix=lambda s, suffix: s + suffix, add_prefix=lambda s, prefix: prefix + s, shape_doc=_shape_doc,
                       code=lambda s: f"`{s}`", py_repr=py_literal, field_check=_field_check,
                       other_values=lambda attrs: {a.name: other_value(a) for a in attrs},
                       py_tuple=lambda s: repr(tuple(s)),
                       py_dict=lambda d: "{" + ", ".join(f'"{k}": {py_literal(v)}' for k, v in d.items()) + "}")
    env.globals.update(repr=repr, float32=lambda v: float(_np().float32(v)))
    return env


def _field_check(attr: Attr, value: Any) -> str:
    """What a test compares a serialized field's value with: the value as the plugin stores it."""
    if attr.type == "string":
        return py_literal(value)
    values = list(value) if attr.is_array else [value]
    if attr.type.startswith("float"):
        return f"pytest.approx({[float(v) for v in values]!r})"
    return repr([int(v) for v in values])


def _shape_doc(output: str, spec: OpSpec) -> str:
    if output not in spec.outputs:  # a size output
        users = [f"{o}'s dim {s.data_dependent}" for o, s in zip(spec.outputs, spec.output_shapes)
                 if s.data_dependent is not None and s.dims[s.data_dependent].size == output]
        return f"0-d int32, the data-dependent size of {' and '.join(users)}"
    shape = spec.output_shapes[spec.outputs.index(output)]
    if shape.like:
        return f"{shape.like}'s shape"
    dims = [f"{d.size}<={d.bound.text}" if d.size else str(d.value) if d.source is None else f"{d.source}[{d.index}]"
            for d in shape.dims]
    return f"shape [{', '.join(dims)}]"


def _np():
    import numpy
    return numpy


def render(spec: OpSpec, root: str | Path = ".") -> dict[Path, str]:
    """Every file of the op, rendered in memory: path (under ``root``) -> text."""
    env = _environment()
    context = dict(op=spec, cases=_test_cases(spec), external=not _is_plugkit_source(Path(root)))
    files = {Path(root) / path: env.get_template(template).render(**context)
             for template, path in spec.files().items()}
    if not (Path(root) / "CMakeLists.txt").exists():
        files[Path(root) / "CMakeLists.txt"] = env.get_template("CMakeLists.txt.j2").render(**context)
    return files


def _is_plugkit_source(root: Path) -> bool:
    try:
        return (root / "csrc/include/plugkit/plugin.h").is_file()
    except OSError:
        return False


_REGISTER = re.compile(r"^\s*PLUGKIT_REGISTER_PLUGIN\s*\(\s*(\w+)\s*\)", re.MULTILINE)


def _declared_op_name(op_file: Path) -> str | None:
    """The name= of the OpSchema(...) in an op.py, read without running it."""
    try:
        tree = ast.parse(op_file.read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "OpSchema":
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return kw.value.value
    return None


def check_clashes(spec: OpSpec, root: str | Path, force: bool = False) -> None:
    """Refuse an op whose name, folder or class another plugin under ``root`` already has, and
    files that exist (unless ``force``, which still never lets one op overwrite another)."""
    plugins = Path(root) / "plugins"
    own = plugins / spec.snake
    for op_file in sorted(plugins.glob("*/op.py")):
        if op_file.parent == own:
            continue
        if _declared_op_name(op_file) == spec.name:
            raise ScaffoldError(f"op {spec.name} already exists in {op_file.parent}; pick another name")
    for source in sorted(plugins.glob("*/*.cpp")):
        if source.parent != own and spec.class_name in _REGISTER.findall(source.read_text(errors="replace")):
            raise ScaffoldError(f"{source} already registers a class {spec.class_name}; pick another op name")
    if own.exists():
        declared = _declared_op_name(own / "op.py")
        if declared and declared != spec.name:
            raise ScaffoldError(f"{own} holds op {declared}, not {spec.name}; --force never replaces another op")
        if declared and GENERATED_MARK not in (own / "op.py").read_text(errors="replace"):
            raise ScaffoldError(f"op {spec.name} already exists in {own}, written by hand; plugkit new never "
                                f"overwrites it, even with --force; pick another name")
        if not force:
            raise OutputExistsError(f"{own} already exists (force=True overwrites it)")


def check_root(root: str | Path) -> Path:
    """The project root to write into: a directory (created when missing) that can be written."""
    root = Path(root)
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ScaffoldError(f"--root {root}: {probe} is not a directory; give a project folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ScaffoldError(f"--root {root}: {probe} is not writable; give a folder you can write to")
    return root


def write(files: dict[Path, str], force: bool = False) -> list[Path]:
    """Write rendered files, all or none. Existing files are refused, all of them named, unless
    ``force``. The files are written into a temporary folder beside their targets first, then moved
    into place (a new plugin folder in one rename, so a build never sees half of it); when a move
    fails, what was moved is put back as it was."""
    existing = [p for p in files if p.exists() or p.is_symlink()]
    if existing and not force:
        raise OutputExistsError(", ".join(map(str, existing)) + " exist (force=True overwrites it)")
    for path in files:
        if path.exists() and not path.is_file():
            raise ScaffoldError(f"{path} exists and is not a file")
    if not files:
        return []
    root = Path(os.path.commonpath([str(p.parent) for p in files]))
    check_root(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".plugkit-new-", dir=root))
    except OSError as exc:
        raise ScaffoldError(f"cannot write into {root}: {exc.strerror or exc}") from None
    moved: list[tuple[Path, Path | None]] = []  # (placed path, its backup in the stage or None)
    try:
        for path, text in files.items():
            staged = stage / "new" / path.relative_to(root)
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(text)
        # Whole new folders move in one rename; into existing folders, file by file.
        units: dict[Path, Path] = {}
        for path in files:
            relative = path.relative_to(root)
            unit = root
            for part in relative.parts:
                unit = unit / part
                if not unit.exists():
                    break
            units[unit] = stage / "new" / unit.relative_to(root)
        # The plugin folder last: a build or test run picks the op up only once it is whole.
        for target, staged in sorted(units.items(), key=lambda item: "plugins" in item[0].relative_to(root).parts):
            backup = None
            if target.exists():
                backup = stage / "old" / target.relative_to(root)
                backup.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, backup)
                moved.append((target, backup))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            if backup is None:
                moved.append((target, None))
    except OSError as exc:
        for target, backup in reversed(moved):
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
                if backup is not None:
                    os.replace(backup, target)
            except OSError:
                pass
        raise ScaffoldError(f"cannot write the op's files under {root}: {exc.strerror or exc} "
                            f"({exc.filename or ''}); nothing was changed") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return list(files)


def scaffold(name: str, root: str | Path = ".", *, force: bool = False, dry_run: bool = False,
             **request) -> dict[Path, str]:
    """Check, render and (unless ``dry_run``) write an op; returns the files, written or not."""
    spec = plan(name, **request)
    root = check_root(root)
    check_clashes(spec, root, force=force)
    files = render(spec, root)
    if not dry_run:
        write(files, force=force)
    return files
