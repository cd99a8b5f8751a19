"""`plugkit new --kind custom` with tensors of their own dtypes, several outputs and data-dependent
output dims: the request's checks and what the templates make of it. The build and the generated
tests of such an op run in tests/test_scaffold.py (its SplitCopy)."""
import re

import pytest

from plugkit import cli, scaffold
from plugkit.scaffold import ScaffoldError

DDS = dict(kind="custom", inputs=["X", "lengths:int32"], outputs=["Y:int32", "Z", "S:float32"],
           output_shapes=["Y=K<=X[0]*X[1],2", "S=X[0],K<=X[0] * X[1]"])


def test_tensors_take_their_own_dtypes_and_the_size_output_comes_last():
    op = scaffold.plan("NzCount", **DDS)
    assert (op.inputs, op.outputs, op.all_outputs) == (("X", "lengths"), ("Y", "Z", "S"), ("Y", "Z", "S", "K"))
    assert [op.dtype_of(t) for t in op.inputs + op.all_outputs] == [None, "int32", "int32", None, "float32", "int32"]
    assert op.io_rules == ["anyOf(kFloatTypes)", "anyOf(typeBit(nvinfer1::DataType::kINT32))",
                           "anyOf(typeBit(nvinfer1::DataType::kINT32))", "sameAs(0)",
                           "anyOf(typeBit(nvinfer1::DataType::kFLOAT))", "anyOf(typeBit(nvinfer1::DataType::kINT32))"]
    assert [s.name for s in op.sizes] == ["K"] and op.sizes[0].bound.text == "X[0] * X[1]"
    assert op.data_dependent_dims == [(0, 0, "K"), (2, 1, "K")]


def test_the_anchor_is_the_first_input_of_the_ops_dtype():
    op = scaffold.plan("Gather2", kind="custom", inputs=["ids:int64", "table"], outputs=["Y"],
                       output_shapes=["Y=ids[0],table[-1]"])
    assert op.anchor == 1 and op.io_rules == ["anyOf(typeBit(nvinfer1::DataType::kINT64))", "anyOf(kFloatTypes)",
                                              "sameAs(1)"]
    files = {p.name: t for p, t in scaffold.render(op, "/nowhere").items()}
    assert "Problem{t.inputDesc[1].type," in files["gather2_plugin.cpp"]
    assert "launchCopy<T, int64_t>(p.ids, p.idsCount, p.Y, p.YCount, 0, nullptr, stream);" in files["gather2_kernel.cu"]


def test_the_bound_becomes_an_expression_in_cpp_and_python():
    bound = scaffold.parse_bound("min(X[0] * 2, W[-1]) + 1", "K", ["X", "W"])
    assert bound.text == "min(X[0] * 2, W[-1]) + 1"
    kSUM, kMIN, kPROD = (f"nvinfer1::DimensionOperation::{k}" for k in ("kSUM", "kMIN", "kPROD"))
    assert bound.cpp_expr(["X", "W"]) == (
        f"exprs.operation({kSUM}, *exprs.operation({kMIN}, *exprs.operation({kPROD}, *in[0].d[0], "
        f"*exprs.constant(2)), *in[1].d[in[1].nbDims - 1]), *exprs.constant(1))")
    assert bound.cpp_value(["X", "W"]) == ("std::min<int64_t>((t.inputDesc[0].dims.d[0] * int64_t{2}), "
                                           "t.inputDesc[1].dims.d[t.inputDesc[1].dims.nbDims - 1]) + int64_t{1}")
    assert eval(bound.text, {"X": (5, 3), "W": (2, 7)}) == 8  # noqa: S307 - op.py's output_shapes computes this
    assert scaffold.OutputShape(dims=(scaffold.Dim(size="K", bound=bound),)).needed_rank("X") == 1


def test_generated_files_declare_the_size_tensor_and_read_it_on_the_device():
    files = {p.name: t for p, t in scaffold.render(scaffold.plan("NzCount", **DDS), "/nowhere").items()}
    plugin, kernel, header, op = (files[n] for n in ("nz_count_plugin.cpp", "nz_count_kernel.cu",
                                                     "nz_count_kernel.h", "op.py"))
    assert "kNbOutputs = 4;" in plugin
    assert "auto const* size0 = exprs.declareSizeTensor(3, *upper0, *upper0);" in plugin
    assert "out[3].nbDims = 0;" in plugin and "out[0].d[0] = size0; // K" in plugin and "out[2].d[1] = size0;" in plugin
    assert "t.outputs[0], t.outputDesc[0].dims.d[1], // elements per unit of K" in plugin
    assert "int64_t YPerK;" in header and "int32_t* K;" in header and "int64_t KUpper;" in header
    assert "launchKernel(countPositive<T>, 1, kThreads" in kernel
    assert "launchCopy<int32_t, T>(p.X, p.XCount, p.Y, p.YPerK * p.KUpper, p.YPerK, p.K, stream);" in kernel
    assert 'DATA_DEPENDENT = ((0, 0, "K"), (2, 1, "K"))' in op
    one = scaffold.render(scaffold.plan("NzCount", kind="custom", output_shapes=["Y=K<=X[0]"]), "/nowhere")
    assert 'DATA_DEPENDENT = ((0, 0, "K"),)' in one[next(p for p in one if p.name == "op.py")]
    assert 'TensorSpec("K", "0-d int32, the data-dependent size of Y\'s dim 0 and S\'s dim 1", dtype="int32")' in op


def _module(text):
    namespace = {}
    exec(compile(text, "op.py", "exec"), namespace)  # noqa: S102 - our own rendering
    return namespace


def test_the_reference_counts_positive_elements_up_to_the_bound():
    import numpy as np

    files = {p.name: t for p, t in scaffold.render(scaffold.plan("NzCount", **DDS), "/nowhere").items()}
    op = _module(files["op.py"])
    x = np.array([[1.5, -2.0, 3.0], [0.0, 4.0, -1.0]])
    y, z, s, k = op["reference"](x, np.zeros((2, 3), dtype=np.int32))
    assert k.dtype == np.int32 and k.shape == () and int(k) == 3
    assert y.dtype == np.int32 and y.tolist() == [[1, -2], [3, 0], [4, -1]]  # [K, 2]: X's first elements, truncated
    assert z.tolist() == x.tolist() and s.shape == (2, 3) and s.flat[:6].tolist() == x.flat[:6].tolist()
    assert op["output_shapes"]((2, 3), (2, 3)) == [(6, 2), (2, 3), (2, 6), ()]
    bounded = _module(files["op.py"].replace("X[0] * X[1]", "1"))  # a bound below the count clamps it
    assert int(bounded["reference"](x, x)[3]) == 1


@pytest.mark.parametrize("request_, why", [
    ({"outputs": ["Y:bool"]}, "TensorRT does not allow bool plugin outputs"),
    ({"outputs": ["Y:uint8"]}, "TensorRT does not allow uint8 plugin outputs"),
    ({"outputs": ["Y:int8"]}, "int8 is TensorRT's quantized type"),
    ({"inputs": ["X:float64"]}, "unknown dtype 'float64'"),
    ({"inputs": ["X:int32"]}, "give at least one input the op's dtype"),
    ({"inputs": ["X:int32", "M:bool"]}, "give at least one input the op's dtype"),
    ({"output_shapes": ["Y=K<=Q[0]"]}, "'Q' is not an input"),
    ({"output_shapes": ["Y=K<=X[0] / 2"]}, "must be an expression of input dims"),
    ({"output_shapes": ["Y=K<=X.shape[0]"]}, "must be an expression of input dims"),
    ({"output_shapes": ["Y=K<=Y[0]"]}, "'Y' is not an input"),
    ({"output_shapes": ["Y=K<=n"]}, "must be an expression of input dims"),
    ({"output_shapes": ["Y=K<=X[9]"]}, "an index is -8 to 7"),
    ({"output_shapes": ["Y=K<=X[0]("]}, "must be an expression of input dims"),
    ({"output_shapes": ["Y=K<=" + "+".join(["X[0]"] * 60)]}, "the limit is 200"),
    ({"output_shapes": ["Y=K<=X[0],M<=X[1]"]}, "at most one data-dependent dim"),
    ({"output_shapes": ["Y=X<=X[0]"]}, "size output X (data-dependent dim of Y) needs a name"),
    ({"output_shapes": ["Y=K<=X[0]", "Z=K<=X[1]"], "outputs": ["Y", "Z"]}, "size output K has two upper bounds"),
    ({"output_shapes": ["Y=count<=X[0]"]}, "uses for itself"),
    ({"output_shapes": ["Y=K<=X[0]"], "outputs": ["Y", "YPerK"]}, "YPerK: the generated code uses"),
])
def test_requests_that_cannot_work_are_refused(request_, why):
    with pytest.raises(ScaffoldError, match=re.escape(why)):
        scaffold.plan("MyOp", **{"kind": "custom", **request_})


@pytest.mark.parametrize("kind", ["elementwise", "rowwise"])
def test_tensor_dtypes_are_for_custom_ops(kind):
    with pytest.raises(ScaffoldError, match="NAME:DTYPE\\) is for --kind custom"):
        scaffold.plan("MyOp", kind=kind, inputs=["x:int32"])


def test_the_command_regenerates_the_op(tmp_path, capsys):
    argv = ["new", "NzCount", "--root", str(tmp_path), "--kind", "custom", "--input", "X", "--input", "lengths:int32",
            "--output", "Y:int32", "--output-shape", "Y=K<=X[0]*X[1],2"]
    assert cli.main(argv) == 0
    op_py = (tmp_path / "plugins/nz_count/op.py").read_text()
    assert "--input lengths:int32 --output Y:int32 --output-shape 'Y=K<=X[0]*X[1],2'" in op_py
    assert cli.main(["new", "NzCount", "--root", str(tmp_path), "--kind", "custom", "--output", "Y:bool"]) == 2
    assert "TensorRT does not allow bool plugin outputs" in capsys.readouterr().err
