"""RMSNorm: field parsing, shape inference, serialization and the lifecycle on any
machine; numerics against the reference on a GPU."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from plugkit import testing
from plugkit.host import Field, PluginError, PreparedPlugin
from plugkit.ops import get_schema

SCHEMA = get_schema("RMSNorm")


@pytest.fixture(scope="module")
def creator():
    return testing.plugin_library().creator("RMSNorm", "1", "plugkit")


def serialized(plugin):
    return {f.name: (f.type, f.scalar) for f in plugin.serialize()}


# ------------------------------------------------------------------ fields

def test_missing_fields_take_defaults(creator):
    assert serialized(creator.create({})) == {
        "axis": ("INT32", -1), "epsilon": ("FLOAT32", pytest.approx(1e-5)), "stash_type": ("INT32", 1)}


@pytest.mark.parametrize("fields, expected", [
    ([Field("axis", -2, "INT32")], {"axis": -2}),
    ([Field("axis", 1, "INT64")], {"axis": 1}),           # numpy users pass int64
    ([Field("axis", [3], "INT8")], {"axis": 3}),
    ([Field("epsilon", 1e-3, "FLOAT64")], {"epsilon": pytest.approx(1e-3)}),
    ([Field("epsilon", 0.5, "FLOAT32"), Field("axis", 0, "INT32")], {"axis": 0, "epsilon": 0.5}),
])
def test_good_fields(creator, fields, expected):
    values = {k: v for k, (_, v) in serialized(creator.create(fields=fields)).items()}
    for name, value in expected.items():
        assert values[name] == value


@pytest.mark.parametrize("fields, message", [
    ([Field("epsilon", "abc", "CHAR")], "field 'epsilon' is FLOAT32; got CHAR"),
    ([Field("axis", 1.5, "FLOAT32")], "field 'axis' is INT32; got FLOAT32"),
    ([Field("axis", [1, 2], "INT32")], "field 'axis' is a single INT32; got 2 values"),
    ([Field("axis", 2**40, "INT64")], "does not fit in INT32"),
    ([Field("eps", 0.1, "FLOAT32")], "unknown field 'eps'; this plugin's fields are: axis, epsilon, stash_type"),
    ([Field("axis", 0, "INT32"), Field("axis", 1, "INT32")], "field 'axis' is given twice"),
    ([Field("epsilon", 0.0, "FLOAT32")], "epsilon must be a positive number; got 0"),
    ([Field("epsilon", -1e-5, "FLOAT32")], "epsilon must be a positive number"),
    ([Field("epsilon", float("nan"), "FLOAT32")], "epsilon must be a positive number"),
    ([Field("stash_type", 10, "INT32")], "stash_type must be 1 (float32"),  # ONNX's FLOAT16
    ([Field("stash_type", 0, "INT32")], "stash_type must be 1 (float32"),
])
def test_bad_fields_are_refused_with_the_field_named(creator, fields, message):
    with pytest.raises(PluginError, match="RMSNorm") as info:
        creator.create(fields=fields, layer_name="norm1")
    assert message in str(info.value)
    assert "'norm1'" in str(info.value)


def test_python_values_become_fields_as_the_onnx_parser_makes_them(creator):
    plugin = creator.create({"axis": -2, "epsilon": 1e-6, "stash_type": 1})
    assert serialized(plugin) == {
        "axis": ("INT32", -2), "epsilon": ("FLOAT32", pytest.approx(1e-6)), "stash_type": ("INT32", 1)}
    with pytest.raises(PluginError, match="field 'epsilon' is FLOAT32; got CHAR"):
        creator.create({"epsilon": "1e-6"})


def test_serialize_then_recreate_round_trips(creator):
    build = creator.create({"axis": -3, "epsilon": 0.25}, phase="build")
    fields = build.serialize()
    runtime = creator.create(fields=fields, phase="runtime")
    assert runtime.serialize() == fields
    assert runtime.attach_to_context().serialize() == fields
    assert build.clone().serialize() == fields


# ------------------------------------------------------------------ shapes and dtypes

@pytest.mark.parametrize("shapes, axis, expected", [
    ([[2, 5, 4096], [4096]], -1, [[2, 5, 4096]]),
    ([["B", "T", 64], [64]], -1, [["B", "T", 64]]),
    ([["B", "T", "C"], ["C"]], 1, [["B", "T", "C"]]),
    ([[0, 16], [16]], -1, [[0, 16]]),
])
def test_output_shapes_including_symbolic(creator, shapes, axis, expected):
    assert creator.create({"axis": axis}).output_shapes(shapes) == expected


@pytest.mark.parametrize("axis, rank", [(2, 2), (-3, 2), (0, 0)])
def test_axis_out_of_range_is_refused_at_shape_inference(creator, axis, rank):
    plugin = creator.create({"axis": axis}, layer_name="n")
    with pytest.raises(PluginError, match="out of range|rank >= 1"):
        plugin.output_shapes([[4] * rank, [4]])


def test_output_dtype_follows_x(creator):
    plugin = creator.create({})
    for x, scale in [("float16", "float32"), ("bfloat16", "bfloat16"), ("float32", "float16")]:
        assert plugin.output_dtypes([x, scale]) == [x]


def test_format_table_is_float_types_with_y_of_x_type(creator):
    plugin = creator.create({})
    table = plugin.format_table(nb_inputs=2)
    floats = ("float32", "float16", "bfloat16")
    assert sorted(table) == sorted((x, s, x) for x in floats for s in floats)
    # The limit is asked after the queries, as the builder does; RMSNorm keeps TensorRT's default.
    assert plugin.trace[-2:] == ["supportsFormatCombination", "getFormatCombinationLimit"]
    assert plugin.format_combination_limit() == 100  # kDEFAULT_FORMAT_COMBINATION_LIMIT


def test_only_linear_format_is_supported(creator):
    plugin = creator.create({})
    assert plugin.supports(0, ["float16"] * 3, 2)
    assert not plugin.supports(0, ["float16"] * 3, 2, formats=["CHW32", "LINEAR", "LINEAR"])


@pytest.mark.parametrize("x, scale, axis, message", [
    ([2, 8], [7], -1, "scale [7] does not broadcast to X's normalized axes [8]"),
    ([2, 6, 8], [6, 2], -2, "scale [6, 2] does not broadcast to X's normalized axes [6, 8]"),
    ([2, 8], [2, 8], -1, "has more axes than X's normalized axes"),
])
def test_shapes_the_plugin_refuses(creator, x, scale, axis, message):
    plugin = creator.create({"axis": axis}, layer_name="norm")
    specs = [("float16", x), ("float16", scale)]
    with pytest.raises(PluginError, match="configurePlugin refused") as info:
        plugin.configure(specs, [("float16", x)])
    assert message in str(info.value)


def test_configure_checks_both_ends_of_a_profile(creator):
    plugin = creator.create({"axis": -2})
    x_range = ([1, 8, 64], [4, 8, 64], [16, 8, 64])
    plugin.configure([("float16", x_range), ("float16", [8, 64])], [("float16", x_range)])
    with pytest.raises(PluginError, match="does not broadcast"):
        bad = ([1, 8, 64], [1, 8, 64], [1, 8, 128])
        plugin.configure([("float16", bad), ("float16", [8, 64])], [("float16", bad)])


# numpy's rules, as ONNX has them: along inner normalized axes too ([8, 1]).
@pytest.mark.parametrize("scale", [[64], [1, 64], [8, 64], [1], [], [1, 1], [8, 1], [1, 1, 64], [1, 8, 1]])
def test_scale_shapes_that_broadcast(creator, scale):
    creator.create({"axis": -2}).configure(
        [("float32", [3, 8, 64]), ("float32", scale)], [("float32", [3, 8, 64])])


def test_workspace_is_asked_only_for_a_broadcast_scale(creator):
    plugin = creator.create({"axis": -2})
    full = [("float16", [4, 8, 64]), ("float16", [8, 64])]
    assert plugin.workspace_size(full, full[:1]) == 0
    suffix = [("float16", ([1, 8, 64], [4, 8, 64], [16, 8, 100])), ("float16", [100])]
    assert plugin.workspace_size(suffix, suffix[:1]) == 13 * 256  # 8*100 fp32 values, rounded up to 256 bytes
    assert plugin.valid_tactics() == []


# ------------------------------------------------------------------ lifecycle

LIFECYCLE = [
    "createPlugin(kBUILD)", "getNbOutputs", "getOutputDataTypes", "clone", "getNbOutputs", "getOutputShapes",
    "clone", "supportsFormatCombination", "supportsFormatCombination", "supportsFormatCombination",
    "getFormatCombinationLimit", "configurePlugin", "getWorkspaceSize", "getNbTactics", "getFieldsToSerialize",
    "createPlugin(kRUNTIME)", "attachToContext", "setTactic", "onShapeChange",
]


def test_host_follows_tensorrts_lifecycle_order(creator):
    prepared = PreparedPlugin(creator, {"epsilon": 1e-6}, [("float16", [4, 64]), ("float16", [64])])
    assert prepared.trace == LIFECYCLE
    assert prepared.output_dtypes == ["float16"] and prepared.output_shapes == [[4, 64]]
    assert {f.name: f.scalar for f in prepared.fields}["epsilon"] == pytest.approx(1e-6)


def test_unsupported_dtype_stops_the_build_phase(creator):
    with pytest.raises(PluginError, match="does not support dtype int32 at position 0"):
        PreparedPlugin(creator, {}, [("int32", [4, 64]), ("float16", [64])])


NO_GPU_ENQUEUE = """
import sys
from plugkit import _host, testing
from plugkit.host import PluginError, PreparedPlugin

assert _host.cuda_device_count() == 0

class DeviceArray:  # what cupy would hand over, without a device behind it
    def __init__(self, shape):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (0, False), "version": 3}

creator = testing.plugin_library().creator("RMSNorm", "1", "plugkit")
prepared = PreparedPlugin(creator, {}, [("float32", [4, 64]), ("float32", [64])])
try:
    prepared.plugin.enqueue([DeviceArray((4, 64)), DeviceArray((64,))], [DeviceArray((4, 64))], stream=0)
except PluginError as exc:
    print(exc)
"""


def test_enqueue_without_a_gpu_says_so():
    assert "enqueue needs a CUDA device" in testing.run_without_a_gpu(NO_GPU_ENQUEUE)


# ------------------------------------------------------------------ the kernel rule (CPU)

# The rule (plugins/rms_norm/rms_norm_rule.h) is a pure function of the problem and the device's
# properties; a small C++ program prints its plan for each case, compiled here with the host's
# C++ compiler. A change of the rule, or of a knob in rms_norm_config.h, changes a row below.
H200 = "132 32 232448 233472 90 2"  # SMs, blocks an SM, shared memory a block (opt-in) and an SM, PTX, pipeline blocks an SM
A100 = "108 32 166912 167936 80 2"
T4 = "40 16 65536 65536 75 0"
# device, rows, cols, bytes of X, bytes of scale, 16-byte vectors ->
# family vec items threads rows-a-block rows-a-thread exact launch-bound evict-first stages stage-bytes grid
RULE_CASES = [
    (H200, "16384 8192 4 4 1", "reread 4 4 512 1 1 0 512 1 0 0 0"),       # fp32 holds the scale
    (H200, "16384 8192 2 2 1", "reread 8 2 512 1 1 0 512 1 0 0 0"),
    (H200, "1845 8192 2 2 1", "pipeline 8 4 256 1 1 0 0 1 5 16384 264"),  # 7 rows a block, 5 stages of 16 KB
    (H200, "2048 16384 2 2 1", "pipeline 8 8 256 1 1 0 0 1 2 32768 264"),
    (H200, "2048 16384 4 4 1", "reread 4 4 1024 1 1 0 1024 1 0 0 0"),     # 64 KB rows: one stage only
    (H200, "396 8192 2 2 1", "block_rows 8 8 128 1 1 0 512 1 0 0 0"),     # 3 rows an SM: too few for either
    (H200, "4096 4096 2 2 1", "block_rows 8 4 128 1 1 0 512 1 0 0 0"),    # 8 KB rows
    (H200, "4096 4096 4 4 1", "reread 4 2 512 1 1 0 512 1 0 0 0"),
    (H200, "32768 1024 2 2 1", "warp_rows 8 4 32 8 1 0 512 0 0 0 0"),     # plain loads: few vectors, many blocks
    (H200, "262144 128 4 4 1", "warp_rows 4 1 32 4 4 1 128 0 0 0 0"),     # constant length, 4-warp blocks
    (H200, "16384 256 4 4 1", "warp_rows 4 2 32 1 4 1 32 0 0 0 0"),       # constant length, one wave of one-warp blocks
    (H200, "70001 64 2 2 1", "warp_rows 8 1 8 16 4 0 512 0 0 0 0"),       # 4 rows a warp
    (H200, "33 1000 2 4 1", "warp_rows 8 4 32 1 1 0 512 1 0 0 0"),        # fp32 scale not held (issue 22 item 10)
    (H200, "64 2048 2 2 1", "block_rows 8 1 256 1 1 0 512 1 0 0 0"),      # fewer rows than SMs: 256 threads
    (H200, "1024 65536 2 2 1", "block_rows 8 16 512 1 1 0 512 1 0 0 0"),
    (H200, "1024 65536 4 4 1", "streaming 4 1 1024 1 1 0 0 1 0 0 0"),
    (H200, "8 512 2 2 0", "block_rows 1 2 256 1 1 0 512 1 0 0 0"),       # misaligned: one element a vector
    (A100, "1845 8192 2 2 1", "reread 8 2 512 1 1 0 512 1 0 0 0"),        # no bulk copies before sm_90
    (T4, "2117 8192 2 2 1", "block_rows 8 8 128 1 1 0 512 1 0 0 0"),      # no cache hints before sm_80
    ("132 32 232448 233472 90 1", "1845 8192 2 2 1", "reread 8 2 512 1 1 0 512 1 0 0 0"),  # one block an SM fits
]


@pytest.fixture(scope="module")
def kernel_rule(tmp_path_factory):
    """The rule's plan for each input line, from tests/cpp/rms_norm_rule_main.cpp."""
    import shutil
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if compiler is None:
        pytest.fail("the kernel rule's test needs a C++17 compiler (c++ or $CXX) on PATH")
    exe = tmp_path_factory.mktemp("rule") / "rms_norm_rule"
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{root / 'plugins' / 'rms_norm'}",
                    str(root / "tests" / "cpp" / "rms_norm_rule_main.cpp"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)

    def plans(lines):
        out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
        return out.stdout.splitlines()
    return plans


def test_kernel_rule_picks_each_family_and_its_launch(kernel_rule):
    got = kernel_rule([f"{device} {problem}" for device, problem, _ in RULE_CASES])
    assert dict(zip((p for _, p, _ in RULE_CASES), got)) == {p: e for _, p, e in RULE_CASES}


def test_kernel_rule_header_needs_no_cuda():
    from pathlib import Path
    rule = (Path(__file__).resolve().parent.parent / "plugins" / "rms_norm" / "rms_norm_rule.h").read_text()
    assert "cuda" not in "".join(line for line in rule.splitlines() if line.startswith("#include")).lower()


# ------------------------------------------------------------------ numerics (GPU)

GPU_CASES = [
    ([[1, 1], [1]], {}),
    ([[3, 7], [7]], {}),
    ([[2, 5, 4096], [4096]], {}),
    ([[2, 65536], [65536]], {}),                   # normalized size 65536: register path (fp16/bf16)
    ([[3, 131072], [131072]], {}),                 # beyond registers: streaming kernel
    ([[4, 6, 8], [6, 8]], {"axis": -2}),
    ([[5, 3, 40], [40]], {"axis": -2}),            # scale repeats over the normalized axes
    ([[6, 323, 149], [323, 1]], {"axis": -2}),     # scale broadcasts along an inner normalized axis
    ([[4, 3, 5, 16], [3, 1, 16]], {"axis": 1}),    # ... along a middle one
    ([[4, 3, 5, 16], [1, 5, 1]], {"axis": 1}),
    ([[7, 96], [1]], {"epsilon": 1e-2}),           # one scale value
    ([[0, 16], [16]], {}),                         # empty
    ([[4, 0], [0]], {}),                           # empty normalized axes
    ([[33, 1000], [1000]], {}),                    # 16-bit: 125 vectors, a warp a row (4 a lane, the last lanes past its end)
    ([[9, 3, 5, 16], [3, 5, 16]], {"axis": 1}),
    ([[37, 1024], [1024]], {}),                    # narrow rows, several a block; a partial last block
    ([[1001, 128], [128]], {}),                    # rows of a few lanes each
    ([[5, 2048], [2048]], {}),                     # fewer rows than multiprocessors
    ([[3, 7, 520], [520]], {}),                    # 65 vectors of 16-bit values: one past 2 a lane, so 4 a lane
    # Enough rows for several rows a thread (the last group partial, some threads past the end):
    ([[70001, 64], [64]], {}),                     # several rows a warp, each of a few lanes
    ([[8447, 256], [256]], {}),                    # a row a warp (fp32: two vectors a lane), of constant length
    ([[40001, 30], [30]], {}),                     # one element a vector; lanes past the row's end
    ([[8447, 384], [384]], {}),                    # 16-bit: two rows a thread, some lanes past the end
    ([[150001, 16], [16]], {}),                    # 16-bit: 2 lanes a row, 4 rows a thread (fp32: 4 lanes)
    ([[300001, 8], [8]], {}),                      # 16-bit: a lane a row, 4 rows a thread
    ([[4225, 512], [512]], {}),                    # 16-bit: a row of constant length a warp, 2 vectors a lane, 2 rows a thread
    ([[8453, 128], [128]], {}),                    # fp32: a row of constant length a warp, 1 vector a lane, 4 rows a thread
    # More than one wave of one-warp blocks: 4-warp blocks of several rows a thread.
    ([[9001, 512], [512]], {}),                    # 16-bit: 2 rows a thread; fp32: 4 vectors a lane, 2 rows a thread
    ([[40003, 128], [128]], {}),                   # 4 rows a thread, the last block partial
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shapes, attrs", GPU_CASES, ids=lambda v: str(v))
def test_matches_reference(dtype, shapes, attrs):
    testing.require_cuda()
    library = testing.plugin_library()
    testing.check_against_reference(library, SCHEMA, shapes, dtype, attrs, seed=len(str(shapes)))


def pipeline_rows(rows_a_block: int) -> int:
    """Rows that the row pipeline (sm_90+) takes, about `rows_a_block` a block of its grid of two
    blocks a multiprocessor (it takes 4 to 8); other GPUs run them in the register kernel."""
    import torch
    return rows_a_block * 2 * torch.cuda.get_device_properties(0).multi_processor_count - 3


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("cols, scale_cols, rows_a_block", [
    (8200, 8200, 7),    # rows past a whole number of items a thread; stages refilled (5 of 16 KB, 2 of 32 KB)
    (8192, 1, 5),       # the expanded scale of one value
    (4096, 4096, 8),    # fp32: 16 KB rows, 4 items a thread (16-bit: 8 KB rows, the register kernel)
    (16384, 16384, 6),  # 16-bit: 32 KB rows, 2 stages a block (fp32: 64 KB rows, the register kernel)
], ids=str)
def test_row_pipeline_matches_reference(dtype, cols, scale_cols, rows_a_block):
    testing.require_cuda()
    rows = pipeline_rows(rows_a_block)
    testing.check_against_reference(testing.plugin_library(), SCHEMA, [[rows, cols], [scale_cols]], dtype, seed=rows)


def reread_rows(rows_a_multiprocessor: int) -> int:
    """Rows that the re-read kernel (sm_80+) takes for rows of 16 KB or more (4 or more a
    multiprocessor, those the row pipeline does not); other GPUs run them in the register kernel."""
    import torch
    return rows_a_multiprocessor * torch.cuda.get_device_properties(0).multi_processor_count + 5


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("cols, scale_cols", [
    (4096, 4096),    # fp32: 16 KB rows, 2 vectors a thread (16-bit: 8 KB rows, the register kernel)
    (5000, 5000),    # fp32: 4 vectors a thread for 1250, 320 threads, the last vector of a thread missing
    (8192, 1),       # fp32: 4 vectors a thread; 16-bit 2; the expanded scale of one value
    (8200, 8200),    # just past 512 threads of the most vectors: 544 threads (the 1024-thread bound)
    (16384, 16384),  # 1024 threads of the most vectors
], ids=str)
def test_reread_kernel_matches_reference(dtype, cols, scale_cols):
    testing.require_cuda()
    rows = reread_rows(16)
    testing.check_against_reference(testing.plugin_library(), SCHEMA, [[rows, cols], [scale_cols]], dtype, seed=cols)


# Prints, as JSON, the RMSNorm kernels that ran (fp16) for each [rows, cols] of argv[1]. It leaves
# with os._exit: torch's CUPTI teardown after profiling can abort the process at exit with a glibc
# heap-corruption error (pytorch/pytorch#195207), which would fail the whole pytest run.
KERNELS_RAN = """
import json, os, sys
import torch
from plugkit import testing
from plugkit.ops import get_schema
schema, library = get_schema("RMSNorm"), testing.plugin_library()
ran = []
for rows, cols in json.loads(sys.argv[1]):
    x, scale = testing.random_inputs(schema, [[rows, cols], [cols]], "float16", seed=0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        testing.run_plugin(library, schema, [x, scale])
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    ran.append(sorted({k for k in ("pipelineKernel", "rereadKernel", "registerKernel") if any(k in n for n in names)}))
print(json.dumps(ran), flush=True)
os._exit(0)
"""


@pytest.mark.gpu
def test_launcher_picks_the_kernel_by_shape_and_device():
    """The launcher's rule, by the kernels that ran (fp16): on sm_90+ the row pipeline for 4 to 8
    rows a block of 16 to 46 KB; on sm_80+ the re-read kernel for the other grids of 4 or more
    rows a multiprocessor of 16 KB or more (both faster there on the H200); the register kernel
    for the rest, and for all of them before sm_80."""
    torch = testing.require_cuda()
    major = torch.cuda.get_device_capability()[0]
    reread = "rereadKernel" if major >= 8 else "registerKernel"
    pipeline = "pipelineKernel" if major >= 9 else reread
    multiprocessors = torch.cuda.get_device_properties(0).multi_processor_count
    expected = {
        (pipeline_rows(7), 8192): pipeline,
        (reread_rows(16), 8192): reread,             # more rows than the pipeline takes
        (reread_rows(16), 16384): reread,
        (reread_rows(4), 16384): reread,             # fewer rows than the pipeline takes
        (3 * multiprocessors, 8192): "registerKernel",  # too few rows for either
        (pipeline_rows(7), 4096): "registerKernel",  # 8 KB rows
        (reread_rows(16), 4096): "registerKernel",
        (reread_rows(4), 32768): "registerKernel",   # 64 KB 16-bit rows: more than 1024 threads of 2 vectors
    }
    child = subprocess.run([sys.executable, "-c", KERNELS_RAN, json.dumps(list(expected))],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    ran = json.loads(child.stdout.strip().splitlines()[-1])
    assert dict(zip(expected, (r[0] if len(r) == 1 else r for r in ran))) == expected


@pytest.mark.gpu
def test_large_fp16():
    testing.require_cuda()
    testing.check_against_reference(testing.plugin_library(), SCHEMA, [[4096, 8192], [8192]], "float16")


@pytest.mark.gpu
# A block a row; several rows a thread, a warp each (256: the constant-length kernel) or several a warp (64).
@pytest.mark.parametrize("cols", [65536, 256, 64])
def test_tensors_of_2_to_the_31_elements_and_more(cols):
    """The register kernels index in 32 bits, so the launcher splits such tensors into launches
    of fewer rows. Every row is written, and the rows at either side of the first launch's end
    (at most a block's rows before 2^31 elements) and the last rows match the reference."""
    torch = testing.require_cuda()
    from plugkit.tolerances import compare
    rows = 2**31 // cols + 3  # 4 GiB of fp16 each way
    generator = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(rows, cols, device="cuda", dtype=torch.float16, generator=generator)
    scale = torch.randn(cols, device="cuda", dtype=torch.float16, generator=generator)
    y, = testing.run_plugin(testing.plugin_library(), SCHEMA, [x, scale])
    assert not torch.isnan(y).any(), "rows left unwritten (the output was NaN before the launch)"
    end = (2**31 - 1) // cols
    window = max(4, 2**17 // cols)  # at least the largest block's rows (1024)
    for first, last in [(0, 4), (end - window, end + window), (rows - 4, rows)]:
        expected, = SCHEMA.run_reference(testing.to_numpy(x[first:last]), testing.to_numpy(scale))
        result = compare(testing.to_numpy(y[first:last]), expected, "float16")
        assert result.ok, f"rows {first}..{last - 1} of {rows}x{cols}: {result}"


@pytest.mark.gpu
@pytest.mark.parametrize("x_dtype, scale_dtype", [("float16", "float32"), ("bfloat16", "float32"), ("float32", "bfloat16")])
# 64 rows, a block each; the row pipeline; the re-read kernel
@pytest.mark.parametrize("kernel, cols", [("register", 4096), ("pipeline", 8192), ("reread", 8192)])
def test_scale_in_another_dtype(x_dtype, scale_dtype, kernel, cols):
    testing.require_cuda()
    rows = {"register": 64, "pipeline": pipeline_rows(7), "reread": reread_rows(16)}[kernel]
    testing.check_against_reference(testing.plugin_library(), SCHEMA, [[rows, cols], [cols]], x_dtype,
                                    scale_dtype=scale_dtype)


# Rows of a warp or less whose scale is wider than X or whose width is not a multiple of the
# vector: lanes past a row's end compute (and do not store) columns there, and must read their
# scale inside the row. Under compute-sanitizer memcheck with PYTORCH_NO_CUDA_MEMORY_CACHING=1
# these read nothing past the end of scale (X [33, 1000] fp16, scale fp32 once did).
WARP_ROW_SCALE_CASES = [
    (33, 1000),   # 16-bit: 125 vectors, 4 a lane, the last 3 lanes past the end
    (33, 1016),   # 127 vectors: the last lane past the end
    (7, 520),     # 65 vectors: 4 a lane, most of the last item past the end
    (9, 776),     # 97 vectors
    (5, 1024),    # exactly 128 vectors (no lane past the end)
    (4001, 1000),  # enough rows for several rows a block
    (3, 100),     # fp32 25 vectors; 16-bit one element a vector (100 is not a multiple of 8)
    (3, 126),     # a multiple of 2, not of 4
    (3, 127),     # odd: one element a vector in every dtype
    (9001, 124),  # a multiple of 4, not of 8; several rows a thread
]


@pytest.mark.gpu
@pytest.mark.parametrize("x_dtype, scale_dtype", [
    ("float16", "float32"), ("bfloat16", "float32"), ("float32", "float16"), ("float16", "bfloat16")])
@pytest.mark.parametrize("rows, cols", WARP_ROW_SCALE_CASES, ids=str)
def test_scale_in_another_dtype_rows_of_a_warp(x_dtype, scale_dtype, rows, cols):
    testing.require_cuda()
    testing.check_against_reference(testing.plugin_library(), SCHEMA, [[rows, cols], [cols]], x_dtype,
                                    scale_dtype=scale_dtype, seed=cols)


@pytest.mark.gpu
def test_misaligned_tensors_take_the_scalar_path():
    torch = testing.require_cuda()
    library = testing.plugin_library()
    base = torch.randn(8 * 512 + 1, device="cuda", dtype=torch.float16)
    x = base[1:].view(8, 512)                     # 2-byte offset: no 16-byte vectors
    scale = torch.randn(512, device="cuda", dtype=torch.float16)
    y, = testing.run_plugin(library, SCHEMA, [x, scale])
    expected, = SCHEMA.run_reference(testing.to_numpy(x), testing.to_numpy(scale))
    from plugkit.tolerances import compare
    assert compare(testing.to_numpy(y), expected, "float16").ok


@pytest.mark.gpu
def test_runs_on_the_given_stream_and_on_cupy():
    torch = testing.require_cuda()
    library = testing.plugin_library()
    creator = library.creator("RMSNorm")
    x = torch.randn(64, 256, device="cuda")
    w = torch.randn(256, device="cuda")
    stream = torch.cuda.Stream()
    prepared = PreparedPlugin(creator, {}, [("float32", [64, 256]), ("float32", [256])])
    with torch.cuda.stream(stream):
        y, = prepared(x, w, stream=stream)
    stream.synchronize()
    expected, = SCHEMA.run_reference(x.double().cpu().numpy(), w.double().cpu().numpy())
    np.testing.assert_allclose(y.double().cpu().numpy(), expected, rtol=1e-5, atol=1e-5)
    try:
        import cupy
    except ImportError:
        pytest.fail("enqueue on cupy arrays is part of the host's contract: this test needs cupy "
                    "(pip install cupy-cuda13x, or the wheel for your CUDA)")
    y_cupy, = prepared(cupy.asarray(x), cupy.asarray(w))
    np.testing.assert_allclose(cupy.asnumpy(y_cupy), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_runtime_errors_reach_the_error_recorder():
    torch = testing.require_cuda()
    creator = testing.plugin_library().creator("RMSNorm")
    prepared = PreparedPlugin(creator, {}, [("float32", [4, 64]), ("float32", [64])])
    x = torch.randn(4, 64, device="cuda")
    with pytest.raises(PluginError, match="does not broadcast"):
        prepared.plugin.enqueue([x, torch.randn(63, device="cuda")], [torch.empty_like(x)])
    assert any("does not broadcast" in e for e in prepared.plugin.recorded_errors)


# ------------------------------------------------------------------ launches with PDL (GPU)

# Cases for the kernels of each kind, launched one after another.
PDL_CASES = [
    ([64, 256], [256], "float32"),         # a few blocks: a launch fits beside the one before it
    ([16384, 256], [256], "float16"),      # a full wave of the constant-length kernel
    ([64, 4096], [4096], "bfloat16"),      # a block a row
    ([3, 131072], [131072], "float16"),    # the streaming kernel
    ([7, 96], [1], "float32"),             # a broadcast scale: each launch first rewrites the workspace
    ([2048, 8192], [8192], "float32"),     # the row pipeline's persistent grid (H100, H200: 7.8 rows a block)
    ([4096, 8192], [8192], "float16"),     # the re-read kernel (H100, H200: 31 rows a multiprocessor)
]


@pytest.mark.gpu
@pytest.mark.parametrize("x_shape, scale_shape, dtype", PDL_CASES, ids=str)
def test_launches_in_a_row_see_each_others_results(creator, x_shape, scale_shape, dtype):
    """Launched with PDL (plugkit/launch.h), a kernel may be scheduled before the one ahead of
    it on the stream has finished, and must wait before touching memory. Each launch here reads
    what the one before wrote and writes what that one read (two buffers in turn); queued behind
    a long kernel, so that they run back to back, and captured in a CUDA graph (PDL edges), the
    chain must give bit for bit what it gives launched one at a time, plainly, with a
    synchronization after each launch."""
    torch = testing.require_cuda()
    from plugkit.bench import plain_launches

    steps = 8
    x, scale = testing.random_inputs(SCHEMA, [x_shape, scale_shape], dtype, seed=1)
    prepared = PreparedPlugin(creator, {}, [(dtype, x_shape), (dtype, scale_shape)])
    buffers = [prepared.allocate_outputs(x)[0] for _ in range(2)]

    def chain(synchronize=False):
        src = x
        for k in range(steps):
            prepared.enqueue([src, scale], [buffers[k % 2]])
            if synchronize:
                torch.cuda.synchronize()
            src = buffers[k % 2]
        return src.clone()

    with plain_launches():
        expected = chain(synchronize=True)
    assert torch.isfinite(expected).all()
    for b in buffers:
        b.fill_(float("nan"))
    torch.cuda._sleep(20_000_000)  # ~10 ms: the chain's launches queue up behind it
    queued = chain()
    torch.cuda.synchronize()
    assert torch.equal(queued, expected), "launches in a row on one stream"

    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        chain()  # warm-up outside the capture (the workspace is allocated here)
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        captured = chain()
    for b in buffers:
        b.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, expected), "launches in a row in a CUDA graph"
