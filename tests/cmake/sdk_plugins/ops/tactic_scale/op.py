"""TacticScale (test-only): Y = X * factor, with `variants` kernel tactics; `tactic` is the one enqueue ran."""
import numpy as np

from plugkit.schema import Attr, OpSchema, TensorSpec


def reference(X, *, factor=2.0, variants=2):
    return np.asarray(X, dtype=np.float64) * factor, np.array([1 if variants else 0], dtype=np.int32)


def torch_reference(X, *, factor=2.0, variants=2):
    return X * factor


schema = OpSchema(
    name="TacticScale",
    version="1",
    namespace="sdktest",
    doc=__doc__,
    inputs=(TensorSpec("X"),),
    outputs=(TensorSpec("Y"), TensorSpec("tactic", "the tactic enqueue ran", dtype="int32")),
    attrs=(Attr("factor", "float32", 2.0), Attr("variants", "int32", 2, "tactics 1..variants")),
    dtypes=("float32", "float16", "bfloat16"),
    reference=reference,
    torch_reference=torch_reference,
    test_cases=({"inputs": [(3, 5)]},),
    bench_cases=({"inputs": [(4096, 4096)]}, {"inputs": [(64, 128)]}),
)
