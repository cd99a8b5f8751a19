"""RMSNorm: ONNX RMSNormalization (opset 23) as a TensorRT plugin.

Y = X / sqrt(mean(X^2 over axes >= axis) + epsilon) * scale, accumulated in fp32.
"""
import numpy as np

from plugkit.schema import Attr, OpSchema, TensorSpec


def reference(X, scale, *, axis=-1, epsilon=1e-5, stash_type=1):
    x = np.asarray(X, dtype=np.float64)
    axis = axis + x.ndim if axis < 0 else axis
    axes = tuple(range(axis, x.ndim))
    mean_square = np.mean(np.square(x), axis=axes, keepdims=True) if x.size else x
    return x / np.sqrt(mean_square + epsilon) * np.asarray(scale, dtype=np.float64)


def torch_reference(X, scale, *, axis=-1, epsilon=1e-5, stash_type=1):
    """The same op in PyTorch, accumulating in fp32: the benchmark's baseline."""
    import torch

    dims = tuple(range(axis % X.dim(), X.dim()))
    x = X.float()
    y = x * torch.rsqrt(x.square().mean(dim=dims, keepdim=True) + epsilon) * scale.float()
    return y.to(X.dtype)


def check(input_shapes, *, axis=-1, epsilon=1e-5, stash_type=1):
    """What the plugin refuses at createPlugin and getOutputShapes (rms_norm_plugin.cpp)."""
    if not (np.isfinite(epsilon) and epsilon > 0):
        return f"epsilon must be a positive number; got {epsilon}"
    if stash_type != 1:
        return f"stash_type must be 1 (float32: the sum of squares is accumulated in fp32); got {stash_type}"
    x = input_shapes[0] if input_shapes else None
    if x is not None:
        if len(x) == 0:
            return "X must have rank >= 1; got a scalar"
        if not -len(x) <= axis < len(x):
            return f"axis {axis} is out of range for X of rank {len(x)}"
    return None


schema = OpSchema(
    name="RMSNorm",
    version="1",
    namespace="plugkit",
    doc=__doc__,
    inputs=(TensorSpec("X", "any rank"),
            TensorSpec("scale", "broadcastable to X.shape[axis:] (numpy's rules); its own float dtype")),
    outputs=(TensorSpec("Y", "X's shape and dtype (ONNX: scale's; insert refuses nodes where they differ)"),),
    attrs=(
        Attr("axis", "int32", -1, "first normalized axis; negative counts from the end"),
        Attr("epsilon", "float32", 1e-5, "added to the mean square; must be > 0"),
        Attr("stash_type", "int32", 1, "ONNX's precision of the mean square: 1 (float32) only"),
    ),
    dtypes=("float32", "float16", "bfloat16"),
    reference=reference,
    torch_reference=torch_reference,
    check=check,
    # Input shapes for the generated tests and the benchmark: X, then scale.
    test_cases=(
        {"inputs": [(1, 1), (1,)]},
        {"inputs": [(3, 7), (7,)]},
        {"inputs": [(2, 5, 4096), (4096,)]},
        {"inputs": [(4, 6, 8), (6, 8)], "attrs": {"axis": -2}},
        {"inputs": [(2, 323, 149), (323, 1)], "attrs": {"axis": -2}},
        {"inputs": [(2, 65536), (65536,)]},
        {"inputs": [(0, 16), (16,)]},
    ),
    bench_cases=(
        {"inputs": [(16384, 8192), (8192,)]},
        {"inputs": [(2048, 16384), (16384,)]},
        {"inputs": [(4096, 4096), (4096,)]},
        {"inputs": [(32768, 1024), (1024,)]},
        {"inputs": [(8, 512, 4096), (4096,)]},
        {"inputs": [(1024, 65536), (65536,)]},
        {"inputs": [(262144, 128), (128,)]},
        {"inputs": [(64, 2048), (2048,)]},
        {"inputs": [(65536, 512), (512,)]},
        {"inputs": [(16384, 256), (256,)]},
    ),
)
