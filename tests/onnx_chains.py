"""Small ONNX models around an RMSNorm chain, written node by node, for the
ONNX tooling tests (the spellings torch's exporters emit, and others)."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclasses.dataclass
class Chain:
    """How the RMSNorm chain is spelled and what surrounds it."""

    shape: tuple = ("N", 5, 16)       # str = dynamic dimension
    normalized: int = 1               # trailing axes normalized over
    epsilon: float = 1e-5
    square: str = "Pow"               # Pow | Mul
    inverse: str = "Reciprocal"       # Reciprocal | Div1 | DivX
    cast: str = "none"                # none | norm | all (fp16 input, computed in fp32)
    scale: bool = True
    swap_add: bool = False            # Add(eps, mean) instead of Add(mean, eps)
    swap_mul: bool = False            # Mul(inv, x) and Mul(w, y)
    opset: int = 18                   # < 18: ReduceMean axes as attribute
    constant_nodes: bool = False      # constants as Constant nodes (TorchScript) not initializers
    pre: tuple = ()                   # ops before: Relu | Bias | MatMul
    post: tuple = ()                  # ops after: Tanh | Bias | MatMul
    seed: int = 0

    @property
    def dtype(self):
        return np.float16 if self.cast != "none" else np.float32


def build(c: Chain, *, extra_output: str | None = None, eps_input: bool = False) -> onnx.ModelProto:
    """The model ``X -> pre -> RMSNorm chain -> post -> Y``.

    ``extra_output`` names a chain tensor ("mean", "inv"...) to expose as a
    second graph output too (so the chain cannot be replaced); ``eps_input``
    makes epsilon a graph input.
    """
    rng = np.random.default_rng(c.seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(c.dtype))
    rank, last = len(c.shape), c.shape[-1]
    nodes, inits, inputs = [], [], [helper.make_tensor_value_info("X", elem, list(c.shape))]
    counter = [0]

    def const(name, value):
        value = np.asarray(value)
        if c.constant_nodes:
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name)))
        else:
            inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op, *ins, **attrs):
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, list(ins), [out], name=f"/{op}_{counter[0]}", **attrs))
        return out

    def elementwise(kind, x, dtype):
        if kind == "Relu":
            return node("Relu", x)
        if kind == "Tanh":
            return node("Tanh", x)
        if kind == "Bias":
            return node("Add", x, const(f"bias_{counter[0]}", rng.standard_normal(last).astype(dtype)))
        if kind == "MatMul":
            w = (rng.standard_normal((last, last)) / np.sqrt(last)).astype(dtype)
            return node("MatMul", x, const(f"weight_{counter[0]}", w))
        raise ValueError(kind)

    x = "X"
    for kind in c.pre:
        x = elementwise(kind, x, c.dtype)
    compute = np.float32
    xc = node("Cast", x, to=TensorProto.FLOAT) if c.cast != "none" else x
    sq = node("Pow", xc, const("two", np.array(2.0, compute))) if c.square == "Pow" else node("Mul", xc, xc)
    axes = list(range(-c.normalized, 0))
    if c.opset >= 18:
        mean = node("ReduceMean", sq, const("axes", np.array(axes, np.int64)), keepdims=1)
    else:
        mean = node("ReduceMean", sq, axes=axes, keepdims=1)
    if eps_input:
        inputs.append(helper.make_tensor_value_info("eps", TensorProto.FLOAT, []))
        eps = "eps"
    else:
        eps = const("eps", np.array(c.epsilon, compute))
    var = node("Add", *((eps, mean) if c.swap_add else (mean, eps)))
    rms = node("Sqrt", var)
    named = {"mean": mean, "var": var, "rms": rms}
    if c.inverse == "DivX":
        y = node("Div", xc, rms)
    else:
        inv = node("Reciprocal", rms) if c.inverse == "Reciprocal" else node("Div", const("one", np.array(1.0, compute)), rms)
        named["inv"] = inv
        y = node("Mul", *((inv, xc) if c.swap_mul else (xc, inv)))
    if c.cast == "norm":
        y = node("Cast", y, to=elem)
    if c.scale:
        scale_dtype = compute if c.cast == "all" else c.dtype
        w = const("scale", (1 + 0.1 * rng.standard_normal(c.shape[rank - c.normalized:])).astype(scale_dtype))
        y = node("Mul", *((w, y) if c.swap_mul else (y, w)))
    if c.cast == "all":
        y = node("Cast", y, to=elem)
    for kind in c.post:
        y = elementwise(kind, y, c.dtype)
    nodes.append(helper.make_node("Identity", [y], ["Y"], name="/output"))
    outputs = [helper.make_tensor_value_info("Y", elem, list(c.shape))]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(named[extra_output], TensorProto.FLOAT, [None] * rank))
    graph = helper.make_graph(nodes, "rms_chain", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c.opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def onnx_rms_normalization(shape=("N", 6), axis=-1, epsilon=1e-5, dtype=np.float32, *, scale_shape=None,
                           scale_dtype=None, **attrs) -> onnx.ModelProto:
    """The standard RMSNormalization node (opset 23) between two Relus. ``dtype`` and
    ``scale_dtype`` are numpy dtypes or "bfloat16"; ``attrs`` go on the node (stash_type...)."""
    elem = _elem_type(dtype)
    scale_elem = _elem_type(scale_dtype if scale_dtype is not None else dtype)
    scale_shape = list(shape[axis:]) if scale_shape is None else list(scale_shape)
    values = np.linspace(0.5, 1.5, int(np.prod(scale_shape))).astype(np.float32)
    scale = helper.make_tensor("scale", scale_elem, scale_shape, values.tolist())
    y_elem = scale_elem  # ONNX types Y with the scale's type
    nodes = [helper.make_node("Relu", ["X"], ["r"], name="/relu"),
             helper.make_node("RMSNormalization", ["r", "scale"], ["n"], name="/rms", axis=axis, epsilon=epsilon,
                              **attrs),
             helper.make_node("Tanh", ["n"], ["Y"], name="/tanh")]
    graph = helper.make_graph(nodes, "rms_node", [helper.make_tensor_value_info("X", elem, list(shape))],
                              [helper.make_tensor_value_info("Y", y_elem, list(shape))], initializer=[scale])
    graph.value_info.append(helper.make_tensor_value_info("n", y_elem, list(shape)))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def _elem_type(dtype):
    if isinstance(dtype, str) and dtype == "bfloat16":
        return TensorProto.BFLOAT16
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
