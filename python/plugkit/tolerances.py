"""Numerical tolerances per dtype: the one table every comparison uses.

An output element passes when ``|out - ref| <= atol + rtol * |ref|`` (the
``numpy.allclose`` rule), with ``ref`` computed in float64 from the same
(rounded) inputs. fp32 is held tight; fp16 and bf16 get about two units in the
last place of their mantissa (10 and 7 bits).
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-12, atol=1e-12),
    "float32": Tolerance(rtol=1e-5, atol=1e-5),
    "float16": Tolerance(rtol=4e-3, atol=2e-3),
    "bfloat16": Tolerance(rtol=2e-2, atol=1.6e-2),
    # integer and boolean outputs must match exactly
    "int64": Tolerance(0.0, 0.0),
    "int32": Tolerance(0.0, 0.0),
    "int8": Tolerance(0.0, 0.0),
    "uint8": Tolerance(0.0, 0.0),
    "bool": Tolerance(0.0, 0.0),
}


def tolerance(dtype) -> Tolerance:
    """The tolerance for a dtype given as a name, numpy dtype or torch dtype."""
    name = str(dtype).replace("torch.", "")
    name = {"half": "float16", "float": "float32", "double": "float64"}.get(name, name)
    try:
        return TOLERANCES[name]
    except KeyError:
        raise KeyError(f"no tolerance for dtype {dtype!r}; known: {', '.join(TOLERANCES)}") from None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How far ``actual`` is from ``expected`` under a dtype's tolerance."""

    max_abs: float
    max_rel: float
    mismatched: int
    total: int
    tolerance: Tolerance

    @property
    def ok(self) -> bool:
        return self.mismatched == 0

    def __str__(self):
        return (f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
                f"{self.mismatched}/{self.total} outside rtol={self.tolerance.rtol:g} "
                f"atol={self.tolerance.atol:g}")


def compare(actual, expected, dtype, *, rtol: float | None = None, atol: float | None = None) -> Comparison:
    """Compare two arrays under ``dtype``'s tolerance (``rtol``/``atol`` replace its
    parts where given). NaN never passes, unless the reference is NaN at the same
    place; shapes must match exactly."""
    tol = tolerance(dtype)
    if rtol is not None or atol is not None:
        tol = Tolerance(tol.rtol if rtol is None else rtol, tol.atol if atol is None else atol)
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape {actual.shape} != reference shape {expected.shape}")
    if actual.size == 0:
        return Comparison(0.0, 0.0, 0, 0, tol)
    err = np.abs(actual - expected)
    both_nan = np.isnan(actual) & np.isnan(expected)
    same_inf = np.isinf(expected) & (actual == expected)
    bad = ~(err <= tol.atol + tol.rtol * np.abs(expected)) & ~both_nan & ~same_inf
    finite = np.isfinite(err)
    max_abs = float(err[finite].max()) if finite.any() else 0.0
    if not finite.all() and bad.any():
        max_abs = float("inf")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(finite, err / np.maximum(np.abs(expected), tol.atol or 1e-30), 0.0)
    return Comparison(max_abs, float(rel.max()), int(bad.sum()), int(actual.size), tol)
