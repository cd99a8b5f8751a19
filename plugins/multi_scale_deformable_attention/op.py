"""MultiScaleDeformableAttention: the sampling core of Deformable DETR's attention.

For each batch b, query q, head h and channel d:

    output[b, q, h*D + d] = sum over levels l, points p of
        attention_weights[b, q, h, l, p] * bilinear(value_l[b, :, :, h, d], sampling_locations[b, q, h, l, p])

where value_l is value[b, start_l : start_l + H_l*W_l] seen as an H_l x W_l map (start_l =
level_start_index[l], (H_l, W_l) = spatial_shapes[l]) and bilinear samples it as grid_sample
does with align_corners=False and zero padding: a location (x, y) in [0, 1] is the grid point
2*loc - 1, i.e. pixel coordinates (x*W_l - 0.5, y*H_l - 0.5); corners outside the map are 0.
"""
import numpy as np

from plugkit.schema import OpSchema, TensorSpec


def reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """The formula above in float64 numpy, one level and one of the four corners at a time."""
    value = np.asarray(value, dtype=np.float64)
    locations = np.asarray(sampling_locations, dtype=np.float64)
    weights = np.asarray(attention_weights, dtype=np.float64)
    B, S, H, D = value.shape
    _, Q, _, L, P, _ = locations.shape
    out = np.zeros((B, Q, H, D))
    b = np.arange(B)[:, None, None, None]
    h = np.arange(H)[None, None, :, None]
    for level, ((rows, cols), start) in enumerate(zip(np.asarray(spatial_shapes), np.asarray(level_start_index))):
        rows, cols, start = int(rows), int(cols), int(start)
        x = locations[:, :, :, level, :, 0] * cols - 0.5  # [B, Q, H, P] pixel coordinates
        y = locations[:, :, :, level, :, 1] * rows - 0.5
        x0, y0 = np.floor(x), np.floor(y)
        for xi, yi in [(x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)]:
            corner = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < cols) & (yi >= 0) & (yi < rows)
            position = start + np.where(inside, yi * cols + xi, 0).astype(np.int64)
            sampled = value[b, position, h, :] if S else np.zeros((B, Q, H, P, D))  # [B, Q, H, P, D]
            scale = np.where(inside, corner, 0.0) * weights[:, :, :, level, :]
            out += np.einsum("bqhp,bqhpd->bqhd", scale, sampled)
    return out.reshape(B, Q, H * D)


def _level_shapes_uncompiled():
    import torch

    shapes: dict = {}

    @torch.compiler.disable
    def level_shapes(spatial_shapes, spatial: int) -> list[tuple[int, int]]:
        # grid_sample needs each level's (H_l, W_l) as Python ints, and spatial_shapes is a device
        # tensor: read it once (a synchronization) outside CUDA graph capture and keep it by
        # (device, S, L), the way a model knows its feature-map sizes on the host.
        key = (str(spatial_shapes.device), spatial, spatial_shapes.shape[0])
        if key not in shapes or not (spatial_shapes.is_cuda and torch.cuda.is_current_stream_capturing()):
            shapes[key] = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        return shapes[key]

    return level_shapes


_level_shapes = None


def torch_reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """The grid_sample formulation: the benchmark's eager and torch.compile baselines. Computes
    in the inputs' dtype."""
    global _level_shapes
    if _level_shapes is None:
        _level_shapes = _level_shapes_uncompiled()
    levels = _level_shapes(spatial_shapes, value.shape[1])
    return grid_sample_attention(value, levels, sampling_locations, attention_weights)


def grid_sample_attention(value, levels, sampling_locations, attention_weights):
    """The op in PyTorch with each level's (H_l, W_l) as Python ints, as Deformable DETR's
    ms_deform_attn_core_pytorch computes it: one grid_sample a level (locations 2*loc - 1)."""
    import torch
    import torch.nn.functional as F

    B, S, H, D = value.shape
    _, Q, _, L, P, _ = sampling_locations.shape
    maps = value.split([h * w for h, w in levels], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for level, (rows, cols) in enumerate(levels):
        # [B, H_l*W_l, H, D] -> [B*H, D, H_l, W_l]; grid [B, Q, H, P, 2] -> [B*H, Q, P, 2]
        level_map = maps[level].flatten(2).transpose(1, 2).reshape(B * H, D, rows, cols)
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(level_map, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    # [B*H, D, Q, L*P] weighted by [B*H, 1, Q, L*P]
    weights = attention_weights.transpose(1, 2).reshape(B * H, 1, Q, L * P)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1).view(B, H * D, Q)
    return out.transpose(1, 2).contiguous()


def fake(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """Output shape for tracing (torch.export, the ONNX exporter)."""
    B, Q = sampling_locations.shape[:2]
    return value.new_empty((B, Q, value.shape[2] * value.shape[3]))


def level_start(levels) -> list[int]:
    """level_start_index of a list of (H_l, W_l)."""
    return [int(s) for s in np.cumsum([0] + [h * w for h, w in levels])[:-1]]


def random_inputs(shapes, dtype, seed, device="cuda", values=None):
    """Inputs of a case: random value and weights, locations uniform in [-0.1, 1.1] (some
    outside the map), and the level table of ``values["spatial_shapes"]`` (by default: levels
    of one row, every level but the first 1x1). ``values["index_dtype"]`` picks int64 or int32."""
    import torch

    values = dict(values or {})
    value_shape, table_shape, _, location_shape, weight_shape = [tuple(s) for s in shapes]
    spatial, nb_levels = value_shape[1], table_shape[0]
    levels = values.get("spatial_shapes")
    if levels is None:
        if spatial < nb_levels:
            raise ValueError(f"value of S={spatial} cannot hold {nb_levels} levels; give values['spatial_shapes']")
        levels = [(1, spatial - nb_levels + 1)] + [(1, 1)] * (nb_levels - 1)
    index_dtype = getattr(torch, values.get("index_dtype", "int64"))
    float_dtype = getattr(torch, dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    value = torch.randn(value_shape, generator=gen)
    locations = torch.rand(location_shape, generator=gen) * 1.2 - 0.1
    weights = torch.randn(weight_shape, generator=gen)
    table = torch.tensor(levels, dtype=index_dtype).reshape(table_shape)
    starts = torch.tensor(level_start(levels), dtype=index_dtype).reshape(shapes[2])
    return [value.to(device, float_dtype), table.to(device), starts.to(device),
            locations.to(device, float_dtype), weights.to(device, float_dtype)]


def case(batch, levels, queries, heads=8, channels=32, points=4, **values):
    """A test or bench case: the five input shapes, and the level table as ``values``."""
    spatial, nb_levels = sum(h * w for h, w in levels), len(levels)
    queries = spatial if queries == "S" else queries
    return {
        "inputs": [(batch, spatial, heads, channels), (nb_levels, 2), (nb_levels,),
                   (batch, queries, heads, nb_levels, points, 2), (batch, queries, heads, nb_levels, points)],
        "values": {"spatial_shapes": [tuple(level) for level in levels], **values},
    }


DETR_LEVELS = [(100, 150), (50, 75), (25, 38), (13, 19)]
MASK2FORMER_LEVELS = [(128, 128), (64, 64), (32, 32)]

schema = OpSchema(
    name="MultiScaleDeformableAttention",
    version="1",
    namespace="plugkit",
    doc=__doc__,
    inputs=(
        TensorSpec("value", "[B, S, H, D], S = sum of H_l*W_l"),
        TensorSpec("spatial_shapes", "[L, 2] int64 or int32: (H_l, W_l) of each level"),
        TensorSpec("level_start_index", "[L] int64 or int32: first position of each level in S"),
        TensorSpec("sampling_locations", "[B, Q, H, L, P, 2]: (x, y), [0, 1] inside the map"),
        TensorSpec("attention_weights", "[B, Q, H, L, P]"),
    ),
    outputs=(TensorSpec("output", "[B, Q, H*D], value's dtype"),),
    dtypes=("float32", "float16", "bfloat16"),
    reference=reference,
    torch_reference=torch_reference,
    test_cases=(
        case(1, [(1, 1)], 1, heads=1, channels=1, points=1),
        case(2, [(6, 7), (3, 4)], 5, heads=2, channels=8, points=2),
        case(1, [(5, 9), (3, 5), (2, 3), (1, 2)], "S", heads=4, channels=32),
        case(2, [(4, 4), (2, 2)], 3, heads=3, channels=12, points=3, index_dtype="int32"),
        case(0, [(3, 3)], 4, heads=2, channels=16),
    ),
    bench_cases=(
        case(2, DETR_LEVELS, "S"),   # Deformable-DETR encoder
        case(2, DETR_LEVELS, 300),   # its decoder
        case(2, DETR_LEVELS, 900),
        case(1, MASK2FORMER_LEVELS, "S"),  # Mask2Former pixel decoder
    ),
)
