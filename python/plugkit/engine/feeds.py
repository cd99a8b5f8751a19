"""Inputs for an engine: checking feeds against its inputs, making random ones."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .. import tensors
from ..errors import InputError
from ..shapes import check_shape_in_range, format_shape
from ..tensors import dtype_name
from .record import TensorInfo


def _feed_dtype(value) -> str:
    return dtype_name(getattr(value, "dtype", type(value).__name__))


def check_feeds(inputs: Sequence[TensorInfo], feeds: Mapping[str, Any]) -> None:
    """Input names, dtypes and shapes against the engine's inputs and profile,
    each mistake with a message that names the input and the fix."""
    expected = {t.name: t for t in inputs}
    unknown = [name for name in feeds if name not in expected]
    if unknown:
        raise InputError(f"the engine has no input(s) {', '.join(map(repr, unknown))}; its inputs are: "
                         + "; ".join(t.describe() for t in inputs))
    missing = [name for name in expected if name not in feeds]
    if missing:
        raise InputError(f"missing input(s) {', '.join(map(repr, missing))}; the engine's inputs are: "
                         + "; ".join(t.describe() for t in inputs))
    for name, value in feeds.items():
        info = expected[name]
        dtype = _feed_dtype(value)
        if dtype != info.dtype:
            raise InputError(f"input {name!r} is {dtype}, but the engine expects {info.dtype}; "
                             f"convert it (e.g. array.astype('{info.dtype}'))")
        shape = tuple(int(d) for d in getattr(value, "shape", ()))
        if info.profile is not None:
            check_shape_in_range(name, shape, info.profile)
        elif len(shape) != len(info.shape) or any(d >= 0 and d != s for d, s in zip(info.shape, shape)):
            raise InputError(f"input {name!r} has shape {format_shape(shape)}, but the engine's input "
                             f"is {info.describe()}")


def make_inputs(inputs: Sequence[TensorInfo], given: Mapping[str, Any] | None = None,
                shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0) -> dict[str, Any]:
    """Inputs for a run: the given arrays, and random data for the rest, shaped
    by ``shapes`` (``run --shapes``), else the input's fixed shape, else its
    profile's OPT shape."""
    import numpy as np

    given = dict(given or {})
    shapes = dict(shapes or {})
    names = {t.name for t in inputs}
    for name in list(shapes) + list(given):
        if name not in names:
            raise InputError(f"the engine has no input {name!r}; its inputs are: "
                             + "; ".join(t.describe() for t in inputs))
    rng = np.random.default_rng(seed)
    feeds = {}
    for info in inputs:
        if info.name in given:
            feeds[info.name] = given[info.name]
            continue
        if info.name in shapes:
            shape = tuple(shapes[info.name])
        elif all(d >= 0 for d in info.shape):
            shape = info.shape
        elif info.profile is not None:
            shape = info.profile.opt
        else:
            raise InputError(f"input {info.name!r} has dynamic shape {info.describe()} and no profile; "
                             f"give it with --shapes {info.name}:SHAPE or --input {info.name}=FILE.npy")
        feeds[info.name] = random_array(rng, shape, info.dtype)
    return feeds


def random_array(rng, shape, dtype: str):
    """:func:`plugkit.tensors.random_array`, with how to pass data it cannot make."""
    try:
        return tensors.random_array(rng, shape, dtype)
    except ValueError as exc:
        raise InputError(f"{exc}; pass the input with --input NAME=FILE.npy") from None
