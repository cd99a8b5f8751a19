"""Engine files on disk: sanity checks before TensorRT reads one, atomic
writes, hashes."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import EngineFileError

MIN_ENGINE_BYTES = 64


def check_engine_file(path: str | os.PathLike) -> Path:
    """Sanity checks on an engine file before TensorRT reads it: exists, is a
    file, is not empty or tiny, and is not an ONNX model, zip/PyTorch
    checkpoint, NumPy array or text file."""
    path = Path(path)
    if not path.exists():
        raise EngineFileError(f"engine file {path} does not exist; build it with "
                              f"`plugkit engine MODEL.onnx --plugins LIB -o {path}`")
    if path.is_dir():
        raise EngineFileError(f"{path} is a directory, not an engine file")
    size = path.stat().st_size
    if size == 0:
        raise EngineFileError(f"engine file {path} is empty (an interrupted build or copy?); "
                              f"rebuild it")
    with open(path, "rb") as f:
        head = f.read(512)
    kind = _sniff(head, path)
    if kind:
        raise EngineFileError(f"{path} is {kind}, not a TensorRT engine")
    if size < MIN_ENGINE_BYTES:
        raise EngineFileError(f"engine file {path} has only {size} bytes: it is truncated or not an "
                              f"engine; rebuild it")
    return path


def _sniff(head: bytes, path: Path) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch checkpoint?)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array file"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] in range(2, 6):
        return "a Python pickle"
    if head[:1] == b"\x08" and _is_onnx(path):
        return (f"an ONNX model; build an engine from it with `plugkit engine {path} --plugins LIB "
                f"-o {path.with_suffix('.engine')}`")
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file"
    return None


def _is_onnx(path: Path) -> bool:
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return len(model.graph.node) > 0 or len(model.graph.input) > 0


def atomic_write(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()

