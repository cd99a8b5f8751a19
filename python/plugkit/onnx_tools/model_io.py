"""Reading and writing ONNX files, with errors that say what is wrong."""
from __future__ import annotations

import os
from pathlib import Path

import onnx

from ..errors import OnnxModelError, OutputExistsError


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load and check an ONNX model; OnnxModelError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning... on junk
        raise OnnxModelError(f"{path} is not an ONNX model (it does not parse: {exc})") from None
    if not model.opset_import or not model.graph.output:
        # Many byte strings parse as an (almost) empty ModelProto.
        raise OnnxModelError(f"{path} is not an ONNX model (no opset imports or no graph outputs)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxModelError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}") from None
    return model


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def save_model(model: onnx.ModelProto, path: str | os.PathLike, *, force: bool = False,
               protect: str | os.PathLike | None = None) -> None:
    """Write ``model``, refusing to overwrite ``protect`` (the input) at all and
    any other existing file unless ``force``."""
    path = Path(path)
    if protect is not None and same_file(path, protect):
        raise OnnxModelError(f"output {path} is the input file; write the result elsewhere "
                             f"(plugkit never modifies its input)")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists (force=True overwrites it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
