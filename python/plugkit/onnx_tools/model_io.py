"""Reading and writing ONNX files, with errors that say what is wrong.

Models over 2 GB keep their weights in external data files (protobuf cannot
serialize more). :func:`load_model` reads the graph and only the small
external tensors (patterns read constants such as a scale); large ones stay
references into the input's folder. :func:`save_model` streams those from the
input's files into one data file beside the output (``OUTPUT.data``), so the
weights are never held in memory twice, and the model is checked by path.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import external_data_helper

from ..errors import OnnxModelError
from ..output_files import OutputFileError, atomic_output, check_output_path

# External tensors up to this size are read into the model at load time.
SMALL_TENSOR_BYTES = 16 << 20
# Tensors at least this large go to the data file when a model is saved with external data.
EXTERNAL_THRESHOLD_BYTES = 1024
_PROTOBUF_LIMIT = (2 << 30) - (64 << 20)
_COPY_CHUNK = 64 << 20


def _tensors(model: onnx.ModelProto):
    return external_data_helper._get_all_tensors(model)


def _external_info(tensor: onnx.TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _tensor_nbytes(tensor: onnx.TensorProto) -> int:
    info = _external_info(tensor)
    if "length" in info:
        return int(info["length"])
    count = 1
    for d in tensor.dims:
        count *= d
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def has_external_data(model: onnx.ModelProto) -> bool:
    return any(external_data_helper.uses_external_data(t) for t in _tensors(model))


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load and check an ONNX model; OnnxModelError if it is not one. Large external
    tensors stay references into ``path``'s folder (pass that folder to :func:`save_model`)."""
    return load_model_and_layout(path)[0]


def read_graph(path: str | os.PathLike) -> onnx.ModelProto:
    """The model at ``path`` without its external weights and without onnx.checker:
    OnnxModelError unless it is an ONNX model at all."""
    path = Path(path)
    if path.is_dir():
        raise OnnxModelError(f"{path} is a directory, not an ONNX model file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise OnnxModelError(f"{path} is empty, not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise OnnxModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning... on junk
        raise OnnxModelError(f"{path} is not an ONNX model (it does not parse: {exc})") from None
    if not model.opset_import or not model.graph.output:
        # Many byte strings parse as an (almost) empty ModelProto.
        raise OnnxModelError(f"{path} is not an ONNX model (no opset imports or no graph outputs)")
    return model


def load_model_and_layout(path: str | os.PathLike) -> tuple[onnx.ModelProto, list[Path]]:
    """:func:`load_model`, and the external data files the model's weights are in (none
    when they are inline)."""
    model = read_graph(path)
    path = Path(path)
    try:
        onnx.checker.check_model(str(path))  # by path: works past 2 GB and checks the data files
    except (onnx.checker.ValidationError, ValueError, OSError) as exc:
        raise OnnxModelError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}") from None
    base = str(path.parent)
    data_files = sorted({path.parent / _external_info(t)["location"] for t in _tensors(model)
                         if external_data_helper.uses_external_data(t)})
    for tensor in _tensors(model):
        if external_data_helper.uses_external_data(tensor) and _tensor_nbytes(tensor) <= SMALL_TENSOR_BYTES:
            try:
                external_data_helper.load_external_data_for_tensor(tensor, base)
            except (OSError, ValueError) as exc:
                raise OnnxModelError(f"{path}: cannot read the data of tensor {tensor.name!r}: {exc}") from None
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    return model, data_files


def load_model_for_running(path: str | os.PathLike) -> tuple[onnx.ModelProto, dict]:
    """:func:`load_model` with each large external initializer turned into a graph input,
    and those inputs' values: arrays mapped from the data files (read-only, nothing
    copied into memory), to feed along with the model's own inputs."""
    model = load_model(path)
    folder = Path(path).parent
    weights, keep = {}, []
    for tensor in model.graph.initializer:
        if not external_data_helper.uses_external_data(tensor):
            keep.append(tensor)
            continue
        info = _external_info(tensor)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        try:
            weights[tensor.name] = np.memmap(folder / info["location"], dtype=dtype, mode="r",
                                             offset=int(info.get("offset", 0)), shape=tuple(tensor.dims))
        except (OSError, ValueError) as exc:
            raise OnnxModelError(f"{path}: cannot map the data of tensor {tensor.name!r}: {exc}") from None
        model.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type,
                                                                    list(tensor.dims)))
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model, weights


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def checkable(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` that ``onnx.checker`` can check in memory: external
    initializers become graph inputs of the same type (the weights are not read)."""
    if not has_external_data(model):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    keep = []
    for tensor in copy.graph.initializer:
        if external_data_helper.uses_external_data(tensor):
            copy.graph.input.append(onnx.helper.make_tensor_value_info(
                tensor.name, tensor.data_type, list(tensor.dims)))
        else:
            keep.append(tensor)
    del copy.graph.initializer[:]
    copy.graph.initializer.extend(keep)
    return copy


def save_model(model: onnx.ModelProto, path: str | os.PathLike, *, force: bool = False,
               protect: str | os.PathLike | None = None, protect_data: Sequence[Path] = (),
               weights_dir: str | os.PathLike | None = None, external: bool = False) -> None:
    """Write ``model``, refusing to overwrite ``protect`` (the input) and ``protect_data``
    (its weights) at all and any other existing file unless ``force``. A model with external
    tensors (read from files in ``weights_dir``, the input's folder), ``external``, or over
    2 GB is written with its weights in ``PATH.data`` beside it; ``model``'s tensors then
    refer to that file."""
    if protect is not None and str(path).strip() and same_file(path, protect):
        raise OnnxModelError(f"output {path} is the input file; write the result elsewhere "
                             f"(plugkit never modifies its input)")
    path = check_output_path(path, force=force)
    data_path = path.with_name(path.name + ".data")
    for source in protect_data:
        if same_file(source, path) or same_file(source, data_path):
            raise OnnxModelError(f"writing {path} would overwrite {source}, which holds the input's "
                                 f"weights; choose another output name")
    if not external and not has_external_data(model) and model.ByteSize() < _PROTOBUF_LIMIT:
        with atomic_output(path, force=force) as tmp:
            onnx.save(model, str(tmp))
            _check_file(tmp, path)
        return
    _save_external(model, path, force, Path(weights_dir) if weights_dir is not None else None)


def _check_file(written: Path, path: Path) -> None:
    try:
        onnx.checker.check_model(str(written))
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise OnnxModelError(f"the model to write to {path} fails onnx.checker, so nothing was "
                             f"written: {str(exc).splitlines()[0]}") from None


def _save_external(model: onnx.ModelProto, path: Path, force: bool, weights_dir: Path | None) -> None:
    data_path = path.with_name(path.name + ".data")
    for tensor in _tensors(model):
        if external_data_helper.uses_external_data(tensor):
            if weights_dir is None:
                raise OnnxModelError(f"tensor {tensor.name!r} has external data but no folder to read it "
                                     f"from; load the model with plugkit's load_model and pass weights_dir")
            source = weights_dir / _external_info(tensor)["location"]
            if same_file(source, data_path):
                raise OnnxModelError(f"writing {path} would overwrite {source}, which holds the input's "
                                     f"weights; choose another output name")
    with atomic_output(data_path, force=force, what="weights file") as tmp_data:
        with open(tmp_data, "wb") as out:
            for tensor in _tensors(model):
                if external_data_helper.uses_external_data(tensor):
                    info = _external_info(tensor)
                    offset, length = out.tell(), int(info.get("length", 0)) or None
                    _copy_range(weights_dir / info["location"], int(info.get("offset", 0)), length, out)
                    length = out.tell() - offset
                elif tensor.HasField("raw_data") and len(tensor.raw_data) >= EXTERNAL_THRESHOLD_BYTES:
                    offset = out.tell()
                    out.write(tensor.raw_data)
                    length = len(tensor.raw_data)
                    tensor.ClearField("raw_data")
                else:
                    continue
                del tensor.external_data[:]
                tensor.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", data_path.name), ("offset", str(offset)),
                                   ("length", str(length))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
    try:
        with atomic_output(path, force=force) as tmp:
            onnx.save(model, str(tmp))
            _check_file(tmp, path)  # by path: resolves PATH.data beside it
    except BaseException:
        data_path.unlink(missing_ok=True)
        raise


def _copy_range(source: Path, offset: int, length: int | None, out) -> None:
    try:
        with open(source, "rb") as f:
            f.seek(offset)
            left = length
            while left is None or left > 0:
                block = f.read(_COPY_CHUNK if left is None else min(_COPY_CHUNK, left))
                if not block:
                    break
                out.write(block)
                if left is not None:
                    left -= len(block)
    except OSError as exc:
        raise OutputFileError(f"cannot read the weights in {source}: {exc.strerror or exc}") from None
    if left:
        raise OnnxModelError(f"{source} ends {left} bytes before the tensor data it should hold")
