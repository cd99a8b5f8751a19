"""Triton plugins (`plugkit new --lang triton`, plugkit.triton_aot, plugkit/triton.h).

Without triton: the expression translation, the refusals, and that `new --lang triton` and the
build of a Triton plugin say in one line that triton is missing. With triton (`pip install
'plugkit[triton]'`): in a temporary copy of the repository, an elementwise and a rowwise Triton op
scaffolded, compiled ahead of time for sm_80 and sm_90 with no GPU, built into the library,
listed, checked and put through their generated CPU tests."""
import os
import sys
from pathlib import Path

import pytest

from plugkit import cli, scaffold, triton_aot
from plugkit.expr import translate
from plugkit.ops import load_schemas
from plugkit.scaffold import ScaffoldError
from plugkit.triton_aot import TritonAotError
from project_copies import cpu_tests_pass, project_with_ops, rtx_engines_build, run

REPO = Path(__file__).resolve().parents[1]
needs_triton = pytest.mark.skipif(not triton_aot.triton_available(),
                                  reason="triton is not installed (pip install 'plugkit[triton]')")

OPS = {  # op -> `plugkit new` options
    "TritonGatedAdd": ["--lang", "triton", "--expr", "x * sigmoid(alpha * x) + b", "--attr", "alpha:float32=1.5"],
    "TritonRowSoftmax": ["--lang", "triton", "--kind", "rowwise", "--dtypes", "float32,float16"],
}


# ------------------------------------------------------------------ without triton

@pytest.mark.parametrize("expr, triton", [
    ("x * sigmoid(x)", "x * tl.sigmoid(x)"),
    ("where(x > 0, x, alpha * x)", "tl.where(x > 0.0, x, alpha * x)"),
    ("tanh(x) ** 2 + b", "libdevice.pow(libdevice.tanh(x), 2.0) + b"),
    ("softplus(x) * 2", "(tl.maximum(x, 0.0) + libdevice.log1p(tl.exp(-tl.abs(x)))) * 2.0"),
    ("clip(x, -1, 1)", "tl.minimum(tl.maximum(x, -1.0), 1.0)"),
])
def test_expressions_translate_to_triton(expr, triton):
    assert translate(expr, ["x", "b"], ["alpha"]).triton == triton


def test_triton_takes_elementwise_and_rowwise_only():
    with pytest.raises(ScaffoldError, match="--lang triton scaffolds --kind elementwise or rowwise"):
        scaffold.plan("MyOp", kind="custom", lang="triton")
    with pytest.raises(ScaffoldError, match="unknown kernel language 'hip'"):
        scaffold.plan("MyOp", lang="hip")


@pytest.mark.parametrize("name", ["mask", "BLOCK", "x_ptr", "w_numel"])
def test_names_the_triton_kernel_uses_are_refused(monkeypatch, name):
    monkeypatch.setattr(triton_aot, "triton_available", lambda: True)
    with pytest.raises(ScaffoldError, match="generated Triton kernel uses for itself"):
        scaffold.plan("MyOp", lang="triton", inputs=["x", name], expr=f"x + {name}")


def test_new_without_triton_says_so_in_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(triton_aot, "triton_available", lambda: False)
    assert cli.main(["new", "MySwish", "--lang", "triton", "--expr", "x * sigmoid(x)", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'plugkit[triton]'" in err
    assert list(tmp_path.iterdir()) == []


def test_building_a_triton_plugin_without_triton_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    (tmp_path / "plugins/my_op").mkdir(parents=True)
    (tmp_path / "plugins/my_op/kernel.py").write_text("import triton\n")
    (tmp_path / "CMakeLists.txt").write_text("# a project\n")
    monkeypatch.setattr(triton_aot, "triton_available", lambda: False)
    assert cli.main(["build", "--source", str(tmp_path), "--build-dir", str(tmp_path / "build")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs the triton package" in err and "plugins/my_op" in err
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("text, archs", [("90", [90]), ("75-real;80-real;86-real;89-real;90", [75, 80, 86, 89, 90]),
                                         ("80 90", [80, 90]), ("90a", [90])])
def test_architectures_come_from_plugkit_cuda_architectures(text, archs):
    assert triton_aot.architectures(text) == archs


@pytest.mark.parametrize("text, why", [("native", "explicit architectures"), ("70", "7.5 and newer"), ("", "no arch")])
def test_architectures_triton_cannot_compile_for_are_refused(text, why):
    with pytest.raises(TritonAotError, match=why):
        triton_aot.architectures(text)


# ------------------------------------------------------------------ LAUNCH, read with triton

KERNEL = '''
import triton
import triton.language as tl


@triton.jit
def k(x_ptr, y_ptr, n, alpha, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + i, tl.load(x_ptr + i, mask=i < n) * alpha, mask=i < n)


LAUNCH = dict(kernel=k, args={args}, grid={grid}, config={{"BLOCK": 256}})
'''

OP = '''
from plugkit.schema import Attr, OpSchema, TensorSpec
schema = OpSchema(name="K", inputs=(TensorSpec("x"),), outputs=(TensorSpec("y"),),
                  attrs=(Attr("alpha", "float32", 1.0), Attr("axes", "int64[]", [0])), dtypes=("float32",),
                  reference=lambda x, *, alpha=1.0, axes=(0,): x * alpha)
'''


def launch_of(tmp_path, args='["x", "y", "numel(y)", "alpha"]', grid='["cdiv(numel(y), BLOCK)"]'):
    folder = tmp_path / "k"
    folder.mkdir(exist_ok=True)
    (folder / "kernel.py").write_text(KERNEL.format(args=args, grid=grid))
    (folder / "op.py").write_text(OP)
    from plugkit.ops import load_op_module

    return triton_aot.read_launch(folder / "kernel.py", load_op_module(folder / "op.py").schema)


@needs_triton
def test_a_launch_binds_tensors_sizes_and_attributes(tmp_path):
    launch = launch_of(tmp_path)
    assert [(a.param, a.kind, a.cpp_type) for a in launch.args] == [
        ("x_ptr", "tensor", "void*"), ("y_ptr", "tensor", "void*"), ("n", "size", "int64_t"), ("alpha", "attr", "float")]
    assert [c.name for c in launch.configs] == ["BLOCK=256,num_warps=4,num_stages=3"]


@needs_triton
@pytest.mark.parametrize("args, grid, why", [
    ('["x", "y", "numel(y)"]', '["1"]', "takes 4 arguments that are not tl.constexpr"),
    ('["x", "z", "numel(y)", "alpha"]', '["1"]', "'z' is none of op K's tensors"),
    ('["x", "y", "numel(w)", "alpha"]', '["1"]', "'w' is not a tensor of op K"),
    ('["x", "y", "numel(y)", "axes"]', '["1"]', "attribute 'axes' is a int64\\[\\]"),
    ('["x", "y", "numel(y)", "alpha"]', '["cdiv(numel(y), WIDTH)"]', "'WIDTH' is not an integer meta-parameter"),
    ('["x", "y", "numel(y)", "alpha"]', '["numel(y) / 2"]', "use integers, the config's meta-parameters"),
    ('["x", "y", "numel(y)", "alpha"]', '"1"', "a list of 1 to 3 expressions"),
])
def test_launches_that_cannot_work_are_refused_naming_the_file(tmp_path, args, grid, why):
    with pytest.raises(TritonAotError, match=why) as error:
        launch_of(tmp_path, args, grid)
    assert "kernel.py" in str(error.value)


@needs_triton
def test_a_kernel_file_without_launch_is_refused(tmp_path):
    (tmp_path / "kernel.py").write_text("import triton\n")
    with pytest.raises(TritonAotError, match="has no LAUNCH = dict"):
        triton_aot.read_launch(tmp_path / "kernel.py", None)


# ------------------------------------------------------------------ scaffolded, built, checked (with triton)

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A copy of the repository without its plugins, the two Triton ops scaffolded by the CLI and
    built by `plugkit build` for sm_80 and sm_90 (every test that uses it is marked needs_triton)."""
    root = tmp_path_factory.mktemp("repo")
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"), PLUGKIT_LIBRARY=str(root / "build/libplugkit_plugins.so"),
               PLUGKIT_PLUGINS_DIR=str(root / "plugins"))
    project_with_ops(root, ("CMakeLists.txt", "cmake", "csrc", "conftest.py", "pyproject.toml"), OPS, env)
    run([sys.executable, "-m", "plugkit", "build", "--arch", "80;90"], cwd=root, env=env)
    return root, env


@needs_triton
def test_each_kernel_is_compiled_for_sm80_and_sm90_per_dtype_config_and_alignment(built):
    root, _ = built
    source = (root / "build/triton/triton_row_softmax/triton_row_softmax_triton.cpp").read_text()
    for arch in (80, 90):
        for dtype in ("float32", "float16"):
            for config in (1, 2, 3, 4):
                for alignment in ("aligned", "any alignment"):
                    assert f"// sm_{arch}, {dtype}, config {config}, {alignment}\n" in source
    assert "bfloat16" not in source  # only the op's dtypes


@needs_triton
def test_an_input_the_kernel_cannot_read_as_a_suffix_is_refused(built):
    """The Triton elementwise kernel reads b[i % numel(b)]: b must be x's last dims (after leading
    1s), and not of a higher rank (numpy would then make the output bigger than x)."""
    from plugkit.host import PluginError, PluginLibrary

    _, env = built
    plugin = PluginLibrary(env["PLUGKIT_LIBRARY"]).creator("TritonGatedAdd").create({})
    for b in ([7], [1, 7], [3, 7], [1]):
        plugin.configure([("float32", [3, 7]), ("float32", b)], [("float32", [3, 7])])
    for b in ([1, 1, 7], [3, 1], [2, 3, 7]):
        with pytest.raises(PluginError, match="does not broadcast to x"):
            plugin.configure([("float32", [3, 7]), ("float32", b)], [("float32", [3, 7])])


@needs_triton
def test_the_library_needs_no_cuda_driver_to_load(built):
    root, env = built
    needed = run(["readelf", "-d", env["PLUGKIT_LIBRARY"]], cwd=root).stdout
    assert "libcuda" not in needed and "libcudart" not in needed


@needs_triton
def test_list_shows_the_triton_ops_with_their_fields_and_tactics(built):
    root, env = built
    out = run([sys.executable, "-m", "plugkit", "list", env["PLUGKIT_LIBRARY"]], cwd=root, env=env).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert rows["TritonGatedAdd"][1:4] == ["1", "plugkit", "alpha:FLOAT32"]
    assert rows["TritonRowSoftmax"][1:3] == ["1", "plugkit"]
    from plugkit.host import PluginLibrary

    tactics = PluginLibrary(env["PLUGKIT_LIBRARY"]).creator("TritonRowSoftmax").create({}).tactics()
    assert [(t.value, t.name) for t in tactics][:2] == [
        (1, "BLOCK=1024,num_warps=4,num_stages=3"), (2, "BLOCK=4096,num_warps=8,num_stages=3")]


@needs_triton
@pytest.mark.rtx
def test_the_triton_ops_build_into_tensorrt_rtx_engines(built):
    """The Triton plugins through a real TensorRT builder: their configs offered as tactics, the
    embedded cubins in the library it loads."""
    root, env = built
    schemas = load_schemas(root / "plugins")
    summary = rtx_engines_build(root, env, OPS)
    assert summary.startswith(f"{sum(len(schemas[op].dtypes) for op in OPS)} passed"), summary  # each op, each dtype


@needs_triton
def test_check_passes_with_the_triton_ops(built):
    root, env = built
    out = run([sys.executable, "-m", "plugkit", "check", env["PLUGKIT_LIBRARY"], "--plugins-dir", root / "plugins"],
              cwd=root, env=env).stdout
    assert "ok:" in out and "not in this library" not in out and "no op.py schema" not in out


@needs_triton
def test_generated_tests_pass_on_cpu(built):
    root, env = built
    tests = [f"tests/test_{scaffold.snake_case(op)}.py" for op in OPS]
    cpu_tests_pass(root, env, tests)


@needs_triton
def test_an_edited_kernel_is_compiled_again_by_the_next_build(built):
    root, env = built
    kernel = root / "plugins/triton_gated_add/kernel.py"
    original = kernel.read_text()
    try:
        kernel.write_text(original.replace('triton.Config({"BLOCK": 4096}, num_warps=8),\n', ""))
        run([sys.executable, "-m", "plugkit", "build", "--arch", "80;90"], cwd=root, env=env)
        header = (root / "build/triton/triton_gated_add/triton_gated_add_triton.h").read_text()
        assert "return {1, 2};" in header
    finally:
        kernel.write_text(original)
        run([sys.executable, "-m", "plugkit", "build", "--arch", "80;90"], cwd=root, env=env)
