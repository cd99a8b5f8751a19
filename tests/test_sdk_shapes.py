"""Data-dependent output shapes, integer and bool tensors and several outputs through the plugin
host, on the test-only NonZeroProbe plugin (tests/cmake/sdk_plugins): TensorRT's INonZero for a
2-D input, indices [2, K] with K a size tensor (upper bound R*C), an INT32 mask, K itself."""
import numpy as np
import pytest

from plugkit.host import DataDependentDim, PluginError, PreparedPlugin, run
from plugkit.schema import SchemaError, TensorSpec

from sdk_test_library import library

INPUT_DTYPES = ["float32", "float16", "bfloat16", "int32", "int64", "bool", "uint8"]


@pytest.fixture(scope="module")
def creator():
    return library().creator("NonZeroProbe")


def test_output_shapes_show_a_data_dependent_dim_with_its_upper_bound(creator):
    plugin = creator.create({})
    indices, mask, size = plugin.output_shapes([["R", "C"]])
    assert indices[0] == 2 and mask == ["R", "C"] and size == []
    k = indices[1]
    assert k == DataDependentDim(size_output=2, opt="((R * C) // 2)", upper="(R * C)")
    assert str(k) == "size2<=(R * C)"
    named = plugin.output_shapes([["R", 8]], output_names=["indices", "mask", "K"])[0][1]
    assert str(named) == "K<=(R * 8)" and named.upper == "(R * 8)"
    constant = plugin.output_shapes([[3, 4]])[0][1]
    assert (constant.opt, constant.upper) == (6, 12)


def test_several_outputs_of_integer_dtypes(creator):
    assert creator.create({}).output_dtypes(["bool"]) == ["int32", "int32", "int32"]
    assert creator.create({"int64_indices": 1}).output_dtypes(["float16"]) == ["int64", "int32", "int32"]


def test_integer_and_bool_inputs_are_in_the_format_table(creator):
    table = creator.create({}).format_table(1)
    assert {combo[0] for combo in table} == set(INPUT_DTYPES)
    assert {combo[1] for combo in table} == {"int32", "int64"}  # indices: kIndexTypes
    assert all(combo[2:] == ("int32", "int32") for combo in table)
    plugin = creator.create({})
    assert not plugin.supports(0, ["int8", "int32", "int32", "int32"], 1)
    assert not plugin.supports(3, ["bool", "int32", "int32", "int64"], 1)  # a size tensor is INT32


def test_host_allocates_by_the_upper_bound_and_hides_the_dim_until_enqueue(creator):
    prepared = PreparedPlugin(creator, {"int64_indices": 1}, [("uint8", [3, 4])])
    assert prepared.output_dtypes == ["int64", "int32", "int32"]
    assert prepared.output_shapes == [[2, 12], [3, 4], []]  # allocation: K at its upper bound
    assert prepared.output_dims == [[2, -1], [3, 4], []]    # what onShapeChange and enqueue see
    assert prepared.size_outputs == [2]
    assert prepared.trace[-1] == "onShapeChange"


def test_trim_cuts_each_data_dependent_output_to_the_size_written(creator):
    prepared = PreparedPlugin(creator, {}, [("float32", [3, 4])])
    indices = np.arange(24, dtype=np.int32).reshape(2, 12)  # K = 5: rows 0..4 and 5..9 of the buffer
    mask = np.ones((3, 4), dtype=np.int32)
    trimmed_indices, trimmed_mask, k = prepared.trim([indices, mask, np.array(5, dtype=np.int32)])
    np.testing.assert_array_equal(trimmed_indices, np.arange(10).reshape(2, 5))
    assert trimmed_mask is mask and int(k) == 5
    empty, _, _ = prepared.trim([indices, mask, np.array(0, dtype=np.int32)])
    assert empty.shape == (2, 0)
    with pytest.raises(PluginError, match=r"size output 2 holds 13, outside \[0, 12\]"):
        prepared.trim([indices, mask, np.array(13, dtype=np.int32)])


@pytest.mark.parametrize("mistake, message", [
    ("int64_size", "size-tensor output 1 has dtype int64; TensorRT requires int32"),
    ("bool_output", "output 0 has dtype bool; TensorRT does not support BOOL or UINT8 plugin outputs"),
    ("size_not_0d", "declared output 1 a size tensor; TensorRT needs it to be an output of the plugin with nbDims = 0"),
])
def test_host_refuses_what_tensorrt_refuses(mistake, message):
    creator = library().creator("SizeTensorMisuse")
    assert PreparedPlugin(creator, {"mistake": "none"}, [("float32", [6])]).output_shapes == [[6], []]
    with pytest.raises(PluginError, match=message):
        PreparedPlugin(creator, {"mistake": mistake}, [("float32", [6])])


def test_schemas_name_integer_and_bool_dtypes():
    assert TensorSpec("labels", dtype="int32").dtype == "int32"
    for dtype in ("int64", "bool", "uint8"):
        TensorSpec("t", dtype=dtype)
    with pytest.raises(SchemaError, match="unknown dtype 'int128'"):
        TensorSpec("t", dtype="int128")


# ------------------------------------------------------------------ GPU

def _reference(x: np.ndarray):
    nz = np.nonzero(x)
    return np.stack(nz).astype(np.int64), (x != 0).astype(np.int32), len(nz[0])


@pytest.mark.gpu
@pytest.mark.parametrize("int64_indices", [0, 1])
@pytest.mark.parametrize("dtype", INPUT_DTYPES)
def test_nonzero_on_torch_tensors_is_trimmed_to_k(creator, dtype, int64_indices):
    import torch

    gen = torch.Generator().manual_seed(0)
    values = torch.randint(-2, 3, (5, 7), generator=gen) * (torch.rand(5, 7, generator=gen) < 0.4)
    x = values.to(getattr(torch, dtype)).cuda()
    indices, mask, k = run(creator, [x], {"int64_indices": int64_indices})
    ref_indices, ref_mask, ref_k = _reference(values.numpy())
    assert indices.dtype == (torch.int64 if int64_indices else torch.int32)
    assert k.dim() == 0 and k.item() == ref_k and tuple(indices.shape) == (2, ref_k)
    np.testing.assert_array_equal(indices.cpu().numpy(), ref_indices)
    np.testing.assert_array_equal(mask.cpu().numpy(), ref_mask)


@pytest.mark.gpu
def test_nonzero_of_all_zeros_gives_an_empty_output(creator):
    import torch

    indices, mask, k = run(creator, [torch.zeros(4, 4, dtype=torch.bool, device="cuda")])
    assert k.item() == 0 and tuple(indices.shape) == (2, 0) and int(mask.sum()) == 0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64", "bool", "uint8"])
def test_nonzero_on_cupy_arrays(creator, dtype):
    cupy = pytest.importorskip("cupy")
    values = (np.arange(24).reshape(4, 6) % 3 == 0).astype(dtype)
    indices, mask, k = run(creator, [cupy.asarray(values)])
    ref_indices, ref_mask, ref_k = _reference(values)
    assert int(k.get()) == ref_k and indices.shape == (2, ref_k) and indices.dtype == np.int32
    np.testing.assert_array_equal(indices.get(), ref_indices)
    np.testing.assert_array_equal(mask.get(), ref_mask)
