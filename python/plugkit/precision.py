"""Reduced precision for engine builds, for TensorRT 10 and 11 alike.

TensorRT 10 has two ways to build in fp16/bf16: weak typing (the builder flags
FP16/BF16 let it pick per layer) and strong typing (the network's tensor types
are the law). TensorRT 11 removed weak typing: there, "build in fp16" means a
model whose float tensors are fp16. :func:`precision_plan` decides, as a pure
function of the TensorRT major version and the user's flags, which of the two
happens; :func:`cast_model` is the cast for the strongly typed route (float32
tensors, weights and constants become fp16/bf16; the model's inputs and
outputs keep float32, with Casts at the edges, the way weak typing keeps them).
"""
from __future__ import annotations

import dataclasses

from .errors import PrecisionError


@dataclasses.dataclass(frozen=True)
class PrecisionPlan:
    builder_flags: tuple[str, ...]  # names of trt.BuilderFlag members to set
    strongly_typed: bool
    cast_to: str | None  # "float16" / "bfloat16": cast the model first
    notes: tuple[str, ...] = ()


_TRT11_WHY = ("TensorRT 11 builds strongly typed networks only (weak typing and the FP16/BF16 builder "
              "flags were removed)")


def precision_plan(trt_major: int, *, fp16: bool = False, bf16: bool = False,
                   strongly_typed: bool = False, strongly_typed_only: str | None = None) -> PrecisionPlan:
    """What ``--fp16`` / ``--bf16`` / ``--strongly-typed`` mean on TensorRT ``trt_major``.
    ``strongly_typed_only``: why a backend builds strongly typed networks only (TensorRT-RTX),
    whatever its version; it is then planned like TensorRT 11."""
    if strongly_typed_only:
        try:
            plan = precision_plan(11, fp16=fp16, bf16=bf16)
        except PrecisionError as exc:
            raise PrecisionError(str(exc).replace(_TRT11_WHY, strongly_typed_only)) from None
        return dataclasses.replace(plan, notes=tuple(n.replace(_TRT11_WHY, strongly_typed_only)
                                                     for n in plan.notes))
    if trt_major < 10:
        raise PrecisionError(f"TensorRT {trt_major}.x is not supported; plugkit needs TensorRT 10 or newer "
                             f"(IPluginV3)")
    wanted = [name for name, on in (("float16", fp16), ("bfloat16", bf16)) if on]
    if trt_major >= 11 or strongly_typed:
        why = _TRT11_WHY if trt_major >= 11 else "--strongly-typed"
        if len(wanted) > 1:
            raise PrecisionError(
                f"{why}: a strongly typed network has one float type, so choose --fp16 or --bf16, "
                f"not both")
        notes = ()
        if wanted:
            notes = (f"{why}: casting the model's float32 tensors to {wanted[0]} before the build "
                     f"(inputs and outputs stay float32)",)
        return PrecisionPlan((), True, wanted[0] if wanted else None, notes)
    flags = tuple(flag for flag, on in (("FP16", fp16), ("BF16", bf16)) if on)
    return PrecisionPlan(flags, False, None)


# --- the cast pass -----------------------------------------------------------

# Inputs that ONNX requires to be float32 whatever the data type (index per op).
FLOAT32_ONLY_INPUTS = {
    "Resize": (1, 2),  # roi, scales
    "Upsample": (1,),  # scales
}
# Attributes that name an output data type.
DTYPE_ATTRS = ("to", "dtype")


def _target(name: str):
    import onnx

    try:
        return {"float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16}[name]
    except KeyError:
        raise PrecisionError(f"cannot cast a model to {name!r}; use float16 or bfloat16") from None


def _cast_tensor(tensor, target_name: str):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    if tensor.data_type != onnx.TensorProto.FLOAT:
        return tensor
    array = numpy_helper.to_array(tensor)
    if target_name == "float16":
        converted = array.astype(np.float16)
    else:
        import ml_dtypes

        converted = array.astype(ml_dtypes.bfloat16)
    out = numpy_helper.from_array(converted, tensor.name)
    return out


def _rename_inputs(graph, old: str, new: str) -> None:
    """Replace uses of ``old`` by ``new`` in ``graph`` and its subgraphs (which
    may read outer-scope names)."""
    import onnx

    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_inputs(attr.g, old, new)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    _rename_inputs(sub, old, new)


def _cast_graph(graph, target_name: str, target, counter: list[int]) -> None:
    import onnx
    from onnx import helper

    # Which initializers feed only float32-only slots: those stay float32.
    float32_slots: dict[str, bool] = {}
    for node in graph.node:
        keep = FLOAT32_ONLY_INPUTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ()
        for i, name in enumerate(node.input):
            if name:
                float32_slots[name] = float32_slots.get(name, True) and i in keep
    kept = set()
    for i, init in enumerate(graph.initializer):
        if init.data_type == onnx.TensorProto.FLOAT:
            if float32_slots.get(init.name, False):
                kept.add(init.name)
                continue
            graph.initializer[i].CopyFrom(_cast_tensor(init, target_name))

    new_nodes = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.name in DTYPE_ATTRS and attr.type == onnx.AttributeProto.INT \
                    and attr.i == onnx.TensorProto.FLOAT:
                attr.i = target
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == onnx.TensorProto.FLOAT:
                attr.t.CopyFrom(_cast_tensor(attr.t, target_name))
            elif attr.type == onnx.AttributeProto.GRAPH:
                _cast_graph(attr.g, target_name, target, counter)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    _cast_graph(sub, target_name, target, counter)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in list(node.attribute):
                if attr.name in ("value_float", "value_floats"):
                    import numpy as np

                    values = np.array(attr.f if attr.name == "value_float" else list(attr.floats),
                                      dtype=np.float32)
                    tensor = _cast_tensor(onnx.numpy_helper.from_array(values), target_name)
                    node.attribute.remove(attr)
                    node.attribute.append(helper.make_attribute("value", tensor))
        keep = FLOAT32_ONLY_INPUTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ()
        for i in keep:
            if i < len(node.input) and node.input[i] and node.input[i] not in kept:
                # A computed tensor (now reduced precision) feeding a float32-only slot.
                counter[0] += 1
                cast_name = f"{node.input[i]}__plugkit_f32_{counter[0]}"
                new_nodes.append(helper.make_node("Cast", [node.input[i]], [cast_name],
                                                  to=onnx.TensorProto.FLOAT,
                                                  name=f"plugkit_cast_f32_{counter[0]}"))
                node.input[i] = cast_name
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)

    for value in graph.value_info:
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            value.type.tensor_type.elem_type = target


def cast_model(model, to: str = "float16"):
    """A copy of ``model`` (``onnx.ModelProto``) whose float32 computation runs in
    ``to`` ("float16" or "bfloat16"). Graph inputs and outputs keep float32:
    a Cast after each float input and before each float output does the change."""
    import onnx
    from onnx import helper

    target = _target(to)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    counter = [0]
    initializer_names = {init.name for init in graph.initializer}
    _cast_graph(graph, to, target, counter)

    head = []
    for value in graph.input:
        if value.name in initializer_names or value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            continue
        cast_name = f"{value.name}__plugkit_{to}"
        _rename_inputs(graph, value.name, cast_name)
        head.append(helper.make_node("Cast", [value.name], [cast_name], to=target,
                                     name=f"plugkit_cast_in_{value.name}"))
    tail = []
    for value in graph.output:
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            continue
        inner = f"{value.name}__plugkit_{to}"
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == value.name:
                    node.output[i] = inner
        _rename_inputs(graph, value.name, inner)
        if any(value.name == i.name for i in graph.input):  # an input passed straight through
            continue
        tail.append(helper.make_node("Cast", [inner], [value.name], to=onnx.TensorProto.FLOAT,
                                     name=f"plugkit_cast_out_{value.name}"))
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    # Casts to bfloat16 need opset 13.
    for opset in out.opset_import:
        if opset.domain in ("", "ai.onnx") and to == "bfloat16" and opset.version < 13:
            raise PrecisionError(f"casting to bfloat16 needs ONNX opset 13 or newer; the model "
                                 f"uses opset {opset.version}")
    return out
