"""Tensor helpers every layer shares: dtype names, torch/numpy conversion,
random inputs and "is there a CUDA device" — one home, so the host, the
engine, the benchmarks, the torch ops and the test harness agree.

numpy and torch are imported by the functions that need them (torch only
where a torch tensor is asked for), never when this module is imported.
"""
from __future__ import annotations

from typing import Sequence

from .errors import PlugkitError

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


def _is_torch(value) -> bool:
    return type(value).__module__.startswith("torch")


def to_numpy(value, widen: str | None = None):
    """A torch tensor (any device) or array-like as a numpy array.

    ``widen``: None keeps the dtype (bfloat16, which numpy lacks, becomes
    float32); "float32" also makes float16 float32 (what numpy references
    take); "float64" makes every float float64 (for comparisons). Integers
    and bools stay exact."""
    import numpy as np

    if _is_torch(value):
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            if widen == "float64":
                tensor = tensor.double()
            elif dtype_name(tensor.dtype) == "bfloat16" or (widen == "float32" and tensor.element_size() < 4):
                tensor = tensor.float()
        return tensor.numpy()
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
