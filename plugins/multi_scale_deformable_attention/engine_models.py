"""MultiScaleDeformableAttention's engine models (tests/engine_models.py imports this, with
tests/ on sys.path): value, sampling_locations and attention_weights are graph inputs with a
dynamic batch B; the level table (spatial_shapes, level_start_index) is a constant, int64 in
each float dtype the op declares, and int32 in one more model."""
import numpy as np
from onnx import numpy_helper

from engine_models import plugged_model
from plugkit.ops import load_schemas

LEVELS = [(6, 7), (3, 4)]
HEADS, CHANNELS, QUERIES, POINTS = 2, 8, 5, 2
BATCHES = (1, 2, 8)  # min, opt, max


def _model(schema, dtype, index_dtype):
    spatial, nb_levels = sum(h * w for h, w in LEVELS), len(LEVELS)
    table = np.array(LEVELS, dtype=index_dtype)
    starts = np.cumsum([0] + [h * w for h, w in LEVELS])[:-1].astype(index_dtype)
    value = [spatial, HEADS, CHANNELS]
    locations = [QUERIES, HEADS, nb_levels, POINTS, 2]
    weights = [QUERIES, HEADS, nb_levels, POINTS]

    def profile(name, dims):
        return f"{name}:" + ",".join("x".join(map(str, (b, *dims))) for b in BATCHES)

    suffix = "" if index_dtype == "int64" else f"-{index_dtype}"
    return plugged_model(
        f"MultiScaleDeformableAttention-{dtype}{suffix}", schema, dtype, None,
        [("value", dtype, ["B", *value]), ("sampling_locations", dtype, ["B", *locations]),
         ("attention_weights", dtype, ["B", *weights])],
        [numpy_helper.from_array(table, "spatial_shapes"), numpy_helper.from_array(starts, "level_start_index")],
        [profile("value", value), profile("sampling_locations", locations), profile("attention_weights", weights)])


def engine_models():
    schema = load_schemas()["MultiScaleDeformableAttention"]
    return [*(_model(schema, dtype, "int64") for dtype in schema.dtypes), _model(schema, "float32", "int32")]
