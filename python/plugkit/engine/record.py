"""The build record ``<engine>.json``: what an engine was built with (TensorRT
version, GPU, plugins, precision, inputs/outputs), and what it lets ``load``
check before TensorRT deserializes the engine."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from .. import __version__
from ..errors import EngineFileError, EngineMismatchError
from ..shapes import ShapeRange, format_shape
from .files import sha256_file
from .versions import parse_version

@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """An engine input or output. ``shape`` has -1 for dynamic dimensions;
    ``profile`` is the optimization-profile range of a dynamic input."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    is_input: bool
    profile: ShapeRange | None = None

    def describe(self) -> str:
        shape = "x".join("?" if d < 0 else str(d) for d in self.shape) or "scalar"
        text = f"{self.name}: {self.dtype} {shape}"
        if self.profile is not None and not self.profile.is_fixed:
            text += (f" (profile {format_shape(self.profile.min)} .. {format_shape(self.profile.opt)}"
                     f" .. {format_shape(self.profile.max)})")
        return text

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "is_input": self.is_input,
                "profile": self.profile.to_dict() if self.profile else None}

    @classmethod
    def from_dict(cls, data: Mapping) -> "TensorInfo":
        profile = ShapeRange.from_dict(data["profile"]) if data.get("profile") else None
        return cls(data["name"], data["dtype"], tuple(data["shape"]), bool(data["is_input"]), profile)


class TensorsByRole:
    """``inputs`` and ``outputs`` of a class with a ``tensors`` list of TensorInfo."""

    tensors: list[TensorInfo]

    @property
    def inputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors if t.is_input]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [t for t in self.tensors if not t.is_input]


@dataclasses.dataclass
class EngineMetadata(TensorsByRole):
    """What ``<engine>.json`` records about a build."""

    tensorrt_version: str  # of the backend that built it (TensorRT-RTX's own version for "rtx")
    plugkit_version: str = __version__
    backend: str = "tensorrt"  # "tensorrt" or "rtx" (TensorRT-RTX)
    compute_capabilities: list[str] = dataclasses.field(default_factory=list)  # rtx targets: "8.9", ...
    plugin_layers: list[dict] = dataclasses.field(default_factory=list)  # {"name", "plugin"} per layer
    device_name: str | None = None
    compute_capability: str | None = None
    version_compatible: bool = False
    plugins_serialized: bool = False
    plugins: list[str] = dataclasses.field(default_factory=list)
    plugin_ops: list[str] = dataclasses.field(default_factory=list)  # "RMSNorm/1/plugkit"
    precision: str = "float32"  # what the engine computes in: float32, float16, bfloat16
    builder_flags: list[str] = dataclasses.field(default_factory=list)
    strongly_typed: bool = False
    tensors: list[TensorInfo] = dataclasses.field(default_factory=list)
    onnx: str | None = None
    engine_bytes: int | None = None
    sha256: str | None = None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["tensors"] = [t.to_dict() for t in self.tensors]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "EngineMetadata":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["tensors"] = [TensorInfo.from_dict(t) for t in data.get("tensors", [])]
        return cls(**data)


def metadata_path(engine_path: str | os.PathLike) -> Path:
    return Path(f"{engine_path}.json")


def read_metadata(engine_path: str | os.PathLike) -> EngineMetadata | None:
    path = metadata_path(engine_path)
    if not path.is_file():
        return None
    try:
        return EngineMetadata.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineFileError(f"{path} (the engine's build record) is unreadable: {exc}; delete it "
                              f"to load the engine without it") from None


def check_engine_against_metadata(path: Path, meta: EngineMetadata, *, verify_hash: bool = True) -> None:
    """The engine file must be the one the build wrote: same size, same hash."""
    size = path.stat().st_size
    if meta.engine_bytes is not None and size != meta.engine_bytes:
        raise EngineFileError(
            f"engine file {path} has {size} bytes but its build wrote {meta.engine_bytes}: it is "
            f"{'truncated' if size < meta.engine_bytes else 'modified'}; rebuild it or copy it again")
    if verify_hash and meta.sha256 and sha256_file(path) != meta.sha256:
        raise EngineFileError(f"engine file {path} changed since it was built (its SHA-256 differs "
                              f"from {metadata_path(path).name}): it is corrupt; rebuild it")


def check_metadata_compatible(meta: EngineMetadata, runtime_version: str,
                              compute_capability: str | None = None,
                              device_name: str | None = None) -> list[str]:
    """Can this TensorRT and GPU load the engine ``meta`` describes? Raises
    :class:`EngineMismatchError` when not; returns warnings."""
    warnings = []
    if meta.backend == "rtx":  # built for target compute capabilities, not for the building GPU
        if meta.compute_capabilities and compute_capability and \
                compute_capability not in meta.compute_capabilities:
            raise EngineMismatchError(
                f"the engine was built by TensorRT-RTX for compute capability "
                f"{', '.join(meta.compute_capabilities)}; this GPU ({device_name or 'unknown'}) has "
                f"{compute_capability}. Rebuild it with --backend rtx --compute-capability "
                f"{compute_capability}")
        meta = dataclasses.replace(meta, compute_capability=None, device_name=None)
    built, have = parse_version(meta.tensorrt_version), parse_version(runtime_version)
    if meta.version_compatible:
        if have[:2] < built[:2]:
            raise EngineMismatchError(
                f"the engine is version compatible but was built with TensorRT {meta.tensorrt_version}; "
                f"this TensorRT ({runtime_version}) is older. Load it with TensorRT "
                f"{meta.tensorrt_version} or newer, or rebuild it here")
    elif built[:3] != have[:3]:
        raise EngineMismatchError(
            f"the engine was built with TensorRT {meta.tensorrt_version} but this is TensorRT "
            f"{runtime_version}: an engine loads only with the TensorRT version that built it. "
            f"Rebuild it here with `plugkit engine {meta.onnx or 'MODEL.onnx'} ...`, or build it with "
            f"--version-compatible")
    if meta.compute_capability and compute_capability and meta.compute_capability != compute_capability:
        raise EngineMismatchError(
            f"the engine was built for a GPU of compute capability {meta.compute_capability} "
            f"({meta.device_name or 'unknown'}); this GPU ({device_name or 'unknown'}) has "
            f"{compute_capability}. An engine holds kernels for the GPU it was built on: rebuild "
            f"it on this GPU")
    if meta.device_name and device_name and meta.device_name != device_name:
        warnings.append(f"the engine was built on {meta.device_name}, this GPU is {device_name} "
                        f"(same compute capability): it runs, but may be slower than an engine "
                        f"built here")
    return warnings


def explain_load_failure(messages: Sequence[str], *, path: str, plugins: Sequence[str],
                         meta: EngineMetadata | None = None) -> str:
    """Turn TensorRT's deserialization errors into a message that names the cause."""
    text = "\n".join(messages)
    lowered = text.lower()
    if any(k in lowered for k in ("plugin", "creator")):
        given = ", ".join(plugins) or "none"
        needed = f" (the engine uses {', '.join(meta.plugin_ops)})" if meta and meta.plugin_ops else ""
        cause = (f"a plugin the engine uses is not registered{needed}; plugin libraries given: "
                 f"{given}. Pass the library that provides it with --plugins, or build the engine "
                 f"with --version-compatible --serialize-plugins")
    elif any(k in lowered for k in ("version tag", "serialization version", "not compatible with this "
                                    "version", "expecting library version", "older version",
                                    "newer version")):
        cause = ("the engine was built by another TensorRT version; rebuild it with this one "
                 "(or build with --version-compatible)")
    elif any(k in lowered for k in ("compute capability", "incompatible device", "different "
                                    "models of devices", "platform")):
        cause = "the engine was built for another GPU; rebuild it on this GPU"
    elif any(k in lowered for k in ("magic tag", "magictag", "corrupt", "size", "truncat",
                                    "insufficient")):
        cause = "the file is corrupt, truncated or not a TensorRT engine; rebuild it"
    else:
        cause = ("possible causes: the engine was built by another TensorRT version or for "
                 "another GPU, a plugin library is missing (--plugins), or the file is corrupt")
    detail = "\nTensorRT said:\n  " + "\n  ".join(messages) if messages else ""
    return f"TensorRT could not load engine {path}: {cause}{detail}"


def device() -> tuple[str | None, str | None]:
    """(name, compute capability "8.9") of the current CUDA device, if torch can tell."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return torch.cuda.get_device_name(), f"{major}.{minor}"
    except Exception:
        pass
    return None, None


def compute_precision(cast_to: str | None, builder_flags: Sequence[str]) -> str:
    """The float type an engine computes in, for picking the comparison tolerance."""
    if cast_to:
        return cast_to
    if "BF16" in builder_flags:
        return "bfloat16"
    if "FP16" in builder_flags:
        return "float16"
    return "float32"

