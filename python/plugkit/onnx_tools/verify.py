"""Checking that a plugged model computes what the original computed
(``plugkit verify``).

Both models run on the CPU reference (:mod:`plugkit.onnx_tools.reference`):
the original in ONNX Runtime, the plugged model in
``onnx.reference.ReferenceEvaluator`` with each plugin node computed by its
op's numpy reference. Inputs come from an ``.npz`` or are random, at several
values of each dynamic dimension. Outputs are compared with
:func:`plugkit.tolerances.compare`, the tolerance table every test uses.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from ..errors import OnnxModelError
from ..tensors import random_array
from ..tolerances import Comparison, compare
from .model_io import load_model
from .plugin_node import plugin_nodes
from .reference import ReferenceRunner

# Values a dynamic dimension takes when --dim does not say.
DEFAULT_DIM_VALUES = (1, 3, 8)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    dims: tuple  # int for a fixed size, str for a named dynamic one


@dataclasses.dataclass(frozen=True)
class OutputCheck:
    run: int
    dims: Mapping[str, int]
    output: str
    comparison: Comparison


@dataclasses.dataclass
class VerifyReport:
    checks: list[OutputCheck]
    plugin_nodes: list[str]

    @property
    def ok(self) -> bool:
        return all(c.comparison.ok for c in self.checks)

    def summary(self) -> str:
        lines = []
        for run, checks in itertools.groupby(self.checks, key=lambda c: c.run):
            checks = list(checks)
            dims = ", ".join(f"{k}={v}" for k, v in checks[0].dims.items()) or "given inputs"
            lines.append(f"run {run + 1} ({dims}):")
            for c in checks:
                lines.append(f"  {c.output}: {c.comparison}  {'ok' if c.comparison.ok else 'MISMATCH'}")
        bad = [c for c in self.checks if not c.comparison.ok]
        lines.append("OK: every output is within tolerance" if not bad else
                     f"FAIL: {len(bad)} output check(s) above tolerance")
        return "\n".join(lines)


def input_specs(model: onnx.ModelProto) -> list[InputSpec]:
    """The graph inputs a caller must feed (initializers excluded)."""
    initializers = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or f"{value.name}[{axis}]")
            for axis, d in enumerate(tensor_type.shape.dim))
        specs.append(InputSpec(value.name, helper.tensor_dtype_to_np_dtype(tensor_type.elem_type), dims))
    return specs


def random_feeds(specs: Sequence[InputSpec], dims: Mapping[str, Sequence[int]] | None = None,
                 seed: int = 0) -> list[tuple[dict[str, int], dict[str, np.ndarray]]]:
    """Random inputs, one set per run: run i gives each dynamic dimension its
    i-th value (values repeat when one dimension has fewer)."""
    dims = dict(dims or {})
    dynamic = list(dict.fromkeys(d for s in specs for d in s.dims if isinstance(d, str)))
    unknown = set(dims) - set(dynamic)
    if unknown:
        raise OnnxModelError(f"--dim names {sorted(unknown)}, but the model's dynamic dimensions "
                             f"are {dynamic or 'none'}")
    values = {d: list(dims.get(d, DEFAULT_DIM_VALUES)) for d in dynamic}
    runs = max((len(v) for v in values.values()), default=1)
    rng = np.random.default_rng(seed)
    out = []
    for run in range(runs):
        chosen = {d: v[run % len(v)] for d, v in values.items()}
        feeds = {}
        for spec in specs:
            shape = tuple(chosen[d] if isinstance(d, str) else d for d in spec.dims)
            feeds[spec.name] = _random_array(rng, shape, spec.dtype)
        out.append((chosen, feeds))
    return out


def _random_array(rng, shape, dtype) -> np.ndarray:
    try:
        return random_array(rng, shape, dtype)
    except ValueError as exc:
        raise OnnxModelError(f"{exc}; pass the inputs as an .npz file") from None


def npz_feeds(path: str | os.PathLike, specs: Sequence[InputSpec]) -> list[tuple[dict, dict]]:
    with np.load(path) as data:
        feeds = {k: data[k] for k in data.files}
    missing = [s.name for s in specs if s.name not in feeds]
    if missing:
        raise OnnxModelError(f"{path} has no array for input(s) {missing}; it holds {sorted(feeds)}")
    return [({}, {s.name: feeds[s.name].astype(s.dtype, copy=False) for s in specs})]


def verify_models(original: onnx.ModelProto, plugged: onnx.ModelProto, *,
                  inputs: str | os.PathLike | None = None,
                  dims: Mapping[str, Sequence[int]] | None = None, seed: int = 0) -> VerifyReport:
    """Run both models on the same inputs and compare every output."""
    specs = input_specs(original)
    plugged_inputs = {s.name for s in input_specs(plugged)}
    if plugged_inputs != {s.name for s in specs}:
        raise OnnxModelError(f"the models take different inputs: original {sorted(s.name for s in specs)}, "
                             f"plugged {sorted(plugged_inputs)}")
    outputs = [o.name for o in original.graph.output]
    if [o.name for o in plugged.graph.output] != outputs:
        raise OnnxModelError(f"the models have different outputs: original {outputs}, "
                             f"plugged {[o.name for o in plugged.graph.output]}")
    runs = npz_feeds(inputs, specs) if inputs is not None else random_feeds(specs, dims, seed)

    original_runner, plugged_runner = ReferenceRunner(original), ReferenceRunner(plugged)
    checks = []
    for run, (chosen, feeds) in enumerate(runs):
        expected = original_runner.run(feeds)
        actual = plugged_runner.run(feeds)
        for name in outputs:
            want, got = expected[name], actual[name]
            checks.append(OutputCheck(run, chosen, name, compare(got, want, want.dtype)))
    return VerifyReport(checks, [f"{n.name} ({n.op_type})" for n in plugin_nodes(plugged)])


def verify_files(original, plugged, **kwargs) -> VerifyReport:
    return verify_models(load_model(original), load_model(plugged), **kwargs)
