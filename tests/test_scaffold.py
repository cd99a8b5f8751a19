"""`plugkit new`: names, refusals, expressions and rendering on their own; then, in a
temporary copy of the repository, one op of each kind scaffolded, built (one build
for all three), listed, checked, and put through its generated tests (CPU)."""
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugkit import cli, scaffold
from plugkit.expr import ExprError, translate
from plugkit.ops import load_schemas
from plugkit.scaffold import ScaffoldError
from project_copies import cpu_tests_pass, project_with_ops, rtx_engines_build, run

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("CMakeLists.txt", "cmake", "csrc", "plugins", "conftest.py", "pyproject.toml")


def new(*argv) -> int:
    return cli.main(["new", *map(str, argv)])


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def project(tmp_path):
    """A project root with the repository's plugins (RMSNorm) and nothing else."""
    shutil.copytree(REPO / "plugins", tmp_path / "plugins")
    (tmp_path / "CMakeLists.txt").write_text("# stands for the project's build\n")
    return tmp_path


# ------------------------------------------------------------------ names

@pytest.mark.parametrize("name, snake, class_name", [
    ("MyOp", "my_op", "MyOpPlugin"),
    ("RMSNorm", "rms_norm", "RmsNormPlugin"),
    ("my_op", "my_op", "MyOpPlugin"),
    ("GeGLU2", "ge_glu2", "GeGlu2Plugin"),
])
def test_names_follow_the_model_plugin(name, snake, class_name):
    assert scaffold.snake_case(name) == snake
    assert scaffold.class_name(snake) == class_name


def test_defaults_version_1_and_the_project_namespace():
    op = scaffold.plan("MyOp")
    assert (op.name, op.version, op.namespace, op.cpp_namespace) == ("MyOp", "1", "plugkit", "plugkit::my_op")
    assert (op.kind, op.inputs, op.outputs, op.expr.source) == ("elementwise", ("x",), ("y",), "x")


@pytest.mark.parametrize("name, why", [
    ("1Op", "is not an identifier"),
    ("my-op", "is not an identifier"),
    ("Mý", "is not an identifier"),
    ("My__Op", "double and trailing underscores are reserved"),
    ("Delete", "'delete' is a C++ keyword"),
    ("namespace", "is a C++ keyword"),
    ("None", "is a Python keyword"),
    ("Match", "is a Python keyword"),
    ("Plugin", "is reserved"),
    ("Host", "is reserved"),       # plugkit.host
    ("Testing", "is reserved"),    # plugkit.testing
    ("Volume", "is reserved"),     # plugkit::volume: the namespace plugkit::volume would clash
    ("Relu", "is an ONNX standard operator"),
    ("LayerNormalization", "is an ONNX standard operator"),
])
def test_names_that_cannot_work_are_refused_with_the_reason(name, why):
    with pytest.raises(ScaffoldError, match=re.escape(why)):
        scaffold.plan(name)


@pytest.mark.parametrize("name, why", [("A" * 245, "characters long; the limit is 100"),
                                       ("My" + "op" * 200, "characters long; the limit is 100")])
def test_names_too_long_for_a_file_are_refused(name, why):
    with pytest.raises(ScaffoldError, match=re.escape(why)):
        scaffold.plan(name)


def test_clashes_with_existing_plugins_are_refused_even_with_force(project):
    with pytest.raises(ScaffoldError, match=r"op RMSNorm already exists in .*rms_norm, written by hand"):
        scaffold.scaffold("RMSNorm", project, force=True, dry_run=True)
    with pytest.raises(ScaffoldError, match=r"rms_norm holds op RMSNorm, not RmsNorm; --force never"):
        scaffold.scaffold("RmsNorm", project, force=True, dry_run=True)
    other = project / "plugins" / "other"
    other.mkdir()
    (other / "other_plugin.cpp").write_text("PLUGKIT_REGISTER_PLUGIN(MyOpPlugin)\n")
    with pytest.raises(ScaffoldError, match="already registers a class MyOpPlugin"):
        scaffold.scaffold("MyOp", project, dry_run=True)


@pytest.mark.parametrize("request_, why", [
    ({"inputs": ["x", "x"]}, "need distinct names"),
    ({"inputs": ["count"]}, "uses for itself"),
    ({"inputs": ["class"]}, "keyword"),
    ({"inputs": ["exp"]}, "name of an --expr function"),
    ({"attrs": ["fields:int32=1"]}, "uses for itself"),
    ({"attrs": ["alpha=1"]}, "give a type"),
    ({"attrs": ["alpha:float64=1"]}, "unknown type 'float64'"),
    ({"attrs": ["alpha:float32=abc"]}, "'abc' is not a float32 value"),
    ({"attrs": ["alpha:float32=inf"]}, "must be finite"),
    ({"attrs": ["n:int32=3000000000"]}, "does not fit int32"),
    ({"dtypes": ["int8"]}, "generated kernels take float32, float16, bfloat16"),
    ({"kind": "pointwise"}, "unknown kind 'pointwise'"),
    ({"kind": "rowwise", "expr": "x"}, "--expr is for --kind elementwise"),
    ({"kind": "rowwise", "inputs": ["X", "W"]}, "one input and one output"),
    ({"outputs": ["y", "z"]}, "an elementwise op has one output"),
    ({"expr": "x * 2", "inputs": ["x", "b"]}, "does not use input"),
    ({"kind": "custom", "output_shapes": ["Y=Q[0]"]}, "neither a size nor an input dim"),
    ({"kind": "custom", "output_shapes": ["Z=X"]}, "OUTPUT one of Y"),
    ({"version": "1 beta"}, "version"),
    ({"namespace": 'a"b'}, "namespace"),
    # names that clash with the generated C++ (issue 22, item 6)
    ({"expr": "exp(x) + expf"}, "input 'expf' clashes with a name of the generated C++"),
    ({"expr": "x + toFloat"}, "input 'toFloat' clashes with a name of the generated C++"),
    ({"attrs": ["field:float32=1"]}, "'field' clashes with a name of the generated C++"),
    ({"kind": "custom", "outputs": ["launchKernel"]}, "clashes with a name of the generated C++"),
    ({"inputs": ["kThreads"]}, "clashes with a name of the generated C++"),
    # shapes TensorRT cannot have, and defaults a float32 cannot hold
    ({"kind": "custom", "output_shapes": ["Y=X[100]"]}, "tensors have at most 8 dims, so an index is -8 to 7"),
    ({"kind": "custom", "output_shapes": ["Y=X[-9]"]}, "an index is -8 to 7"),
    ({"kind": "custom", "output_shapes": ["Y=99999999999999999999999"]}, "is larger than a dim can be"),
    ({"kind": "custom", "output_shapes": ["Y=" + ",".join(["2"] * 9)]}, "an output has 1 to 8 dims"),
    ({"attrs": ["alpha:float32=1e39"]}, "1e39 is not a float32"),
    ({"attrs": ["ws:float32[]=1,-4e38"]}, "-4e38 is not a float32"),
    # sizes that used to end in a traceback (issue 22, item 4)
    ({"expr": "+".join(["x"] * 20000)}, "characters long; the limit is 2000"),
    ({"expr": "-" * 5000 + "x"}, "characters long; the limit is 2000"),
    ({"expr": "-" * 1500 + "x"}, "nested too deeply"),
    ({"expr": "x * " + "9" * 400}, "constants must be finite float32 numbers"),
    ({"expr": "x * 1e39"}, "constants must be finite float32 numbers"),
    ({"inputs": ["x" * 245]}, "characters long; the limit is 100"),
])
def test_requests_that_cannot_work_are_refused(request_, why):
    with pytest.raises((ScaffoldError, ExprError), match=re.escape(why)):
        scaffold.plan("MyOp", **request_)


# ------------------------------------------------------------------ expressions

@pytest.mark.parametrize("source, cuda, numpy", [
    ("x * sigmoid(x)", "x * (1.0F / (1.0F + expf(-x)))", "x * (1.0 / (1.0 + np.exp(-x)))"),
    ("a * b + alpha", "a * b + alpha", "a * b + alpha"),
    ("where(x > 0, x, alpha * x)", "x > 0.0F ? x : alpha * x", "np.where(x > 0.0, x, alpha * x)"),
    ("where(x > 0, x, 0) * 2", "(x > 0.0F ? x : 0.0F) * 2.0F", "np.where(x > 0.0, x, 0.0) * 2.0"),
    ("a - (b - x)", "a - (b - x)", "a - (b - x)"),
    ("-(-x) ** 2", "-powf(-x, 2.0F)", "-np.power(-x, 2.0)"),
    ("x / softplus(x)", "x / (fmaxf(x, 0.0F) + log1pf(expf(-fabsf(x))))",
     "x / (np.fmax(x, 0.0) + np.log1p(np.exp(-np.abs(x))))"),
    ("sigmoid(a + b)", "1.0F / (1.0F + expf(-(a + b)))", "1.0 / (1.0 + np.exp(-(a + b)))"),
    ("0.5 * x * (1 + erf(x * rsqrt(2)))", "0.5F * x * (1.0F + erff(x * rsqrtf(2.0F)))",
     "0.5 * x * (1.0 + _erf(x * (1.0 / np.sqrt(2.0))))"),
])
def test_expressions_translate_to_cuda_and_numpy(source, cuda, numpy):
    result = translate(source, ["x", "a", "b"], ["alpha"])
    assert (result.cuda, result.numpy) == (cuda, numpy)


def test_the_numpy_translation_computes_the_expression():
    x, b = np.linspace(-3, 3, 13), np.linspace(1, 2, 13)
    source = "where(x > 0, x, alpha * x) + clip(b, 1.2, 1.8) ** 2 - fmod(x, 1.5) / tanh(b)"
    numpy = translate(source, ["x", "b"], ["alpha"]).numpy
    got = eval(numpy, {"np": np, "x": x, "b": b, "alpha": 0.1})  # noqa: S307 - our own translation
    expected = [(xi if xi > 0 else 0.1 * xi) + min(max(bi, 1.2), 1.8) ** 2 - math.fmod(xi, 1.5) / math.tanh(bi)
                for xi, bi in zip(x, b)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("source", [
    "where(x > 0, x, alpha * x) + clip(b, 1.2, 1.8) ** 2 - fmod(x, 1.5) / tanh(b)",
    "0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x * x * x)))",
    "-x ** 2 + minimum(x, alpha) * sigmoid(alpha) + maximum(0.5, b) - softplus(x) + relu(-b)",
    "where(alpha > 0, x, b) + abs(x) * exp(-b) + log1p(b) + sqrt(b) * rsqrt(b) + erf(x) + floor(x) + ceil(x)",
])
def test_the_torch_translation_computes_what_the_numpy_one_does(source):
    """torch_reference (the benchmark's baseline) comes from the same parsed expression as `reference`."""
    import torch
    x, b = np.linspace(-3, 3, 13), np.linspace(1, 2, 13)
    translation = translate(source, ["x", "b"], ["alpha"])
    expected = eval(translation.numpy, {"np": np, "x": x, "b": b, "alpha": 0.1,  # noqa: S307
                                        "_erf": np.vectorize(math.erf)})
    got = eval(translation.torch, {"torch": torch, "x": torch.tensor(x, dtype=torch.float32),  # noqa: S307
                                   "b": torch.tensor(b, dtype=torch.float32), "alpha": 0.1})
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("source, why", [
    ("x % 2", "use fmod"),
    ("foo(x)", "unknown function 'foo'"),
    ("x > 0", "may only be the first argument of where"),
    ("where(x, 1, 2)", "must be a comparison"),
    ("z + x", "unknown name 'z'"),
    ("axes * x", "attribute 'axes' is not a number"),
    ("x.real", "Attribute is not supported"),
    ("__import__('os')", "unknown function"),
    ("exp(x, 2)", "exp takes 1 positional argument"),
    ("x if x else 0", "IfExp is not supported"),
    ("True * x", "only numbers"),
    ("x +", "not a valid expression"),
])
def test_expressions_outside_the_whitelist_are_refused(source, why):
    with pytest.raises(ExprError, match=re.escape(why)):
        translate(source, ["x"], ["alpha"], other_attrs=["axes"])


def test_inputs_are_the_expressions_names_that_are_not_attributes():
    op = scaffold.plan("MyOp", expr="alpha * b + a * sigmoid(b)", attrs=["alpha:float32=1"])
    assert op.inputs == ("b", "a") and op.outputs == ("y",)
    assert [a.name for a in op.expr_attrs] == ["alpha"]


# ------------------------------------------------------------------ attributes

@pytest.mark.parametrize("text, cpp, default", [
    ("alpha:float32=1e-5", "float alpha = 1e-05F;", 1e-5),
    ("alpha:float32", "float alpha = 0.0F;", 0.0),
    ("n:int32=-3", "int32_t n = -3;", -3),
    ("big:int64=5000000000", "int64_t big = 5000000000;", 5000000000),
    ("lo:int64=-9223372036854775808", "int64_t lo = INT64_MIN;", -2 ** 63),
    ("ws:float32[]=0.5,2", "std::vector<float> ws{0.5F, 2.0F};", (0.5, 2.0)),
    ("axes:int32[]=0,1", "std::vector<int32_t> axes{0, 1};", (0, 1)),
    ("ids:int64[]=", "std::vector<int64_t> ids;", ()),
    ("mode:string=fast", 'std::string mode = "fast";', "fast"),
    ("mode:string", "std::string mode;", ""),
])
def test_every_field_type_becomes_a_typed_member_with_its_default(text, cpp, default):
    attr = scaffold.parse_attr(text)
    assert attr.default == default
    assert f"{scaffold.names._CPP_TYPES[attr.type]} {attr.name}{scaffold.cpp_default(attr)};" == cpp


# ------------------------------------------------------------------ writing

def test_dry_run_lists_the_files_and_writes_nothing(project, capsys):
    before = files_under(project)
    assert new("MyOp", "--root", project, "--dry-run", "--kind", "rowwise") == 0
    out = capsys.readouterr().out
    for path in ("plugins/my_op/my_op_plugin.cpp", "plugins/my_op/my_op_kernel.cu", "plugins/my_op/my_op_kernel.h",
                 "plugins/my_op/op.py", "plugins/my_op/README.md", "tests/test_my_op.py"):
        assert f"would write {project / path}" in out
    assert files_under(project) == before


def test_existing_files_are_never_overwritten_without_force(project, capsys):
    (project / "tests").mkdir()
    (project / "tests/test_my_op.py").write_text("# the user's own test\n")
    before = files_under(project)
    assert new("MyOp", "--root", project) == 2
    assert "tests/test_my_op.py" in capsys.readouterr().err
    assert files_under(project) == before  # refused: not even the plugin folder was written
    assert (project / "tests/test_my_op.py").read_text() == "# the user's own test\n"

    assert new("MyOp", "--root", project, "--force") == 0
    assert "plugkit new" in (project / "tests/test_my_op.py").read_text()
    assert new("MyOp", "--root", project, "--expr", "x * 2") == 2      # the folder exists now
    assert "pass --force" in capsys.readouterr().err
    assert new("MyOp", "--root", project, "--expr", "x * 2", "--force") == 0
    assert "x * 2.0F" in (project / "plugins/my_op/my_op_kernel.cu").read_text()


def test_a_refused_request_writes_nothing(project, capsys):
    before = files_under(project)
    assert new("MyOp", "--root", project, "--expr", "x + nope(x)") == 2
    assert "unknown function 'nope'" in capsys.readouterr().err
    assert files_under(project) == before


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv", [
    ["--expr", "exp(x) + expf"],
    ["--expr", "x + toFloat"],
    ["--expr", "+".join(["x"] * 20000)],
    ["--expr=" + "-" * 5000 + "x"],
    ["--expr", "x * " + "9" * 400],
    ["--attr", "alpha:float32=1e39", "--expr", "x * alpha"],
    ["--kind", "custom", "--output-shape", "Y=X[100]"],
    ["--kind", "custom", "--output-shape", "Y=99999999999999999999999"],
])
def test_requests_that_cannot_work_fail_in_one_line_and_write_nothing(project, capsys, argv):
    before = files_under(project)
    assert new("MyOp", "--root", project, *argv) == 2
    assert "error: " in one_line_error(capsys)
    assert files_under(project) == before


def test_a_name_of_245_characters_fails_in_one_line(project, capsys):
    before = files_under(project)
    assert new("A" * 245, "--root", project) == 2
    assert "the limit is 100" in one_line_error(capsys)
    assert files_under(project) == before


def test_a_root_that_is_a_file_or_below_one_is_refused(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("the user's notes\n")
    for root in (file, file / "project"):
        assert new("MyOp", "--root", root) == 2
        assert "is not a directory" in one_line_error(capsys)
    assert file.read_text() == "the user's notes\n" and files_under(tmp_path) == ["notes.txt"]


def test_a_failure_while_moving_into_place_leaves_the_project_as_it_was(project, monkeypatch):
    """Issue 22, item 5: all or nothing. The plugin folder is moved last; when that fails, the test
    file moved before it is taken out again, and no staging folder is left behind."""
    before = files_under(project)
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "my_op":
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ScaffoldError, match="Permission denied.*nothing was changed"):
        scaffold.scaffold("MyOp", project)
    assert files_under(project) == before
    assert [p.name for p in project.iterdir() if p.name.startswith(".plugkit-new")] == []


def test_a_failed_forced_rewrite_restores_the_files_it_replaced(project, monkeypatch):
    scaffold.scaffold("MyOp", project, expr="x * 2")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 6:  # midway through moving the new files in
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ScaffoldError, match="No space left on device"):
        scaffold.scaffold("MyOp", project, expr="x * 3", force=True)
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before


def test_templates_are_found_inside_the_package_first(tmp_path, monkeypatch):
    """A non-editable install carries them as plugkit/templates (setup.py's build_py)."""
    shipped = Path(scaffold.__file__).resolve().parents[1] / "templates"  # plugkit/templates
    assert scaffold.templates_dir() == (shipped if shipped.is_dir() else REPO / "templates")
    assert "graft templates" in (REPO / "MANIFEST.in").read_text()  # and sdists carry them to the build


def test_a_root_without_a_build_gets_one_on_the_installed_sdk(tmp_path):
    files = scaffold.scaffold("MyOp", tmp_path / "mine", kind="custom", dry_run=True)
    cmake = files[tmp_path / "mine/CMakeLists.txt"]
    assert "find_package(plugkit REQUIRED)" in cmake and "plugkit_add_plugin_library(plugkit_plugins" in cmake
    assert "CMAKE_PREFIX_PATH" in files[tmp_path / "mine/plugins/my_op/README.md"]
    assert not (tmp_path / "mine").exists()


def test_help_names_the_options(capsys):
    with pytest.raises(SystemExit):
        new("--help")
    out = capsys.readouterr().out
    for option in ("--kind {elementwise,rowwise,custom}", "--input", "--output", "--attr", "--dtypes", "--expr",
                   "--output-shape", "--namespace", "--version", "--root", "--dry-run", "--force"):
        assert option in out


# ------------------------------------------------------------------ scaffold, build, list, check, test

# One op of each kind; between them they use every attribute type, broadcasting, a namespace and
# version of their own, a dtype subset, several outputs with declared shapes and dtypes of their own,
# and data-dependent dims.
OPS = {
    "GatedScale": ["--expr", "a * sigmoid(b) + alpha * tanh(a) - n", "--attr", "alpha:float32=0.5",
                   "--attr", "n:int64=2", "--attr", "axes:int32[]=0,1", "--attr", "ws:float32[]=1.5",
                   "--attr", "ids:int64[]=7", "--attr", "mode:string=fast", "--attr", "k:int32=3"],
    "RowSoftmax": ["--kind", "rowwise", "--dtypes", "float32,float16", "--namespace", "acme", "--version", "2"],
    # integer input and outputs, outputs of three dtypes, a data-dependent dim (size output K, last)
    "SplitCopy": ["--kind", "custom", "--input", "X", "--input", "W", "--input", "lengths:int32", "--output", "Y",
                  "--output", "Z", "--output", "idx:int32", "--output", "S:float32", "--output-shape", "Z=X[0],W[-1],4",
                  "--output-shape", "idx=K<=X[0]*X[1],2", "--output-shape", "S=K<=X[0]*X[1]"],
}


def tensorrt_include_dir():
    """TensorRT headers already on this machine, so that the build downloads nothing."""
    if os.environ.get("TENSORRT_INCLUDE_DIR"):
        return os.environ["TENSORRT_INCLUDE_DIR"]
    spec = importlib.util.find_spec("kernel_lens")
    candidates = [Path(p) / "include/tensorrt" for p in (spec.submodule_search_locations or [])] if spec else []
    candidates.append(REPO / "build/_deps/tensorrt-headers/kernel_lens/include/tensorrt")
    return next((str(p) for p in candidates if (p / "NvInferVersion.h").is_file()), None)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A copy of the repository with the three ops scaffolded by the CLI and built (one CUDA arch)."""
    root = project_with_ops(tmp_path_factory.mktemp("repo"), PROJECT_FILES, OPS)
    shutil.copy2(REPO / "tests/test_plugins.py", root / "tests")  # every schema against the library
    configure = ["cmake", "-S", root, "-B", root / "build", "-DPLUGKIT_CUDA_ARCHITECTURES=75"]
    configure += ["-G", "Ninja"] if shutil.which("ninja") else []
    configure += [f"-DTENSORRT_INCLUDE_DIR={tensorrt_include_dir()}"] if tensorrt_include_dir() else []
    run(configure, cwd=root)
    run(["cmake", "--build", root / "build", "--parallel", str(os.cpu_count() or 2)], cwd=root)
    env = dict(os.environ, PLUGKIT_LIBRARY=str(root / "build/libplugkit_plugins.so"),
               PLUGKIT_PLUGINS_DIR=str(root / "plugins"))
    return root, env


def test_generated_files_compile_without_warnings(built):
    root, _ = built
    log = (root / "build/.ninja_log").read_text() if (root / "build/.ninja_log").exists() else ""
    for op in OPS:
        snake = scaffold.snake_case(op)
        assert {f"{snake}_plugin.cpp", f"{snake}_kernel.cu", f"{snake}_kernel.h", "op.py", "README.md"} <= {
            p.name for p in (root / "plugins" / snake).iterdir()}
        assert not log or f"{snake}_kernel.cu.o" in log


def test_list_shows_the_new_ops_with_their_fields(built):
    root, env = built
    out = run([sys.executable, "-m", "plugkit", "list", env["PLUGKIT_LIBRARY"]], cwd=root, env=env).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["GatedScale"][1:4] == ["1", "plugkit", "alpha:FLOAT32,"]
    assert "mode:CHAR[]" in out and "ids:INT64[]" in out and "ws:FLOAT32[]" in out
    assert rows["RowSoftmax"][1:3] == ["2", "acme"]
    assert rows["SplitCopy"][1:3] == ["1", "plugkit"]


@pytest.mark.rtx
def test_the_new_ops_build_into_tensorrt_rtx_engines(built):
    """The generated plugins through a real TensorRT builder: SplitCopy's size output and
    data-dependent dims, GatedScale's broadcasting shape check in configurePlugin."""
    root, env = built
    schemas = load_schemas(root / "plugins")
    summary = rtx_engines_build(root, env, OPS)
    assert summary.startswith(f"{sum(len(schemas[op].dtypes) for op in OPS)} passed"), summary  # each op, each dtype


def test_check_passes_with_the_new_ops(built):
    root, env = built
    out = run([sys.executable, "-m", "plugkit", "check", env["PLUGKIT_LIBRARY"], "--plugins-dir", root / "plugins"],
              cwd=root, env=env).stdout
    assert "ok:" in out and "not in this library" not in out and "no op.py schema" not in out


def test_generated_tests_pass_on_cpu(built):
    root, env = built
    tests = [f"tests/test_{scaffold.snake_case(op)}.py" for op in OPS] + ["tests/test_plugins.py"]
    cpu_tests_pass(root, env, tests)


def test_scaffolding_again_without_force_is_refused_and_changes_nothing(built):
    root, env = built
    def files():  # not __pycache__/, which an earlier test's import of op.py may have made
        return {p: p.read_bytes() for p in (root / "plugins/row_softmax").iterdir() if p.is_file()}

    before = files()
    result = subprocess.run([sys.executable, "-m", "plugkit", "new", "RowSoftmax", "--kind", "rowwise", "--root", root],
                            cwd=root, env=env, text=True, capture_output=True)
    assert result.returncode == 2 and "already exists; pass --force" in result.stderr
    assert files() == before


# ------------------------------------------------------------------ installed, not editable

def test_an_installed_package_scaffolds_a_project_that_builds_on_the_installed_sdk(tmp_path):
    """Issue 20: `pip install .` (not editable), `plugkit new Foo --expr "x*x" --root DIR`, then a CMake
    build of DIR against `cmake --install`'s SDK. The package is laid out as a wheel has it (setup.py's
    build_py, the host extension beside it), away from the repository; about a minute, most of it the
    CUDA compile."""
    assert shutil.which("cmake") and shutil.which("nvcc"), "building plugin libraries needs cmake and nvcc on PATH"
    lib, prefix, project = tmp_path / "site-packages", tmp_path / "prefix", tmp_path / "proj"
    run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", lib], cwd=REPO)
    for host in (REPO / "python/plugkit").glob("_host*.so"):
        shutil.copy2(host, lib / "plugkit")
    env = {k: v for k, v in os.environ.items() if k not in ("PLUGKIT_LIBRARY", "PLUGKIT_PLUGINS_DIR")}
    env["PYTHONPATH"] = str(lib)
    where = run([sys.executable, "-c", "from plugkit import scaffold; print(scaffold.templates_dir())"],
                cwd=tmp_path, env=env).stdout.strip()
    assert Path(where) == lib / "plugkit/templates"

    run([sys.executable, "-m", "plugkit", "new", "Foo", "--expr", "x*x", "--root", project], cwd=tmp_path, env=env)
    headers = [f"-DTENSORRT_INCLUDE_DIR={tensorrt_include_dir()}"] if tensorrt_include_dir() else []
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(["cmake", "-S", REPO, "-B", tmp_path / "sdk", "-DPLUGKIT_BUILD_PLUGINS=OFF", *headers, *generator], cwd=tmp_path)
    run(["cmake", "--install", tmp_path / "sdk", "--prefix", prefix], cwd=tmp_path)
    run(["cmake", "-S", project, "-B", project / "build", f"-DCMAKE_PREFIX_PATH={prefix}",
         "-DPLUGKIT_CUDA_ARCHITECTURES=75", *headers, *generator], cwd=project)
    run(["cmake", "--build", project / "build", "--parallel", "2"], cwd=project)
    listed = run([sys.executable, "-m", "plugkit", "list", project / "build/libplugkit_plugins.so"],
                 cwd=project, env=env).stdout
    assert "Foo" in listed
    cpu_tests_pass(project, env, ["tests/test_foo.py"])
