"""Finding ops: the one home for op lookup.

An op lives in a folder of the plugins folder (``plugins/rms_norm/``), whose
``op.py`` declares its schema (``schema = OpSchema(...)``) and may hold more
(``fake`` output shapes for PyTorch tracing); files beside it add tools
(``patterns.py`` for ``plugkit insert``). Every command and module finds an op
here, by its name (``RMSNorm``) or its folder (``rms_norm``).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .errors import SchemaError, UnknownOpError
from .schema import OpSchema

# The repository this package was installed from (editable installs), if any.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def plugins_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where plugin folders live: ``explicit``, ``$PLUGKIT_PLUGINS_DIR``,
    ``./plugins`` or the source tree's ``plugins/``, in that order."""
    if explicit is not None:
        return Path(explicit)
    if os.environ.get("PLUGKIT_PLUGINS_DIR"):
        return Path(os.environ["PLUGKIT_PLUGINS_DIR"])
    local = Path.cwd() / "plugins"
    if local.is_dir():
        return local
    return _SOURCE_ROOT / "plugins"


def import_file(path: Path, module_name: str):
    """Import a Python file of a plugin folder as ``module_name`` and return the module."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_op_module(path: Path):
    """Import one ``op.py`` under a unique module name and return the module."""
    path = Path(path).resolve()
    module = import_file(path, f"plugkit_ops.{path.parent.name}")
    if not isinstance(getattr(module, "schema", None), OpSchema):
        raise SchemaError(f"{path} defines no `schema = OpSchema(...)`")
    return module


def load_schemas(root: str | os.PathLike | None = None) -> dict[str, OpSchema]:
    """Every op schema under the plugins folder, keyed by op name."""
    folder = plugins_dir(root)
    if (root is not None or os.environ.get("PLUGKIT_PLUGINS_DIR")) and not folder.is_dir():
        raise SchemaError(f"plugins folder {folder} does not exist or is not a directory")
    schemas: dict[str, OpSchema] = {}
    for op_file in sorted(plugins_dir(root).glob("*/op.py")):
        schema = load_op_module(op_file).schema
        if schema.name in schemas:
            raise SchemaError(f"op {schema.name} is declared twice (second time in {op_file})")
        schemas[schema.name] = schema
    return schemas


def op_module(op: str, root: str | os.PathLike | None = None) -> ModuleType:
    """The imported ``op.py`` of ``op``: an op name (RMSNorm) or its folder (rms_norm)."""
    folder = plugins_dir(root)
    op_file = folder / op / "op.py"
    if op_file.is_file():
        return load_op_module(op_file)
    found, known = [], []
    for op_file in sorted(folder.glob("*/op.py")):
        module = load_op_module(op_file)
        known.append(module.schema.name)
        if module.schema.name == op:
            found.append(module)
    if len(found) > 1:
        raise SchemaError(f"op {op} is declared twice (in {', '.join(m.__file__ for m in found)})")
    if not found:
        raise UnknownOpError(f"unknown op {op!r}; ops in {folder}: {', '.join(sorted(known)) or 'none'}")
    return found[0]


def get_schema(op: str, root: str | os.PathLike | None = None) -> OpSchema:
    """The schema of ``op``: an op name (RMSNorm) or its folder (rms_norm)."""
    return op_module(op, root).schema


def sibling_module(op: str, filename: str, root: str | os.PathLike | None = None) -> ModuleType | None:
    """Import ``filename`` from ``op``'s folder, or None if there is none."""
    path = Path(op_module(op, root).__file__).with_name(filename)
    if not path.is_file():
        return None
    return import_file(path, f"plugkit_ops.{path.parent.name}.{path.stem}")


def case_inputs(schema: OpSchema, shapes, dtype: str, seed: int, device: str = "cuda", values=None) -> list:
    """Inputs of one test or bench case: the op.py's own ``random_inputs(shapes, dtype, seed,
    device, values)`` when it defines one (index tables, coordinates in a range, from the case's
    ``values``), else random tensors (:func:`plugkit.tensors.random_tensors`) of ``dtype`` or of
    the dtype an input's TensorSpec fixes: normal floats, small non-negative integers, 0/1 bools."""
    import numpy as np
    import torch

    from . import tensors

    try:
        maker = getattr(op_module(schema.name), "random_inputs", None)
    except UnknownOpError:  # a schema made elsewhere (a test's, a scaffold's)
        maker = None
    if maker is not None:
        return maker(shapes, dtype, seed, device, values)
    inputs = tensors.random_tensors(shapes, dtype, seed, device)
    for i, spec in enumerate(schema.inputs[:len(shapes)]):
        if spec.dtype is None or spec.dtype == dtype:
            continue
        if spec.dtype in ("float32", "float16", "bfloat16"):
            inputs[i] = inputs[i].to(getattr(torch, spec.dtype))
        else:
            data = tensors.random_array(np.random.default_rng([seed, i]), shapes[i], spec.dtype)
            inputs[i] = tensors.numpy_to_torch(data).to(device)
    return inputs
