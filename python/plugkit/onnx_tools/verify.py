"""Checking that a plugged model computes what the original computed
(``plugkit verify``).

Both models run in ``onnx.reference.ReferenceEvaluator``, the plugged one with
each plugin node computed by its op's numpy reference: like is compared with
like, so an unchanged model matches itself exactly and the only differences
are the replaced subgraphs (ONNX Runtime and the evaluator differ by more than
a dtype tolerance over a whole fp16 graph), and bf16 models, which ONNX
Runtime's CPU provider cannot run, are verified too. Where the evaluator cannot
run the original (an op it lacks or gets wrong), ONNX Runtime runs it instead, and
the comparison is across evaluators, at the same tolerances. One model is in memory at
a time. Inputs come from an ``.npz`` or are random, at several values of each
dynamic dimension. Outputs are compared with :func:`plugkit.tolerances.compare`
(the tolerance table every test uses; ``rtol``/``atol`` override it). With
``device="cuda"`` the plugged model's plugin nodes run the plugins themselves,
from a plugin library, on the GPU (:mod:`plugkit.device_nodes`); the rest of
both models stays in the evaluator.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from ..errors import OnnxModelError
from ..tensors import random_array
from ..tolerances import Comparison, compare
from .model_io import load_model, load_model_for_running
from .plugin_node import plugin_nodes
from .reference import ReferenceRunner

# Values a dynamic dimension takes when --dim does not say.
DEFAULT_DIM_VALUES = (1, 3, 8)
# Random inputs larger than this many elements are refused (a typo in --dim, not a test).
MAX_RANDOM_ELEMENTS = 1 << 28


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
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OnnxModelError(f"seed {seed!r}: expected a non-negative integer")
    rng = np.random.default_rng(seed)
    out = []
    for run in range(runs):
        chosen = {d: v[run % len(v)] for d, v in values.items()}
        feeds = {}
        for spec in specs:
            shape = tuple(chosen[d] if isinstance(d, str) else d for d in spec.dims)
            if np.prod(shape, dtype=object) > MAX_RANDOM_ELEMENTS:
                raise OnnxModelError(f"input {spec.name} would have shape {shape} "
                                     f"(over {MAX_RANDOM_ELEMENTS} elements); choose smaller --dim values")
            feeds[spec.name] = _random_array(rng, shape, spec.dtype)
        out.append((chosen, feeds))
    return out


def _random_array(rng, shape, dtype) -> np.ndarray:
    try:
        return random_array(rng, shape, dtype)
    except ValueError as exc:
        raise OnnxModelError(f"{exc}; pass the inputs as an .npz file") from None


def npz_feeds(path: str | os.PathLike, specs: Sequence[InputSpec]) -> list[tuple[dict, dict]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            feeds = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise OnnxModelError(f"--inputs {path}: no such file") from None
    except Exception as exc:  # np.load raises BadZipFile, ValueError, EOFError, pickle errors...
        raise OnnxModelError(f"--inputs {path} is not a readable .npz of numeric arrays ({exc})") from None
    missing = [s.name for s in specs if s.name not in feeds]
    if missing:
        raise OnnxModelError(f"{path} has no array for input(s) {missing}; it holds {sorted(feeds)}")
    out = {}
    for spec in specs:
        array = feeds[spec.name]
        if array.dtype.kind not in "fiub" and array.dtype != spec.dtype:
            raise OnnxModelError(f"{path}: array {spec.name} has dtype {array.dtype}; the model takes {spec.dtype}")
        if len(array.shape) != len(spec.dims) or any(
                isinstance(d, int) and d != n for d, n in zip(spec.dims, array.shape)):
            raise OnnxModelError(f"{path}: array {spec.name} has shape {array.shape}; the model takes "
                                 f"{tuple(spec.dims)}")
        out[spec.name] = array.astype(spec.dtype, copy=False)
    return [({}, out)]


# A model to run and the extra feeds it needs (its large weights, mapped from disk).
ModelSource = Callable[[], tuple[onnx.ModelProto, dict]]


def verify_models(original: onnx.ModelProto, plugged: onnx.ModelProto, *,
                  inputs: str | os.PathLike | None = None,
                  dims: Mapping[str, Sequence[int]] | None = None, seed: int = 0,
                  rtol: float | None = None, atol: float | None = None,
                  device: str = "cpu", plugins: Sequence[str | os.PathLike] = ()) -> VerifyReport:
    """Run both models on the same inputs and compare every output. ``device="cuda"``: the plugged
    model's plugin nodes run their plugins from ``plugins`` on the GPU (:mod:`plugkit.device_nodes`)."""
    return _verify(original, plugged, lambda: (original, {}), lambda: (plugged, {}), inputs=inputs, dims=dims,
                   seed=seed, rtol=rtol, atol=atol, device=device, plugins=plugins)


def verify_files(original, plugged, **kwargs) -> VerifyReport:
    """:func:`verify_models` on two files; their weights (external data too) are read one
    model at a time."""
    return _verify(load_model(original), load_model(plugged),
                   lambda: load_model_for_running(original), lambda: load_model_for_running(plugged),
                   **kwargs)


def _verify(original: onnx.ModelProto, plugged: onnx.ModelProto, load_original: ModelSource,
            load_plugged: ModelSource, *, inputs=None, dims=None, seed: int = 0,
            rtol: float | None = None, atol: float | None = None, device: str = "cpu",
            plugins: Sequence[str | os.PathLike] = ()) -> VerifyReport:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and not (value >= 0 and np.isfinite(value)):
            raise OnnxModelError(f"--{name} {value}: expected a non-negative number")
    if plugin_nodes(original) and not plugin_nodes(plugged):
        raise OnnxModelError("the first model has plugin nodes and the second has none; the arguments "
                             "are swapped: plugkit verify ORIGINAL PLUGGED")
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
    node_names = [f"{n.name} ({n.op_type})" for n in plugin_nodes(plugged)]
    plugin_ops = _plugin_ops(plugged, device, plugins)
    del original, plugged

    try:
        expected = _evaluate("original", load_original, outputs, runs)
    except OnnxModelError:
        expected = _evaluate("original", load_original, outputs, runs, evaluator=False)
    actual = _evaluate("plugged", load_plugged, outputs, runs, plugin_ops)
    checks = []
    for run, (chosen, _) in enumerate(runs):
        for name, want, got in zip(outputs, expected[run], actual[run]):
            want, got = np.asarray(want), np.asarray(got)
            if want.shape != got.shape:
                raise OnnxModelError(f"output {name}: the plugged model gives shape {got.shape}, the "
                                     f"original {want.shape}")
            checks.append(OutputCheck(run, chosen, name, compare(got, want, _dtype_name(want.dtype),
                                                                 rtol=rtol, atol=atol)))
    return VerifyReport(checks, node_names)


def _dtype_name(dtype: np.dtype) -> str:
    return "bfloat16" if str(dtype) == "bfloat16" else np.dtype(dtype).name


def _plugin_ops(plugged: onnx.ModelProto, device: str, plugins) -> list | None:
    """What runs the plugin nodes: their references (None) on "cpu", their plugins on "cuda"."""
    if device == "cpu":
        if plugins:
            raise OnnxModelError("--plugins is for --device cuda (on the CPU, plugin nodes run their references)")
        return None
    if device != "cuda":
        raise OnnxModelError(f"--device {device!r}: expected cpu or cuda")
    from ..device_nodes import device_ops

    return device_ops(plugged, plugins)


def _evaluate(which: str, load: ModelSource, outputs: list[str], runs,
              plugin_ops: list | None = None, evaluator: bool = True) -> list[list[np.ndarray]]:
    """Every run of one model in the reference evaluator (or, not ``evaluator``, in ONNX
    Runtime for a model without plugin nodes); the model is dropped after."""
    model, weights = load()
    runner = ReferenceRunner(model, evaluator=evaluator, weights=weights, plugin_ops=plugin_ops)
    results = []
    for chosen, feeds in runs:
        try:
            result = runner.run(feeds)
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # the evaluator raises anything from numpy on a bad model
            dims = ", ".join(f"{k}={v}" for k, v in chosen.items()) or "the given inputs"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise OnnxModelError(f"the {which} model cannot be evaluated at {dims}: "
                                 f"{type(exc).__name__}: {first}") from None
        results.append([result[name] for name in outputs])
    return results
