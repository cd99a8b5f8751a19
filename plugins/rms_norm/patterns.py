"""ONNX subgraphs that compute RMSNorm, for ``plugkit insert --op RMSNorm``.

Two forms reach an ONNX file:

- the standard ``RMSNormalization`` node (opset 23), which torch's dynamo
  exporter emits for ``torch.nn.RMSNorm`` / ``F.rms_norm`` (and fuses
  hand-written fp32 chains into) at opset >= 23;
- below opset 23, and from the TorchScript exporter, the chain

      X -> [Cast to float] -> Pow(., 2) | Mul(x, x) -> ReduceMean(keepdims=1)
        -> Add epsilon -> Sqrt -> Reciprocal | Div(1, .) -> Mul x
        -> [Cast back] -> Mul scale -> [Cast back]

  or ``Div(x, Sqrt(...))`` for the normalization. The dynamo exporter writes
  Sqrt -> Reciprocal and ReduceMean axes as an input, the TorchScript one
  Div(1, Sqrt) and axes as an attribute; fp16 modules cast to float32 around
  the normalization (Llama's RMSNorm) or around all of it (torch.nn.RMSNorm).
  The TorchScript exporter may cast X twice, once for the square and once for
  the normalizing multiply (T5's norm in fp16: two identical Cast(x -> float)).

Operand order of Add / Mul and the two ReduceMean axes forms are handled by
:class:`~plugkit.onnx_tools.Pattern`. A chain without the scale multiply
becomes the plugin with a scale of ones.
"""
import itertools

import numpy as np
import onnx

from plugkit.onnx_tools import Match, NotReplaceable, Pattern, Replacement, Rewrite, constant_value
from plugkit.ops import get_schema

SQUARES = ("Pow", "Mul")
INVERSES = ("Reciprocal", "Div1", "DivX")  # 1/Sqrt via Reciprocal, via Div(1, .), or x / Sqrt
CASTS = ("none", "norm", "all")  # no casts; cast back before the scale; cast back after it
PLUGIN_DTYPES = frozenset(get_schema("RMSNorm").dtypes)  # names: "float32", "float16", "bfloat16"


def _casts_to_float(node):
    return node.attrs.get("to") == onnx.TensorProto.FLOAT


def _keeps_dims(node):
    return node.attrs.get("keepdims", 1) == 1


def chain(square: str, inverse: str, cast: str, scale: bool, cast_twice: bool = False) -> Pattern:
    """One spelling of x / sqrt(mean(x^2) + eps) * scale; ``cast_twice``: the normalizing
    multiply reads its own Cast of X."""
    p = Pattern(f"rms_norm_chain({square}, {inverse}, cast={cast}{' twice' if cast_twice else ''}, "
                f"{'scale' if scale else 'no scale'})")
    x_in = p.input("X")
    x = p.op("Cast", x_in, name="cast_in", check=_casts_to_float) if cast != "none" else x_in
    x_normalized = p.op("Cast", x_in, name="cast_in_again", check=_casts_to_float) if cast_twice else x
    if square == "Pow":
        squared = p.op("Pow", x, p.constant("two", 2.0), name="square")
    else:
        squared = p.op("Mul", x, x, name="square")
    mean = p.op("ReduceMean", squared, p.constant("axes", optional=True), name="mean", check=_keeps_dims)
    rms = p.op("Sqrt", p.op("Add", mean, p.constant("epsilon"), name="add_epsilon"), name="sqrt")
    if inverse == "DivX":
        y = p.op("Div", x_normalized, rms, name="normalize")
    else:
        inv = (p.op("Reciprocal", rms, name="inverse") if inverse == "Reciprocal"
               else p.op("Div", p.constant("one", 1.0), rms, name="inverse"))
        y = p.op("Mul", x_normalized, inv, name="normalize")
    if cast == "norm":
        y = p.op("Cast", y, name="cast_out")
    if scale:
        y = p.op("Mul", y, p.input("scale"), name="apply_scale")
    if cast == "all":
        y = p.op("Cast", y, name="cast_out")
    return p.output(y)


def onnx_rms_normalization() -> Pattern:
    p = Pattern("onnx RMSNormalization")
    return p.output(p.op("RMSNormalization", p.input("X"), p.input("scale"), name="rms_norm"))


# -- turning a match into the plugin's inputs and attributes ---------------------------

def _rank(tensor):
    return len(tensor.shape) if tensor.shape is not None else None


def _axis_from_axes(axes, rank) -> int:
    """The plugin's ``axis`` (normalize over axis..last) for ReduceMean ``axes``."""
    if rank == 0:
        raise NotReplaceable("X is a scalar; the plugin needs X of rank >= 1")
    if axes is None:  # ReduceMean without axes reduces everything
        return -rank if rank else 0
    axes = sorted(int(a) for a in np.asarray(axes).reshape(-1))
    if rank is not None:
        axes = sorted(a % rank for a in axes)
        if axes and axes == list(range(axes[0], rank)):
            return axes[0] - rank
    elif axes and axes == list(range(axes[0], 0)):
        return axes[0]
    raise NotReplaceable(f"ReduceMean reduces axes {axes} of a rank-{rank if rank is not None else '?'} "
                         f"tensor; the plugin normalizes over trailing axes only")


def _dtype(tensor) -> str | None:
    """The tensor's dtype by name ("bfloat16"), or None when unknown. onnx-graphsurgeon gives a
    numpy dtype, or the ONNX element type number where numpy has none (16 for BFLOAT16)."""
    dtype = tensor.dtype
    if dtype is None:
        return None
    if isinstance(dtype, (int, np.integer)) and not isinstance(dtype, bool):
        try:
            return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(dtype))).name
        except (KeyError, TypeError, ValueError):
            return onnx.TensorProto.DataType.Name(int(dtype)).lower()
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def _check_dtypes(x, y):
    if _dtype(x) is None or _dtype(y) is None:
        raise NotReplaceable("the dtype of the input or result is unknown (shape inference failed)")
    if _dtype(x) != _dtype(y):
        raise NotReplaceable(f"input is {_dtype(x)} but the result is {_dtype(y)}; "
                             f"the plugin returns its input's dtype")
    if _dtype(x) not in PLUGIN_DTYPES:
        raise NotReplaceable(f"the input is {_dtype(x)}; the plugin takes {', '.join(sorted(PLUGIN_DTYPES))}")
    if x.shape is not None and y.shape is not None:
        same = len(x.shape) == len(y.shape) and all(
            a == b for a, b in zip(x.shape, y.shape) if isinstance(a, int) and isinstance(b, int))
        if not same:
            raise NotReplaceable(f"the result's shape {y.shape} differs from the input's {x.shape}")


def _scale_input(scale, x, axis):
    """``scale`` as the plugin takes it: fp32, fp16 or bf16 (its own dtype, not necessarily X's),
    broadcastable to X.shape[axis:]."""
    if scale is None:  # no scale multiply in the chain: scale by ones (exact in fp32)
        rank = _rank(x)
        dims = x.shape[axis:] if rank is not None and axis < 0 else None
        shape = tuple(dims) if dims and all(isinstance(d, int) for d in dims) else (1,)
        dtype = _dtype(x) if _dtype(x) in ("float32", "float16") else "float32"  # numpy has no bfloat16
        return np.ones(shape, dtype)
    value = constant_value(scale)
    if value is not None and value.size and np.all(value == 1):
        # nn.RMSNorm(elementwise_affine=False) at opset 23: ones of X's full shape.
        return _scale_input(None, x, axis)
    if scale.shape is None:
        raise NotReplaceable(f"the shape of scale {scale.name!r} is unknown")
    normalized = -axis if axis < 0 else None if _rank(x) is None else _rank(x) - axis
    if normalized is not None and len(scale.shape) > normalized:
        raise NotReplaceable(f"scale {scale.name!r} has shape {list(scale.shape)}, which reaches "
                             f"beyond the normalized axes; the plugin scales those only")
    if _dtype(scale) in PLUGIN_DTYPES:
        return scale
    value = constant_value(scale)
    if value is None:
        raise NotReplaceable(f"scale {scale.name!r} is {_dtype(scale)} and not a constant; "
                             f"the plugin takes a scale of {', '.join(sorted(PLUGIN_DTYPES))}")
    return value.astype(np.float32)


def from_chain(m: Match) -> Replacement:
    x, y = m.input("X"), m.outputs[0]
    _check_dtypes(x, y)
    mean = m.node("mean")
    if m.input("axes") is not None and m.constant("axes") is None:
        raise NotReplaceable("the ReduceMean axes are computed at run time; the plugin needs constant axes")
    axes = m.constant("axes") if m.input("axes") is not None else mean.attrs.get("axes")
    if axes is None and mean.attrs.get("noop_with_empty_axes", 0):
        raise NotReplaceable("ReduceMean has no axes and noop_with_empty_axes=1 (it computes nothing)")
    axis = _axis_from_axes(axes, _rank(x))
    epsilon = m.constant("epsilon")
    if epsilon is None:
        raise NotReplaceable(f"epsilon ({m.input('epsilon').name!r}) is computed at run time; "
                             f"the plugin takes it as a constant attribute")
    if epsilon.size != 1:
        raise NotReplaceable(f"the added epsilon has shape {list(epsilon.shape)}; the plugin takes one value")
    epsilon = float(epsilon.reshape(-1)[0])
    if not epsilon > 0:
        raise NotReplaceable(f"epsilon is {epsilon}; the plugin needs epsilon > 0")
    return Replacement([x, _scale_input(m.input("scale"), x, axis)], {"axis": axis, "epsilon": epsilon})


def from_onnx_node(m: Match) -> Replacement:
    x, y, node, scale = m.input("X"), m.outputs[0], m.node("rms_norm"), m.input("scale")
    stash_type = int(node.attrs.get("stash_type", onnx.TensorProto.FLOAT))
    if stash_type != onnx.TensorProto.FLOAT:
        raise NotReplaceable(f"stash_type={stash_type} ({onnx.TensorProto.DataType.Name(stash_type)}); "
                             f"the plugin computes in float32 (stash_type=1) only")
    if _dtype(x) is not None and _dtype(scale) is not None and _dtype(x) != _dtype(scale):
        # ONNX types Y with the scale's type V; ONNX Runtime runs only X and scale of one type.
        raise NotReplaceable(f"X is {_dtype(x)} and scale {_dtype(scale)}: ONNX gives Y the scale's dtype, "
                             f"the plugin X's; give scale X's dtype")
    _check_dtypes(x, y)
    axis = int(node.attrs.get("axis", -1))
    rank = _rank(x)
    if axis >= 0:
        if rank is None:
            raise NotReplaceable(f"axis={axis} of an input of unknown rank; the plugin needs a negative axis")
        axis -= rank
    return Replacement([x, _scale_input(scale, x, axis)],
                       {"axis": axis, "epsilon": float(node.attrs.get("epsilon", 1e-5)), "stash_type": stash_type})


def _spellings():
    for square, inverse, cast, scale in itertools.product(SQUARES, INVERSES, CASTS, (True, False)):
        if not (cast == "norm" and not scale):  # without a scale, "norm" and "all" are one spelling
            yield chain(square, inverse, cast, scale)
            if cast != "none":
                yield chain(square, inverse, cast, scale, cast_twice=True)


# Larger spellings first: a chain with casts and scale is replaced whole rather
# than leaving its casts and scale multiply around a smaller match.
rewrites = [Rewrite(onnx_rms_normalization(), from_onnx_node)] + [
    Rewrite(p, from_chain) for p in sorted(_spellings(), key=lambda p: -p.size)]

# x^2 -> ReduceMean left in the graph after rewriting is reported as a partial match.
anchors = []
for _square in SQUARES:
    _p = Pattern(f"x^2 -> ReduceMean ({_square})")
    _x = _p.input("X")
    _sq = _p.op("Pow", _x, _p.constant("two", 2.0)) if _square == "Pow" else _p.op("Mul", _x, _x)
    anchors.append(_p.output(_p.op("ReduceMean", _sq, _p.constant("axes", optional=True))))
