"""The shared tensor helpers (plugkit.tensors): one dtype-name table, one
to_numpy, one random-data maker for every layer. CPU only."""
import numpy as np
import pytest
import torch

from plugkit import tensors


def test_dtype_names_agree_across_numpy_torch_and_tensorrt():
    class TensorRTDataType:  # what tensorrt.DataType.HALF looks like: a member with a .name
        name = "HALF"

    for dtype in (np.float16, np.dtype("float16"), torch.float16, torch.half, "float16", TensorRTDataType()):
        assert tensors.dtype_name(dtype) == "float16"
    assert tensors.dtype_name(torch.bfloat16) == "bfloat16"
    assert tensors.dtype_name(torch.long) == "int64" and tensors.dtype_name(np.bool_) == "bool"


def test_to_numpy_keeps_or_widens_as_asked():
    half, bf16, ints = torch.ones(2, dtype=torch.float16), torch.ones(2, dtype=torch.bfloat16), torch.arange(3)
    assert tensors.to_numpy(half).dtype == np.float16  # kept: tolerances follow the output dtype
    assert tensors.to_numpy(bf16).dtype == np.float32  # numpy has no bfloat16
    assert tensors.to_numpy(half, widen="float32").dtype == np.float32
    assert tensors.to_numpy(torch.ones(2, dtype=torch.float64), widen="float32").dtype == np.float64
    assert tensors.to_numpy(half, widen="float64").dtype == np.float64
    assert tensors.to_numpy(ints, widen="float64").dtype == np.int64
    assert tensors.to_numpy(np.ones(2, np.float16), widen="float32").dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "bool", "int32", "int64", np.dtype("uint8")])
def test_random_array(dtype):
    array = tensors.random_array(np.random.default_rng(0), (4, 5), dtype)
    assert array.shape == (4, 5) and tensors.dtype_name(array.dtype) == tensors.dtype_name(dtype)


def test_random_array_refuses_what_it_cannot_make():
    with pytest.raises(ValueError, match="cannot make random data of dtype complex64"):
        tensors.random_array(np.random.default_rng(0), (2,), "complex64")


def test_random_tensors_are_reproducible_and_never_all_zero():
    a, = tensors.random_tensors([(8, 8)], "float16", seed=3, device="cpu")
    b, = tensors.random_tensors([(8, 8)], "float16", seed=3, device="cpu")
    assert a.dtype == torch.float16 and torch.equal(a, b) and a.abs().sum() > 0
