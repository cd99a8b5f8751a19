"""Engine outputs against the CPU reference of an ONNX model, under the shared tolerance table."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..tensors import dtype_name, to_numpy


def reference_outputs(onnx_path, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """The CPU reference outputs of an ONNX model (plugged or not), through the
    ONNX tooling's reference path (plugin nodes run the op schema's reference)."""
    from ..onnx_tools.reference import run_reference_model

    return run_reference_model(onnx_path, feeds)


@dataclasses.dataclass
class OutputComparison:
    name: str
    comparison: Any  # tolerances.Comparison, or None when the output is missing/mis-shaped
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.comparison is not None and self.comparison.ok


def compare_outputs(outputs: Mapping[str, Any], reference: Mapping[str, Any],
                    precision: str = "float32") -> list[OutputComparison]:
    """Each engine output against the reference output of the same name, under
    the shared tolerance table. ``precision`` is what the engine computed in
    (an fp16 build is held to fp16 tolerances even where its outputs are fp32);
    integer outputs must match exactly."""
    import numpy as np

    from ..tolerances import compare

    results = []
    for name, value in outputs.items():
        actual = to_numpy(value)
        if name not in reference:
            results.append(OutputComparison(name, None, "the reference model has no output of this name"))
            continue
        expected = np.asarray(reference[name])
        out_dtype = dtype_name(actual.dtype)
        dtype = out_dtype if out_dtype not in ("float32", "float64") else precision
        if out_dtype == "float16" and precision == "bfloat16":
            dtype = "bfloat16"
        try:
            results.append(OutputComparison(name, compare(actual.astype(np.float64),
                                                          expected.astype(np.float64), dtype)))
        except ValueError as exc:
            results.append(OutputComparison(name, None, str(exc)))
    return results
