"""The torch ops' CUDA path: the plugin from a plugin library runs on CUDA tensors
(plugkit.torch_cuda), and verify --device cuda (plugkit.device_nodes).

CPU: which library runs the op and the errors when there is none, the dispatch
(the fast path past custom_op's wrappers, taken only by plain tensors that need
no gradient), the fake kernel under opcheck on CPU and meta tensors, the C++
binding's refusal without a device. GPU: results against the reference, the
current stream, torch.compile(fullgraph=True) without a graph break, CUDA graph
capture and replay, opcheck on CUDA tensors, verify --device cuda."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from plugkit import testing
from plugkit.errors import PluginError, PluginLibraryError
from plugkit.ops import case_inputs, get_schema, load_schemas
from plugkit.tolerances import compare
from plugkit.torch_cuda import LIBRARY_ENV, OpKernel, plugin_library_path, register
from plugkit.torch_ops import torch_op

SCHEMA = get_schema("RMSNorm")


# ------------------------------------------------------------------ which library (CPU)

def test_no_library_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    with pytest.raises(PluginLibraryError, match=r"rms_norm got CUDA tensors.*library=.*PLUGKIT_PLUGIN_LIBRARY"):
        plugin_library_path("rms_norm")
    # the kernel resolves at its first CUDA call, through the same function
    with pytest.raises(PluginLibraryError, match="no library is named"):
        OpKernel(SCHEMA, "rms_norm").creator()


def test_explicit_library_wins_over_the_environment(monkeypatch, tmp_path):
    env, explicit = tmp_path / "env.so", tmp_path / "explicit.so"
    env.write_bytes(b"x")
    explicit.write_bytes(b"x")
    monkeypatch.setenv(LIBRARY_ENV, str(env))
    assert plugin_library_path("rms_norm") == env
    assert plugin_library_path("rms_norm", explicit) == explicit


def test_missing_library_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "nowhere.so"))
    with pytest.raises(PluginLibraryError, match=r"nowhere.so \(for torch.ops.plugkit.rms_norm\) does not exist"):
        plugin_library_path("rms_norm")


def test_torch_op_library_argument_reaches_the_kernel(tmp_path):
    op = torch_op("RMSNorm")
    before = op.plugkit_kernel.library
    try:
        assert torch_op("RMSNorm", library=tmp_path / "a.so") is op
        assert op.plugkit_kernel.library == tmp_path / "a.so"
    finally:
        op.plugkit_kernel.set_library(before)


def test_prepared_per_attrs_shape_dtype():
    kernel = OpKernel(SCHEMA, "rms_norm")
    x, w = torch.randn(2, 8), torch.randn(8)
    assert kernel.key((x, w)) == kernel.key((x, w, -1, 1e-5, 1))  # defaults left out by the dispatcher
    keys = {kernel.key((x, w, -1, 1e-6, 1)), kernel.key((x.half(), w, -1, 1e-6, 1)),
            kernel.key((x.reshape(4, 4), w[:4], -1, 1e-6, 1)), kernel.key((x, w, -1, 1e-5, 1))}
    assert len(keys) == 4
    assert kernel.key((torch.randn(2, 8), torch.randn(8), -1, 1e-6, 1)) == kernel.key((x, w, -1, 1e-6, 1))


def test_cpu_tensors_reaching_the_kernel_are_refused():
    with pytest.raises(PluginError, match=r"runs on one CUDA device; the inputs are on \['cpu'\]"):
        OpKernel(SCHEMA, "rms_norm")(torch.randn(2, 8), torch.randn(8), -1, 1e-6, 1)


def test_the_op_has_cuda_kernels_and_cpu_runs_the_reference():
    op = torch_op("RMSNorm")
    for key in ("CUDA", "AutogradCUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key("plugkit::rms_norm", key), key
    x, w = torch.randn(3, 16), torch.rand(16) + 0.5
    expected = SCHEMA.run_reference(x.numpy(), w.numpy(), epsilon=1e-6)[0]
    np.testing.assert_allclose(op(x, w, epsilon=1e-6).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_bind_enqueue_without_a_device_says_so():
    printed = testing.run_without_a_gpu("""
from plugkit import testing
from plugkit.host import PreparedPlugin, _native
prepared = PreparedPlugin(testing.plugin_library().creator("RMSNorm"), {}, [("float32", [2, 8]), ("float32", [8])])
try:
    _native().bind_enqueue(prepared.plugin._native, [("float32", "LINEAR", [2, 8], 0)] * 2,
                           [("float32", "LINEAR", [2, 8], 0)])
except RuntimeError as exc:
    print(exc)
""")
    assert "enqueue needs a CUDA device" in printed


# ------------------------------------------------------------------ dispatch (CPU stands in for CUDA)

@pytest.fixture(scope="module")
def scale_op():
    """A custom op whose CPU kernel is registered by torch_cuda.register, as CUDA is for plugkit's
    ops; the kernel records whether it was reached below custom_op's autograd wrapper."""
    calls = []

    def kernel(x, factor):
        below = torch._C._dispatch_tls_is_dispatch_key_excluded(torch._C.DispatchKey.AutogradFunctionality)
        calls.append("wrapped" if below else "fast")
        return x * factor

    op = torch.library.custom_op("plugkit_test::scale", lambda x, factor: x * factor, mutates_args=(),
                                 schema="(Tensor x, float factor) -> Tensor")
    op.register_fake(lambda x, factor: torch.empty_like(x))
    register(op, kernel, backend="CPU")
    return op, calls


def test_plain_tensors_without_grad_take_the_fast_path(scale_op):
    op, calls = scale_op
    calls.clear()
    x = torch.randn(4)
    with torch.no_grad():
        torch.testing.assert_close(op(x, 2.0), x * 2)
    torch.testing.assert_close(op(x, 3.0), x * 3)  # grad mode on, but nothing requires grad
    assert calls == ["fast", "fast"]


def test_inputs_that_require_grad_keep_custom_ops_autograd(scale_op):
    op, calls = scale_op
    calls.clear()
    x = torch.nn.Parameter(torch.randn(4))
    y = op(x, 2.0)
    assert calls == ["wrapped"] and y.requires_grad
    with pytest.raises(RuntimeError, match="no autograd formula was registered"):
        y.sum().backward()


def test_tracing_and_opcheck_take_the_wrapped_path(scale_op):
    op, calls = scale_op
    calls.clear()
    compiled = torch.compile(lambda a: op(a, 2.0) + 1, backend="aot_eager", fullgraph=True)
    x = torch.randn(5)
    torch.testing.assert_close(compiled(x), x * 2 + 1)
    assert calls  # the compiled graph ran the kernel; fake tensors never reached it
    torch.library.opcheck(op, (x, 2.0))


# ------------------------------------------------------------------ fake kernel (CPU, meta)

@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_opcheck_of_the_fake_kernel(device):
    op = torch_op("RMSNorm")
    x, w = torch.randn(2, 5, 8, device=device), torch.randn(8, device=device)
    torch.library.opcheck(op, (x, w, -1, 1e-6), test_utils=("test_schema", "test_faketensor"))
    y = op(torch.empty(3, 4, 8, device="meta", dtype=torch.float16), torch.empty(8, device="meta"))
    assert y.device.type == "meta" and y.shape == (3, 4, 8) and y.dtype == torch.float16


# ------------------------------------------------------------------ verify --device (CPU)

@pytest.fixture
def pair(tmp_path):
    import onnx

    import onnx_chains as chains
    from plugkit.onnx_tools import insert_plugins

    model = chains.build(chains.Chain(shape=("N", "T", 64), post=("MatMul",)))
    original, plugged = tmp_path / "original.onnx", tmp_path / "plugged.onnx"
    onnx.save(model, original)
    onnx.save(insert_plugins(model, ["RMSNorm"]).model, plugged)
    return original, plugged


def verify_cli(*args):
    return subprocess.run([sys.executable, "-m", "plugkit", "verify", *map(str, args)], capture_output=True, text=True)


def test_verify_device_options_are_checked(pair):
    original, plugged = pair
    result = verify_cli(original, plugged, "--plugins", testing.built_library())
    assert result.returncode == 2 and "--plugins is for --device cuda" in result.stderr
    result = verify_cli(original, plugged, "--device", "cuda")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert ("need a CUDA device" in result.stderr if not torch.cuda.is_available()
            else "name it with --plugins LIB" in result.stderr)


# ------------------------------------------------------------------ GPU

def cuda_op(name="RMSNorm"):
    testing.require_cuda()
    return torch_op(name, library=testing.built_library())


def op_cases():
    """(op, case, dtype) of every op's test cases in each dtype it takes: the data-driven GPU check
    of every plugin in the library."""
    return [pytest.param(name, case, dtype, id=f"{name}-{i}-{dtype}")
            for name, schema in sorted(load_schemas().items()) if schema.reference is not None
            for i, case in enumerate(schema.test_cases) for dtype in schema.dtypes]


@pytest.mark.gpu
@pytest.mark.parametrize("name, case, dtype", op_cases())
def test_cuda_op_matches_the_reference(name, case, dtype):
    """The op on CUDA tensors (the plugin, through torch's dispatcher) against the reference on the
    same inputs: every case of every op, each dtype it takes."""
    schema = get_schema(name)
    op = cuda_op(name)
    attrs = case.get("attrs", {})
    inputs = case_inputs(schema, case["inputs"], dtype, seed=1, values=case.get("values"))
    outputs = op(*inputs, **attrs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    expected = schema.run_reference(*[testing.to_numpy(t) for t in inputs], **attrs)
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert got.is_cuda and list(got.shape) == list(np.shape(want)), (i, got.shape, np.shape(want))
        result = compare(testing.to_numpy(got), want, str(got.dtype).replace("torch.", ""))
        assert result.ok, f"{name} output {i} {dtype} {case}: {result}"


@pytest.mark.gpu
def test_runs_on_the_current_stream_without_synchronising():
    op = cuda_op()
    x = torch.randn(64, 1024, device="cuda", dtype=torch.float16)
    w = torch.rand(1024, device="cuda", dtype=torch.float16) + 0.5
    expected = op(x, w)  # prepared here, outside the checked region
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    torch.cuda.set_sync_debug_mode("error")  # any synchronising torch call raises
    try:
        with torch.cuda.stream(stream):
            ys = [op(x, w) for _ in range(10)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    stream.synchronize()
    for y in ys:
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
    noncontiguous = torch.randn(1024, 64, device="cuda", dtype=torch.float16).t()
    torch.testing.assert_close(op(noncontiguous, w), op(noncontiguous.contiguous(), w))


@pytest.mark.gpu
def test_torch_compile_fullgraph_has_no_graph_break():
    op = cuda_op()
    w = torch.rand(256, device="cuda") + 0.5

    def f(x):
        return op(torch.nn.functional.silu(x), w, epsilon=1e-6) * 2

    x = torch.randn(8, 32, 256, device="cuda")
    explanation = torch._dynamo.explain(f)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(f, fullgraph=True)
    torch.testing.assert_close(compiled(x), f(x))
    torch.testing.assert_close(compiled(x[:3]), f(x[:3]))  # another shape: the op prepares it


@pytest.mark.gpu
def test_cuda_graph_capture_and_replay_equal_eager():
    op = cuda_op()
    x = torch.randn(16, 2048, device="cuda", dtype=torch.bfloat16)
    w = torch.rand(2048, device="cuda", dtype=torch.bfloat16) + 0.5
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (plugin prepared, module loaded) before capture
        op(x, w)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = op(x, w)
    for _ in range(3):
        x.copy_(torch.randn_like(x))
        graph.replay()
        torch.testing.assert_close(y, op(x, w), rtol=0, atol=0)


@pytest.mark.gpu
def test_torch_compile_reduce_overhead_replays_a_graph():
    op = cuda_op()
    w = torch.rand(512, device="cuda", dtype=torch.float16) + 0.5
    compiled = torch.compile(lambda x: op(x, w) + 1, mode="reduce-overhead", fullgraph=True)
    for _ in range(4):
        x = torch.randn(32, 512, device="cuda", dtype=torch.float16)
        torch.testing.assert_close(compiled(x).clone(), op(x, w) + 1)


@pytest.mark.gpu
def test_opcheck_on_cuda_tensors():
    op = cuda_op()
    x, w = torch.randn(4, 6, 64, device="cuda"), torch.rand(64, device="cuda") + 0.5
    torch.library.opcheck(op, (x, w, -1, 1e-6))


@pytest.mark.gpu
def test_one_plugin_per_key_and_a_clear_error_without_a_library(monkeypatch):
    op = cuda_op()
    x, w = torch.randn(2, 128, device="cuda"), torch.rand(128, device="cuda")
    first = op.plugkit_kernel.prepared(x, w, -1, 1e-6, 1)
    for _ in range(3):
        op(x, w, epsilon=1e-6)  # the dispatcher may leave out stash_type=1: the same key
    assert op.plugkit_kernel.prepared(x, w, -1, 1e-6) is first
    assert op.plugkit_kernel.prepared(x[:1], w, -1, 1e-6, 1) is not first
    assert first.plugin.trace.count("enqueue") == 1  # recorded once, not per call
    kernel = OpKernel(SCHEMA, "rms_norm")  # a kernel given no library, with none in the environment
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    with pytest.raises(PluginLibraryError, match="no library is named"):
        kernel(x, w, -1, 1e-6, 1)


@pytest.mark.gpu
def test_verify_device_cuda_runs_the_plugin_nodes(pair, tmp_path):
    import onnx

    original, plugged = pair
    testing.require_cuda()
    result = verify_cli(original, plugged, "--device", "cuda", "--plugins", testing.built_library(),
                        "--dim", "N=1,4", "--dim", "T=1,33")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: every output is within tolerance" in result.stdout
    bad = onnx.load(plugged)  # a node whose fields make the kernel compute something else
    (node,) = [n for n in bad.graph.node if n.op_type == "RMSNorm"]
    next(a for a in node.attribute if a.name == "epsilon").f = 10.0
    onnx.save(bad, tmp_path / "bad.onnx")
    result = verify_cli(original, tmp_path / "bad.onnx", "--device", "cuda", "--plugins", testing.built_library())
    assert result.returncode == 1 and "MISMATCH" in result.stdout


def test_a_node_plugin_is_created_once_and_follows_shape_changes():
    """verify --device cuda: each node's plugin is made once from the node's fields; a new input shape
    gets the build-phase queries and configurePlugin for it, and onShapeChange (no GPU needed)."""
    from plugkit.device_nodes import NodePlugin

    node = NodePlugin(testing.plugin_library().creator("RMSNorm"), {"epsilon": 1e-3, "axis": -1}, "norm_0")
    node._shape_change([("float16", [2, 3, 64]), ("float16", [64])])
    node._shape_change([("float16", [5, 7, 64]), ("float16", [64])])
    trace = node.build.trace + node.runtime.trace
    assert trace.count("createPlugin(kBUILD)") == 1 and trace.count("createPlugin(kRUNTIME)") == 1
    assert trace.count("configurePlugin") == 2 and trace.count("onShapeChange") == 2
    assert node.alloc_shapes == [[5, 7, 64]] and node.output_dtypes == ["float16"]
    fields = {f.name: f.scalar for f in node.build.serialize()}
    assert fields["epsilon"] == pytest.approx(1e-3)  # the node's own attributes, not the defaults
