"""Engines from TensorRT-RTX's real ONNX parser and builder, on the CPU: every shipped plugin's
plugged models (tests/engine_models.py: each dtype the plugin declares, dynamic shapes) build into
engines that hold the plugin with the fields the ONNX node carried. Marked ``rtx``: skipped
without the TensorRT-RTX wheels (pip install 'plugkit[rtx]')."""
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from plugkit import engine, testing
from plugkit.shapes import parse_shape_specs

from engine_models import engine_models, require

pytestmark = pytest.mark.rtx

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["8.9"]  # an engine for Ada GPUs; the builder needs no GPU for it
MODELS = engine_models()


def plugkit_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "plugkit", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "python"), **(env or {})})


# TensorRT-RTX 1.7 writes a V3 plugin into the engine as its name, version and namespace (strings),
# a field count, then each field's name, element count, type name ("INT32", "FP32", ...) and bytes
# (a CHAR field's as a string record): the fields its getFieldsToSerialize returned. The engine
# inspector would show the layers too, but deserializing an engine needs a GPU TensorRT-RTX supports.
_STRING = re.compile(rb"\x13\x80\x01\x00(.{8})\x01\x80\x0c\x80\x01\x00(.{8})", re.S)
_FIELD_TYPES = {"INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64,
                "FP16": np.float16, "INT8": np.int8, "CHAR": np.uint8}


def _string(data: bytes, pos: int):
    match = _STRING.match(data, pos)
    if not match:
        return None, pos
    size = struct.unpack("<Q", match.group(2))[0]
    return data[match.end():match.end() + size].decode(errors="replace"), match.end() + size


def serialized_plugins(data: bytes, name: str, version: str, namespace: str) -> list[dict]:
    """The fields of every serialized plugin ``name/version/namespace`` in an engine's bytes."""
    found, start = [], 0
    while (at := data.find(name.encode(), start)) >= 0:
        start = at + 1
        got, pos = _string(data, data.rfind(b"\x13\x80\x01\x00", 0, at))
        got_version, pos = _string(data, pos)
        got_namespace, pos = _string(data, pos)
        if (got, got_version, got_namespace) != (name, version, namespace) or \
                data[pos:pos + 4] != b"\x07\x80\x01\x00":
            continue
        count, pos = struct.unpack("<I", data[pos + 4:pos + 8])[0], pos + 8
        fields = {}
        for _ in range(count):
            field, pos = _string(data, pos)
            length = struct.unpack("<I", data[pos + 4:pos + 8])[0]
            type_name, pos = _string(data, pos + 8)
            if type_name == "CHAR":  # a string record, as the names are
                fields[field], pos = _string(data, pos)
                continue
            size = struct.unpack("<Q", data[pos + 6:pos + 14])[0]
            values = np.frombuffer(data[pos + 14:pos + 14 + size], _FIELD_TYPES[type_name])
            pos += 14 + size
            fields[field] = values[0].item() if length == 1 else values.tolist()
        found.append(fields)
    return found


def check_engine(result, model: onnx.ModelProto, plugin_fields: dict[str, dict]) -> None:
    """The build record names the backend and the plugin layers; the engine holds each plugin node's
    fields as the node carried them."""
    record = engine.read_metadata(result.path)
    assert record.backend == "rtx" and record.tensorrt_version == engine.import_backend("rtx").__version__
    assert record.engine_bytes == result.path.stat().st_size > 0 and record.strongly_typed
    assert record.compute_capabilities == TARGETS
    nodes = {n.name: n for n in model.graph.node if n.domain == "plugkit"}
    assert {layer["name"] for layer in record.plugin_layers} == set(nodes)
    data = result.path.read_bytes()
    for name, node in nodes.items():
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        serialized = serialized_plugins(data, node.op_type, attrs["plugin_version"].decode(),
                                        attrs["plugin_namespace"].decode())
        assert serialized, f"no serialized {node.op_type} plugin in the engine"
        expected = plugin_fields[name]
        assert any(set(s) == set(expected) and all(_same_field(s[k], v) for k, v in expected.items())
                   for s in serialized), (serialized, expected)


def _same_field(got, expected) -> bool:
    """A serialized field's value against the node's attribute; a one-element array is serialized
    as one element, like a scalar."""
    if isinstance(expected, str) or isinstance(got, str):
        return got == expected
    return np.ravel(got).tolist() == pytest.approx(np.ravel(expected).tolist())


@pytest.mark.parametrize("case", MODELS, ids=[m.id for m in MODELS])
def test_every_plugin_builds_in_each_dtype(case, tmp_path):
    case = require(case)
    model_path = tmp_path / f"{case.id}.plugged.onnx"
    onnx.save(case.model, model_path)
    result = engine.build(model_path, tmp_path / f"{case.id}.engine", plugins=[testing.built_library()],
                          shapes=case.shapes, backend="rtx", compute_capabilities=TARGETS, progress=False,
                          log=lambda message: None)
    check_engine(result, case.model, case.fields)
    # The engine's inputs and outputs are the model's: dtypes, and shapes with -1 where the model
    # names a dim (dynamic, or data-dependent as CTCGreedyDecoder's M, its size-tensor output).
    for tensors, infos in ((case.model.graph.input, result.metadata.inputs),
                           (case.model.graph.output, result.metadata.outputs)):
        assert [(t.name, _dtype(t), _shape(t)) for t in tensors] == [(i.name, i.dtype, i.shape) for i in infos]


def _dtype(value_info: onnx.ValueInfoProto) -> str:
    elem = value_info.type.tensor_type.elem_type
    return "bfloat16" if elem == onnx.TensorProto.BFLOAT16 else onnx.helper.tensor_dtype_to_np_dtype(elem).name


def _shape(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


def test_fp16_build_casts_the_model(tmp_path):
    case = require(next(m for m in MODELS if m.id == "RMSNorm-float32"))
    model_path = tmp_path / "m.onnx"
    onnx.save(case.model, model_path)
    result = engine.build(model_path, tmp_path / "m.engine", plugins=[testing.built_library()], shapes=case.shapes,
                          fp16=True, backend="rtx", compute_capabilities=TARGETS, progress=False,
                          log=lambda message: None)
    assert result.metadata.precision == "float16" and result.metadata.builder_flags == []
    check_engine(result, case.model, case.fields)


def test_acceptance_command_builds_an_engine(tmp_path):
    """The command of issue 21, on a machine without a GPU."""
    from test_doctor import plugged_model

    model = plugged_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 64
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 64
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.ones(64, np.float32), "scale"))
    onnx.save(model, tmp_path / "model.plugged.onnx")
    result = plugkit_cli("engine", tmp_path / "model.plugged.onnx", "--plugins", testing.built_library(),
                         "--backend", "rtx", "--shapes", "x:1x64,8x64,1024x64", "-o", tmp_path / "m.engine")
    assert result.returncode == 0, result.stderr
    assert "TensorRT-RTX" in result.stderr
    record = engine.read_metadata(tmp_path / "m.engine")
    assert record.backend == "rtx" and record.plugin_ops == ["RMSNorm/1/plugkit"]
    assert serialized_plugins((tmp_path / "m.engine").read_bytes(), "RMSNorm", "1", "plugkit") == \
        [{"axis": -1, "epsilon": pytest.approx(1e-5), "stash_type": 1}]


def test_bindings_imported_first_give_a_message_not_an_abort(tmp_path):
    """The wheel has no unversioned libtensorrt_rtx.so, which the parser opens for a plugin node.
    Imported by plugkit, the libraries find it in plugkit's link directory; imported by someone
    else first, the build stops with the fix instead of the process aborting."""
    from test_doctor import plugged_model

    onnx.save(plugged_model(), tmp_path / "m.onnx")
    script = (f"import tensorrt_rtx_bindings\nfrom plugkit import engine\n"
              f"engine.build({str(tmp_path / 'm.onnx')!r}, plugins=[{str(testing.built_library())!r}], "
              f"shapes=['x:1x8,4x8,16x8'], backend='rtx', progress=False)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO / "python")})
    libraries = Path(engine.import_backend("rtx").__file__).parent.parent / "tensorrt_rtx_libs"
    if (libraries / "libtensorrt_rtx.so").exists():  # someone added the link: then it simply works
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1 and "libtensorrt_rtx.so" in result.stderr, result.stderr
        assert "ln -s libtensorrt_rtx.so.1" in result.stderr and "terminate called" not in result.stderr


def test_doctor_parses_with_the_real_parser(tmp_path):
    """doctor --backend rtx adds the real parser to a model whose plugin nodes the plugins accept;
    a node the plugin refuses (created through the host with its fields) fails before it."""
    from test_doctor import plugged_model

    onnx.save(plugged_model(), tmp_path / "good.onnx")
    onnx.save(plugged_model(epsilon=-1.0), tmp_path / "bad.onnx")
    good = plugkit_cli("doctor", tmp_path / "good.onnx", "--plugins", testing.built_library(), "--backend", "rtx")
    assert good.returncode == 0, good.stderr
    assert "ONNX parser: ok, 1 plugin layer(s): /blocks.0/norm (RMSNorm/1/plugkit)" in good.stdout
    bad = plugkit_cli("doctor", tmp_path / "bad.onnx", "--plugins", testing.built_library(), "--backend", "rtx")
    assert bad.returncode == 1 and "result: 1 plugin node(s) would fail to parse" in bad.stdout
    assert "createPlugin: epsilon must be a positive number; got -1" in bad.stdout
    assert "ONNX parser" not in bad.stdout


def test_unknown_compute_capability_is_refused_before_the_build(tmp_path):
    case = require(next(m for m in MODELS if m.id == "RMSNorm-float32"))
    onnx.save(case.model, tmp_path / "m.onnx")
    with pytest.raises(engine.EngineError, match=r"--compute-capability 9\.0.*8\.0, 8\.6, 8\.9"):
        engine.build(tmp_path / "m.onnx", tmp_path / "m.engine", plugins=[testing.built_library()],
                     shapes=case.shapes, backend="rtx", compute_capabilities=["9.0"], progress=False)
    assert not (tmp_path / "m.engine").exists()


# ------------------------------------------------------------------ the builder's plugin calls

@pytest.fixture(scope="module")
def call_recorder(tmp_path_factory):
    """tests/recording/call_recorder.cpp built with g++: a plugin library that forwards to the
    real one and logs every plugin call."""
    out = tmp_path_factory.mktemp("recorder") / "libplugkit_call_recorder.so"
    compile_ = subprocess.run(
        ["g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-Wno-deprecated-declarations",
         f"-I{testing.built_header_dir()}", "-I/usr/local/cuda/include",
         str(REPO / "tests" / "recording" / "call_recorder.cpp"), "-o", str(out), "-ldl"],
        capture_output=True, text=True)
    assert compile_.returncode == 0, compile_.stderr
    return out


def test_builder_plugin_calls_match_the_host_lifecycle(call_recorder, tmp_path):
    """The calls the RTX builder makes, recorded, against the build phase the plugin host drives
    (plugkit.host.PreparedPlugin): the same methods, in the same order, on clones as the builder
    uses them (docs/engines.md)."""
    from test_doctor import plugged_model

    from plugkit.host import PreparedPlugin

    onnx.save(plugged_model(epsilon=0.125), tmp_path / "m.onnx")
    log = tmp_path / "calls.log"
    result = plugkit_cli("engine", tmp_path / "m.onnx", "--plugins", call_recorder, "--backend", "rtx",
                         "--shapes", "x:1x8,4x8,16x8", "--compute-capability", "8.9", "-o", tmp_path / "m.engine",
                         env={"PLUGKIT_CALL_LOG": str(log), "PLUGKIT_RECORDED_LIBRARY": str(testing.built_library())})
    assert result.returncode == 0, result.stderr
    calls = [line.split(maxsplit=2) for line in log.read_text().splitlines()]  # id, method, details
    # plugkit's doctor check runs first, through the host: a plugin created, asked for its output
    # shapes and destroyed. The builder's calls start at the first plugin that gets cloned.
    cloned = next(plugin for plugin, method, *_ in calls if method == "clone")
    precheck, calls = calls[:calls.index([cloned, "createPlugin", "kBUILD axis=-1 epsilon=0.125"])], \
        calls[calls.index([cloned, "createPlugin", "kBUILD axis=-1 epsilon=0.125"]):]
    assert [method for _, method, *_ in precheck] == ["createPlugin", "getNbOutputs", "getOutputShapes", "destroy"]
    by_method = {}
    for plugin, method, *_ in calls:
        by_method.setdefault(method, set()).add(plugin)
    # One object is configured and serialized, a clone of the one asked for output shapes.
    assert len(by_method["configurePlugin"]) == 1 and by_method["configurePlugin"] == by_method["getFieldsToSerialize"]
    assert by_method["configurePlugin"].isdisjoint(by_method["createPlugin"])
    assert [details for _, method, *details in calls if method == "getFieldsToSerialize"][0] == \
        ["axis=-1 epsilon=0.125 stash_type=1"]

    builder = [method for _, method, *_ in calls if method != "destroy"]
    prepared = PreparedPlugin(testing.plugin_library().creator("RMSNorm"), {"epsilon": 0.125},
                              [("float32", [4, 8]), ("float32", [8])])
    host = prepared.trace[:prepared.trace.index("createPlugin(kRUNTIME)")]
    host = [c.replace("(kBUILD)", "") for c in host]

    def first_use(trace):  # each method once, in the order first called
        return list(dict.fromkeys(trace))

    # Neither asks RMSNorm, which has no tactics, for a timing-cache key.
    assert "getTimingCacheID" not in builder
    assert first_use(builder) == first_use(host)
    assert builder.count("getFormatCombinationLimit") == host.count("getFormatCombinationLimit") == 1
    # configurePlugin, the workspace and serialization run on a clone, after the shapes were asked.
    assert host.index("clone") < host.index("getOutputShapes") < host.index("configurePlugin")


# ------------------------------------------------------------------ runtime

@pytest.mark.gpu
def test_run_says_whether_tensorrt_rtx_supports_this_gpu(tmp_path):
    """On a GPU TensorRT-RTX does not support (the H200, 9.0), `plugkit run` says so and stops; on
    one it supports, an engine built for it runs past that check."""
    from plugkit.engine.rtx import SUPPORTED_CAPABILITIES
    from test_doctor import plugged_model

    torch = testing.require_cuda()
    capability = "{}.{}".format(*torch.cuda.get_device_capability())
    supported = capability in SUPPORTED_CAPABILITIES
    onnx.save(plugged_model(), tmp_path / "m.onnx")
    build = plugkit_cli("engine", tmp_path / "m.onnx", "--plugins", testing.built_library(), "--backend", "rtx",
                        "--shapes", "x:1x8,4x8,16x8", "--compute-capability", capability if supported else "8.9",
                        "-o", tmp_path / "m.engine", env={"CUDA_VISIBLE_DEVICES": ""})  # built as in CI, no GPU
    assert build.returncode == 0, build.stderr
    run = plugkit_cli("run", tmp_path / "m.engine", "--plugins", testing.built_library(), "--backend", "rtx")
    assert "Traceback" not in run.stderr
    if supported:
        assert run.returncode == 0 and "does not support this GPU" not in run.stderr, run.stderr
    else:
        assert run.returncode == 2
        assert "TensorRT-RTX does not support this GPU" in run.stderr
        assert f"compute capability {capability}" in run.stderr


def _opt_specs(case) -> list[tuple[str, list[int]]]:
    """(dtype, shape) of each input of the model's plugin node: graph inputs at the profile's OPT
    shape, constants at theirs."""
    ranges = parse_shape_specs(case.shapes)
    tensors = {i.name: (_dtype(i), list(ranges[i.name].opt)) for i in case.model.graph.input}
    tensors.update({c.name: (onnx.helper.tensor_dtype_to_np_dtype(c.data_type).name, list(c.dims))
                    for c in case.model.graph.initializer})
    node = next(n for n in case.model.graph.node if n.domain == "plugkit")
    return [tensors[name] for name in node.input]


@pytest.mark.parametrize("model_id", ["CTCGreedyDecoder-float32-lengths", "MultiScaleDeformableAttention-float32"])
def test_builder_calls_for_size_outputs_and_tactics_are_the_hosts(model_id, call_recorder, tmp_path):
    """The recorded builder calls for a plugin with a size output and data-dependent dims (the CTC
    decoder) and for one with tactics (deformable attention), against the host's build phase: the
    builder asks everything the host asks (the host adds getTimingCacheID for a plugin with
    tactics, as TensorRT does for its timing cache), in the same order up to configurePlugin, and
    serializes a plugin that was configured after it was asked for its shapes and formats."""
    from plugkit.host import PreparedPlugin

    case = require(next(m for m in MODELS if m.id == model_id))
    onnx.save(case.model, tmp_path / "m.onnx")
    log = tmp_path / "calls.log"
    result = plugkit_cli("engine", tmp_path / "m.onnx", "--plugins", call_recorder, "--backend", "rtx",
                         *[a for s in case.shapes for a in ("--shapes", s)], "--compute-capability", "8.9",
                         "-o", tmp_path / "m.engine", "--no-check",
                         env={"PLUGKIT_CALL_LOG": str(log), "PLUGKIT_RECORDED_LIBRARY": str(testing.built_library())})
    assert result.returncode == 0, result.stderr
    calls = [line.split(maxsplit=2) for line in log.read_text().splitlines()]  # id, method, details
    builder = [method for _, method, *_ in calls if method != "destroy"]
    prepared = PreparedPlugin(testing.plugin_library().creator(case.op.name), next(iter(case.fields.values())),
                              _opt_specs(case))
    host = [c.replace("(kBUILD)", "") for c in prepared.trace[:prepared.trace.index("createPlugin(kRUNTIME)")]]

    assert set(host) - {"getTimingCacheID"} <= set(builder)
    has_tactics = bool(prepared.tactics)
    assert ("getValidTactics" in host) == has_tactics and has_tactics <= ("getValidTactics" in builder)

    def before_configure(trace):  # each method once, in the order first called, up to configurePlugin
        order = list(dict.fromkeys(trace))
        return order[:order.index("configurePlugin")]
    assert [m for m in before_configure(builder) if m in host] == before_configure(host)
    # The plugin serialized is one that was configured (for the decoder: the clone attachToContext made).
    serialized = {plugin for plugin, method, *_ in calls if method == "getFieldsToSerialize"}
    assert serialized and serialized <= {plugin for plugin, method, *_ in calls if method == "configurePlugin"}


def _sdk_test_engine(tmp_path, op, inputs, outputs, shapes, **fields):
    """An engine of one node of tests/cmake/sdk_plugins' ``op``; inputs and outputs are (name,
    ONNX dtype, dims)."""
    from sdk_test_library import BUILD, library

    library()
    node = onnx.helper.make_node(op, [n for n, *_ in inputs], [n for n, *_ in outputs], name=f"/{op}",
                                 domain="plugkit", plugin_version="1", plugin_namespace="sdktest", **fields)
    graph = onnx.helper.make_graph([node], op, [onnx.helper.make_tensor_value_info(*i) for i in inputs],
                                   [onnx.helper.make_tensor_value_info(*o) for o in outputs])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18),
                                                           onnx.helper.make_opsetid("plugkit", 1)]),
              tmp_path / "m.onnx")
    return engine.build(tmp_path / "m.onnx", tmp_path / "m.engine", plugins=[BUILD / "libsdk_test_plugins.so"],
                        shapes=shapes, backend="rtx", compute_capabilities=TARGETS, progress=False,
                        log=lambda message: None, check_plugins=False)


@pytest.mark.parametrize("int64_indices", [0, 1])
def test_sdk_plugins_with_integer_outputs_a_size_output_and_tactics_build(int64_indices, tmp_path):
    """tests/cmake/sdk_plugins through the real builder: NonZeroProbe (indices [2, K] int32 or
    int64, an int32 mask, the size output K) and TacticScale (two tactics, an int32 output)."""
    f, i32, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT32, onnx.TensorProto.INT64
    result = _sdk_test_engine(tmp_path, "NonZeroProbe", [("x", f, ["R", 8])],
                              [("indices", i64 if int64_indices else i32, [2, "K"]), ("mask", i32, ["R", 8]),
                               ("k", i32, [])], ["x:1x8,4x8,16x8"], int64_indices=int64_indices)
    assert [(o.name, o.dtype, o.shape) for o in result.metadata.outputs] == [
        ("indices", "int64" if int64_indices else "int32", (2, -1)), ("mask", "int32", (-1, 8)), ("k", "int32", ())]
    (tmp_path / "scale").mkdir()
    scale = _sdk_test_engine(tmp_path / "scale", "TacticScale", [("x", f, ["N"])],
                             [("y", f, ["N"]), ("count", i32, [1])], ["x:1,64,1024"], factor=3.0)
    assert [(o.name, o.dtype) for o in scale.metadata.outputs] == [("y", "float32"), ("count", "int32")]


@pytest.mark.parametrize("mistake, builds", [("none", True), ("size_not_0d", False), ("zero_tactic", False)])
def test_the_builder_refuses_the_size_tensor_and_tactic_mistakes_the_host_refuses(mistake, builds, tmp_path):
    """tests/cmake/sdk_plugins' SizeTensorMisuse through the real builder: a size output that is
    not 0-d, and a tactic 0 (TensorRT's default), fail the build as they fail in the host
    (tests/test_sdk_shapes.py, test_sdk_tactics.py)."""
    f = onnx.TensorProto.FLOAT

    def build():
        return _sdk_test_engine(tmp_path, "SizeTensorMisuse", [("x", f, ["N"])],
                                [("y", f, ["K"]), ("k", onnx.TensorProto.INT32, [])], ["x:1,6,12"], mistake=mistake)
    if builds:
        assert build().path.stat().st_size > 0
    else:
        with pytest.raises(engine.EngineError, match="could not build an engine"):
            build()
        assert not (tmp_path / "m.engine").exists()
