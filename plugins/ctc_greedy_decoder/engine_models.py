"""CTCGreedyDecoder's engine models (tests/engine_models.py imports this, with tests/ on
sys.path): logits [N, T, 37] with N and T dynamic, alone and with int32 ``lengths`` [N] as a
second graph input; labels and scores come out [N, M] with M the size-tensor output (a
data-dependent dim), in each float dtype the op declares."""

from engine_models import plugged_model
from plugkit.ops import load_schemas

CLASSES = 37
# (N, T) at min, opt, max
PROFILE = [(1, 1), (4, 40), (16, 80)]


def engine_models():
    schema = load_schemas()["CTCGreedyDecoder"]
    logits = "logits:" + ",".join(f"{n}x{t}x{CLASSES}" for n, t in PROFILE)
    lengths = "lengths:" + ",".join(str(n) for n, _ in PROFILE)
    models = []
    for dtype in schema.dtypes:
        inputs = [("logits", dtype, ["N", "T", CLASSES])]
        models.append(plugged_model(f"CTCGreedyDecoder-{dtype}", schema, dtype, {"blank": CLASSES - 1},
                                    inputs, [], [logits]))
        models.append(plugged_model(f"CTCGreedyDecoder-{dtype}-lengths", schema, dtype, {"merge_repeated": 0},
                                    [*inputs, ("lengths", "int32", ["N"])], [], [logits, lengths]))
    return models
