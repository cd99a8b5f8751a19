"""Tensor helpers every layer shares: dtype names, torch/numpy conversion, random
inputs, "is there a CUDA device", and the CUDA tensors and streams the host binds
(torch or cupy) — one home, so the host, the engine, the benchmarks, the torch ops
and the test harness agree.

numpy and torch are imported by the functions that need them (torch only
where a torch tensor is asked for), never when this module is imported.
"""
from __future__ import annotations

from typing import Sequence

from .errors import PlugkitError, PluginError

# TensorRT DataType member names -> numpy/torch dtype names.
TENSORRT_DTYPES = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8_e4m3fn",
}
# torch's and numpy's other spellings of the same dtypes.
_ALIASES = {"half": "float16", "float": "float32", "double": "float64", "bool_": "bool",
            "long": "int64", "int": "int32"}


def dtype_name(dtype) -> str:
    """A numpy, torch or TensorRT dtype (or a name) as one plain name: "float16"."""
    if isinstance(dtype, type) and dtype.__module__ == "numpy":  # a scalar type: np.float16
        import numpy as np

        dtype = np.dtype(dtype)
    name = getattr(dtype, "name", None)
    if name in TENSORRT_DTYPES:  # tensorrt.DataType
        return TENSORRT_DTYPES[name]
    text = str(dtype).replace("torch.", "")
    return _ALIASES.get(text, text)


def is_torch(value) -> bool:
    return type(value).__module__.startswith("torch")


def to_numpy(value, widen: str | None = None):
    """A torch tensor (any device), a cupy array or an array-like as a numpy array.

    ``widen``: None keeps the dtype (bfloat16, which numpy lacks, becomes
    float32); "float32" also makes float16 float32 (what numpy references
    take); "float64" makes every float float64 (for comparisons). Integers
    and bools stay exact."""
    import numpy as np

    if is_torch(value):
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            if widen == "float64":
                tensor = tensor.double()
            elif dtype_name(tensor.dtype) == "bfloat16" or (widen == "float32" and tensor.element_size() < 4):
                tensor = tensor.float()
        return tensor.numpy()
    if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):  # cupy: copied to the host
        value = value.get()
    array = np.asarray(value)
    if widen and array.dtype.kind == "f" and array.dtype.itemsize < np.dtype(widen).itemsize:
        array = array.astype(widen)
    return array


def numpy_to_torch(array):
    """A numpy array as a CPU torch tensor; ml_dtypes.bfloat16 arrays keep their bits."""
    import numpy as np
    import torch

    array = np.ascontiguousarray(array)
    if dtype_name(array.dtype) == "bfloat16":  # ml_dtypes.bfloat16: reinterpret the bits
        return torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def random_array(rng, shape: Sequence[int], dtype):
    """Random numpy data of ``dtype`` (a name or numpy dtype): standard normal
    floats (never zeros: zeros hide unwritten outputs), 0/1 bools, small
    non-negative integers (likely valid indices). ``rng``: numpy Generator.
    Raises ValueError for a dtype it cannot make; callers add how to pass data."""
    import numpy as np

    name = dtype_name(dtype)
    shape = tuple(shape)
    if name == "bfloat16":
        import ml_dtypes

        return rng.standard_normal(shape).astype(np.float32).astype(ml_dtypes.bfloat16)
    if name in ("float16", "float32", "float64"):
        return rng.standard_normal(shape).astype(name)
    if name == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if name in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"):
        return rng.integers(0, 8, shape).astype(name)
    raise ValueError(f"cannot make random data of dtype {name}")


def random_tensors(shapes: Sequence[Sequence[int]], dtype: str, seed: int, device: str = "cuda") -> list:
    """Random normal torch tensors of ``dtype`` on ``device``, one per shape
    (drawn in float32 on the CPU, so a seed gives the same values everywhere)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.randn(tuple(shape), generator=gen, dtype=torch.float32).to(device=device,
                                                                              dtype=getattr(torch, dtype))
            for shape in shapes]


def require_cuda(what: str, error: type[Exception] = PlugkitError):
    """torch, when it is installed and sees a CUDA device; else ``error`` whose
    message says that ``what`` (plural: "benchmarks", "engine runs") need one."""
    try:
        import torch
    except ImportError:
        raise error(f"{what} need PyTorch with CUDA: pip install torch") from None
    if not torch.cuda.is_available():
        raise error(f"{what} need a CUDA device; torch sees none (torch.cuda.is_available() is False)")
    return torch


# --------------------------------------------------------------------------- CUDA tensors, as the host binds them

def cuda_tensor_value(t):
    """(dtype, format, dims, address) of a CUDA tensor: torch through its attributes
    (bf16 has no __cuda_array_interface__), anything else through that interface."""
    import numpy as np

    if is_torch(t):
        if not t.is_cuda:
            raise PluginError("enqueue needs CUDA tensors; got a tensor on " + str(t.device))
        if not t.is_contiguous():
            raise PluginError("enqueue needs contiguous tensors (TensorRT's LINEAR format); call .contiguous()")
        return (dtype_name(t.dtype), "LINEAR", list(t.shape), t.data_ptr())
    cai = getattr(t, "__cuda_array_interface__", None)
    if cai is None:
        raise PluginError(f"enqueue needs torch or cupy CUDA tensors; got {type(t).__name__}")
    if cai.get("strides") is not None:
        expected = np.empty(cai["shape"], dtype=np.dtype(cai["typestr"])).strides
        if tuple(cai["strides"]) != tuple(expected):
            raise PluginError("enqueue needs contiguous tensors (TensorRT's LINEAR format)")
    return (np.dtype(cai["typestr"]).name, "LINEAR", list(cai["shape"]), int(cai["data"][0]))


def stream_handle(stream, like) -> int:
    """The CUDA stream handle of ``stream`` (a torch or cupy stream, or a handle); None: the current
    stream of ``like``'s family."""
    if stream is None:
        if is_torch(like):
            import torch
            return torch.cuda.current_stream(like.device).cuda_stream
        import cupy
        return cupy.cuda.get_current_stream().ptr
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    return int(stream)


def synchronize_stream(stream, like) -> None:
    """Wait on the host for the work queued on ``stream`` (a torch or cupy stream, or a handle)."""
    if hasattr(stream, "synchronize"):
        stream.synchronize()
    elif is_torch(like):
        import torch
        torch.cuda.ExternalStream(int(stream), device=like.device).synchronize()
    else:
        import cupy
        cupy.cuda.ExternalStream(int(stream)).synchronize()


def empty_like(like, shape, dtype: str):
    """An uninitialised CUDA tensor of ``like``'s family (torch or cupy) and device."""
    if is_torch(like):
        import torch
        return torch.empty(tuple(shape), dtype=getattr(torch, dtype), device=like.device)
    import cupy
    return cupy.empty(tuple(shape), dtype=dtype)


def tensor_meta(t) -> tuple[str, list[int]]:
    """(dtype name, shape) of a torch tensor, a cupy array or an array-like."""
    import numpy as np

    if is_torch(t):
        return dtype_name(t.dtype), list(t.shape)
    if hasattr(t, "__cuda_array_interface__"):
        cai = t.__cuda_array_interface__
        return np.dtype(cai["typestr"]).name, list(cai["shape"])
    return np.asarray(t).dtype.name, list(np.shape(t))
