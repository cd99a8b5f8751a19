"""torch custom ops from the schemas, and their ONNX export (both exporters)."""
import contextlib
import inspect
import io
import warnings

import numpy as np
import onnx
import onnxscript  # noqa: F401  (the dynamo exporter needs it; in the test extra)
import pytest
import torch
from onnx import helper

from plugkit.onnx_export import export, torchscript_symbolic
from plugkit.onnx_tools import DOMAIN, plugin_nodes
from plugkit.onnx_tools.reference import reference_ops
from plugkit.ops import get_schema
from plugkit.schema import Attr, OpSchema
from plugkit.torch_ops import torch_op, torch_op_name, torch_schema


@pytest.fixture(scope="module")
def rms_norm():
    return torch_op("RMSNorm")


class Block(torch.nn.Module):
    """Linear -> plugkit RMSNorm -> Linear."""

    def __init__(self, rms_norm, dim=16):
        super().__init__()
        torch.manual_seed(0)
        self.rms_norm = rms_norm
        self.inp, self.out = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.weight = torch.nn.Parameter(1 + 0.1 * torch.randn(dim))

    def forward(self, x):
        return self.out(self.rms_norm(self.inp(x), self.weight, axis=-1, epsilon=1e-6))


def test_names_and_schema_string():
    assert torch_op_name(get_schema("RMSNorm")) == "rms_norm"
    assert torch_op_name(OpSchema("GeLUTanh", ("X",), ("Y",))) == "ge_lu_tanh"
    assert torch_schema(get_schema("RMSNorm")) == "(Tensor X, Tensor scale, int axis=-1, float epsilon=1e-05, int stash_type=1) -> Tensor"
    every_type = OpSchema("Many", ("A", "B"), ("Y", "Z"), attrs=(
        Attr("i", "int64", 3), Attr("f", "float32", 0.5), Attr("ints", "int32[]", (1, 2)),
        Attr("floats", "float32[]", (0.25,)), Attr("mode", "string", 'say "hi"')))
    assert torch_schema(every_type) == (
        '(Tensor A, Tensor B, int i=3, float f=0.5, int[] ints=[1, 2], float[] floats=[0.25], '
        'str mode="say \\"hi\\"") -> (Tensor, Tensor)')
    torch._C.parse_schema("plugkit::many" + torch_schema(every_type))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_eager_runs_the_reference(rms_norm, dtype):
    x, w = torch.randn(3, 4, 32).to(dtype), (1 + torch.randn(32) / 10).to(dtype)
    y = rms_norm(x, w, epsilon=1e-6)
    assert y.dtype == dtype and y.shape == x.shape
    expected = get_schema("RMSNorm").run_reference(x.float().numpy(), w.float().numpy(), epsilon=1e-6)[0]
    np.testing.assert_allclose(y.float().numpy(), expected, rtol=1e-2 if dtype != torch.float32 else 1e-6, atol=1e-2)
    if dtype == torch.float32:
        torch.testing.assert_close(y, torch.nn.functional.rms_norm(x, (32,), w, 1e-6))
    y2 = rms_norm(x.reshape(3, 2, 2, 32), w.reshape(1, 32), axis=-2, epsilon=1e-6)
    assert y2.shape == (3, 2, 2, 32)


def test_opcheck_and_tracing(rms_norm):
    x, w = torch.randn(2, 5, 8), torch.randn(8)
    torch.library.opcheck(rms_norm, (x, w, -1, 1e-6), test_utils=("test_schema", "test_faketensor"))
    compiled = torch.compile(lambda a, b: rms_norm(a, b) * 2, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, w), rms_norm(x, w) * 2)
    exported = torch.export.export(Block(rms_norm, 8), (x,), dynamic_shapes=({1: torch.export.Dim("t")},))
    assert any(n.target == torch.ops.plugkit.rms_norm.default for n in exported.graph.nodes)


def run_export(module, x, path, dynamo):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")}
            export(module, (x,), path, dynamo=True, input_names=["x"], output_names=["y"],
                   dynamic_shapes=(dims,))
        else:
            export(module, (x,), path, dynamo=False, input_names=["x"], output_names=["y"],
                   dynamic_axes={"x": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}}, opset_version=17)
    return onnx.load(path)


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_export_emits_one_plugin_node(rms_norm, tmp_path, dynamo):
    module = Block(rms_norm).eval()
    x = torch.randn(2, 7, 16)
    model = run_export(module, x, tmp_path / "block.onnx", dynamo)
    onnx.checker.check_model(model, full_check=True)

    (node,) = plugin_nodes(model)
    assert [n for n in model.graph.node if n.op_type == "RMSNorm"] == [node]
    assert node.op_type == "RMSNorm" and node.domain == DOMAIN
    attrs = {a.name: a for a in node.attribute}
    assert set(attrs) == {"plugin_version", "plugin_namespace", "axis", "epsilon", "stash_type"}
    assert attrs["plugin_version"].s == b"1" and attrs["plugin_namespace"].s == b"plugkit"
    assert attrs["axis"].type == onnx.AttributeProto.INT and attrs["axis"].i == -1
    assert attrs["epsilon"].type == onnx.AttributeProto.FLOAT and attrs["epsilon"].f == pytest.approx(1e-6)
    assert any(o.domain == DOMAIN and o.version == 1 for o in model.opset_import)

    # Dynamic axes: the graph input and the plugin output keep symbolic dims.
    x_dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_param") for d in x_dims] == [True, True, False]
    typed = {v.name: v for v in (*model.graph.value_info, *model.graph.output)}
    out_dims = typed[node.output[0]].type.tensor_type.shape.dim
    assert len(out_dims) == 3 and out_dims[2].dim_value == 16

    # The exported model runs (plugin through its reference) at other sizes.
    evaluator = onnx.reference.ReferenceEvaluator(model, new_ops=reference_ops())
    for shape in [(1, 3, 16), (4, 11, 16)]:
        x = torch.randn(shape)
        (y,) = evaluator.run(None, {"x": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), module(x).detach(), rtol=1e-5, atol=1e-5)


def test_torchscript_symbolic_attribute_kinds():
    schema = OpSchema("Kinds", ("X",), ("Y",), attrs=(
        Attr("n", "int32", 1), Attr("f", "float32", 1.0), Attr("ints", "int64[]", (1,)),
        Attr("floats", "float32[]", (1.0,)), Attr("s", "string", "a")))
    symbolic = torchscript_symbolic(schema)
    # parse_args converts by position and name: both must follow the schema.
    assert list(inspect.signature(symbolic).parameters) == ["g", "X", "n", "f", "ints", "floats", "s"]


def test_export_then_insert_agree(rms_norm, tmp_path):
    """Path (a), the op in the module, and path (b), insert after export,
    give the same plugin node."""
    from plugkit.onnx_tools import insert_plugins

    class Plain(torch.nn.Module):
        def __init__(self, block):
            super().__init__()
            self.block = block

        def forward(self, x):
            b = self.block
            h = b.inp(x)
            return b.out(torch.nn.functional.rms_norm(h, (16,), b.weight, 1e-6))

    block = Block(rms_norm).eval()
    x = torch.randn(2, 7, 16)
    with contextlib.redirect_stdout(io.StringIO()):
        plain = torch.onnx.export(Plain(block).eval(), (x,), dynamo=True, opset_version=18, input_names=["x"],
                                  dynamic_shapes=({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")},)).model_proto
    inserted = insert_plugins(plain, ["RMSNorm"]).model
    from_torch = run_export(block, x, tmp_path / "a.onnx", dynamo=True)
    attrs = lambda m: {a.name: helper.get_attribute_value(a) for a in plugin_nodes(m)[0].attribute}  # noqa: E731
    assert attrs(inserted) == attrs(from_torch)
