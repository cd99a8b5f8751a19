"""Finding the files that sit next to an op's ``op.py``.

:mod:`plugkit.ops` answers "which ops exist"; this module answers "where does
op X live", for the tools that read more than the schema: the ONNX patterns in
``patterns.py`` and an optional ``fake`` (output shapes for PyTorch tracing)
in ``op.py``.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from .errors import UnknownOpError
from .ops import import_file, load_op_module, plugins_dir


def op_module(name: str, root=None) -> ModuleType:
    """The imported ``op.py`` that declares op ``name`` (RMSNorm), or of its folder (rms_norm)."""
    known = []
    for op_file in sorted(plugins_dir(root).glob("*/op.py")):
        module = load_op_module(op_file)
        if name in (module.schema.name, op_file.parent.name):
            return module
        known.append(module.schema.name)
    raise UnknownOpError(
        f"unknown op {name!r}; ops in {plugins_dir(root)}: {', '.join(sorted(known)) or 'none'}")


def sibling_module(name: str, filename: str, root=None) -> ModuleType | None:
    """Import ``filename`` from op ``name``'s folder, or None if there is none."""
    path = Path(op_module(name, root).__file__).with_name(filename)
    if not path.is_file():
        return None
    return import_file(path, f"plugkit_ops.{path.parent.name}.{path.stem}")
