"""MultiScaleDeformableAttention: schema, shapes, refusals, tactics and serialization on any
machine; the numpy reference against the grid_sample formulation on the CPU; every tactic
against the reference on a GPU."""
import subprocess
import sys

import numpy as np
import pytest

from plugkit import testing
from plugkit.host import PluginError, PreparedPlugin, Tactic
from plugkit.ops import op_module
from plugkit.ops import get_schema
from plugkit.tolerances import compare

NAME = "MultiScaleDeformableAttention"
SCHEMA = get_schema(NAME)
OP = op_module(NAME)
TACTICS = [2, 3, 4, 1]  # the fast mappings first: the default where nothing chooses


@pytest.fixture(scope="module")
def creator():
    return testing.plugin_library().creator(NAME, "1", "plugkit")


def shapes_of(B, levels, Q, H, D, P):
    return OP.case(B, levels, Q, heads=H, channels=D, points=P)["inputs"]


# ------------------------------------------------------------------ schema, fields, tactics

def test_schema_names_the_five_inputs_and_no_attributes():
    assert [t.name for t in SCHEMA.inputs] == [
        "value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights"]
    assert [t.name for t in SCHEMA.outputs] == ["output"] and SCHEMA.attrs == ()
    assert SCHEMA.dtypes == ("float32", "float16", "bfloat16")
    assert testing.check_fields(testing.plugin_library(), SCHEMA) == []


def test_plugkit_list_shows_the_op():
    result = subprocess.run([sys.executable, "-m", "plugkit", "list", str(testing.built_library())],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if NAME in line).split()
    assert line == [NAME, "1", "plugkit", "-"]


def test_any_field_is_refused(creator):
    with pytest.raises(PluginError, match="unknown field 'im2col_step'; this plugin's fields are: none"):
        creator.create({"im2col_step": 64})


def test_serialize_then_recreate_round_trips(creator):
    build = creator.create({}, phase="build")
    fields = build.serialize()
    assert fields == []
    runtime = creator.create(fields=fields, phase="runtime")
    assert runtime.serialize() == fields and runtime.attach_to_context().serialize() == fields
    assert build.clone().serialize() == fields


def test_tactics_the_fast_mappings_first(creator):
    plugin = creator.create({})
    assert plugin.valid_tactics() == TACTICS
    assert plugin.tactics() == [Tactic(2, "point groups 16B"), Tactic(3, "point groups 8B"),
                                Tactic(4, "split points"), Tactic(1, "channel threads")]
    with pytest.raises(PluginError, match="tactic 5 is not one of this plugin's tactics"):
        plugin.set_tactic(5)


# ------------------------------------------------------------------ shapes and dtypes

@pytest.mark.parametrize("shapes, expected", [
    (shapes_of(2, [(10, 15), (5, 8)], 7, 8, 32, 4), [[2, 7, 256]]),
    ([["B", "S", 8, 32], ["L", 2], ["L"], ["B", "Q", 8, "L", 4, 2], ["B", "Q", 8, "L", 4]], [["B", "Q", 256]]),
    (shapes_of(0, [(3, 3)], 4, 2, 16, 4), [[0, 4, 32]]),
])
def test_output_shapes_including_symbolic(creator, shapes, expected):
    assert creator.create({}).output_shapes(shapes) == expected


def test_output_dtype_follows_value_and_index_types_are_int32_or_int64(creator):
    plugin = creator.create({})
    for dtype in SCHEMA.dtypes:
        assert plugin.output_dtypes([dtype, "int64", "int64", dtype, dtype]) == [dtype]
    table = plugin.format_table(nb_inputs=5)
    assert sorted(table) == sorted((f, i, i, f, f, f) for f in SCHEMA.dtypes for i in ("int32", "int64"))


def test_only_linear_format(creator):
    plugin = creator.create({})
    dtypes = ["float16", "int64", "int64", "float16", "float16", "float16"]
    assert plugin.supports(0, dtypes, 5)
    assert not plugin.supports(0, dtypes, 5, formats=["CHW32"] + ["LINEAR"] * 5)


GOOD = shapes_of(2, [(10, 15), (5, 8)], 7, 8, 32, 4)


def with_shape(index, shape):
    shapes = [list(s) for s in GOOD]
    shapes[index] = shape
    return shapes


@pytest.mark.parametrize("shapes, message", [
    (with_shape(0, [2, 190, 256]), "value must be [B, S, H, D]; got rank 3"),
    (with_shape(1, [2, 3]), "spatial_shapes must be [L, 2] (H_l, W_l); got [2, 3]"),
    (with_shape(2, [3]), "level_start_index [3] must have one entry a level of spatial_shapes [2, 2]"),
    (with_shape(3, [2, 7, 8, 2, 4, 3]), "sampling_locations must end in 2 (x, y)"),
    (with_shape(3, [3, 7, 8, 2, 4, 2]), "batch differs"),
    (with_shape(4, [2, 7, 4, 2, 4]), "heads differ"),
    (with_shape(3, [2, 7, 8, 3, 4, 2]), "levels differ"),
    (with_shape(4, [2, 7, 8, 2, 3]), "attention_weights [2, 7, 8, 2, 3] must be sampling_locations"),
    (with_shape(4, [2, 6, 8, 2, 4]), "must be sampling_locations [2, 7, 8, 2, 4, 2] without its last axis"),
    ([[1, 40, 1, 4], [33, 2], [33], [1, 1, 1, 33, 1, 2], [1, 1, 1, 33, 1]], "the plugin takes 1 to 32 levels"),
    ([[1, 40, 1, 4], [0, 2], [0], [1, 1, 1, 0, 1, 2], [1, 1, 1, 0, 1]], "the plugin takes 1 to 32 levels"),
])
def test_shapes_the_plugin_refuses(creator, shapes, message):
    plugin = creator.create({}, layer_name="msda")
    specs = [(d, s) for d, s in zip(["float16", "int64", "int64", "float16", "float16"], shapes)]
    with pytest.raises(PluginError, match="configurePlugin refused") as info:
        plugin.configure(specs, [("float16", [shapes[3][0], shapes[3][1], shapes[0][-1] * shapes[0][-2]])])
    assert message in str(info.value) and "'msda'" in str(info.value)


def test_wrong_ranks_are_refused_at_shape_inference(creator):
    with pytest.raises(PluginError, match=r"sampling_locations must be \[B, Q, H, L, P, 2\]; got rank 5"):
        creator.create({}).output_shapes(with_shape(3, [2, 7, 8, 2, 4]))


def test_configure_checks_both_ends_of_a_profile(creator):
    plugin = creator.create({})
    q = ([1, 1, 8, 2, 4, 2], [2, 100, 8, 2, 4, 2], [4, 900, 8, 2, 4, 2])
    w = ([1, 1, 8, 2, 4], [2, 100, 8, 2, 4], [4, 900, 8, 2, 4])
    value = ([1, 190, 8, 32], [2, 190, 8, 32], [4, 190, 8, 32])
    specs = [("float16", value), ("int64", [2, 2]), ("int64", [2]), ("float16", q), ("float16", w)]
    plugin.configure(specs, [("float16", ([1, 1, 256], [2, 100, 256], [4, 900, 256]))])
    bad_w = ([1, 1, 8, 2, 4], [2, 100, 8, 2, 4], [4, 901, 8, 2, 4])
    with pytest.raises(PluginError, match="without its last axis"):
        plugin.configure(specs[:4] + [("float16", bad_w)], [("float16", ([1, 1, 256], [2, 100, 256], [4, 900, 256]))])


def test_the_bench_cases_are_the_issues_shapes():
    detr = 100 * 150 + 50 * 75 + 25 * 38 + 13 * 19
    mask2former = 128 * 128 + 64 * 64 + 32 * 32
    assert [c["inputs"][3] for c in SCHEMA.bench_cases] == [
        (2, detr, 8, 4, 4, 2), (2, 300, 8, 4, 4, 2), (2, 900, 8, 4, 4, 2), (1, mask2former, 8, 3, 4, 2)]
    assert all(c["inputs"][0][2:] == (8, 32) for c in SCHEMA.bench_cases)


# ------------------------------------------------------------------ the references (CPU)

def cpu_inputs(case, seed=0, spread=None):
    inputs = OP.random_inputs(case["inputs"], "float32", seed, "cpu", case.get("values"))
    if spread is not None:  # locations in [-spread, 1 + spread]
        inputs[3] = (inputs[3] + 0.1) / 1.2 * (1 + 2 * spread) - spread
    return inputs


def references(inputs):
    numpy_out = OP.reference(*[testing.to_numpy(t) for t in inputs])
    torch_out = OP.torch_reference(*[t.double() if t.is_floating_point() else t for t in inputs])
    return numpy_out, torch_out.numpy()


@pytest.mark.parametrize("case", SCHEMA.test_cases + SCHEMA.bench_cases[1:3], ids=lambda c: str(c["inputs"][3]))
def test_numpy_reference_equals_the_grid_sample_formulation(case):
    pytest.importorskip("torch")
    numpy_out, torch_out = references(cpu_inputs(case))
    assert numpy_out.shape == torch_out.shape
    np.testing.assert_allclose(numpy_out, torch_out, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spread", [0.5, 3.0])
def test_references_agree_with_locations_outside_the_map(spread):
    pytest.importorskip("torch")
    inputs = cpu_inputs(OP.case(2, [(5, 7), (3, 4), (1, 1)], 11, heads=3, channels=5, points=3), seed=1,
                        spread=spread)
    numpy_out, torch_out = references(inputs)
    np.testing.assert_allclose(numpy_out, torch_out, rtol=1e-10, atol=1e-10)
    outside = ((inputs[3] < -1) | (inputs[3] > 2)).any(-1).all(-1).all(-1)  # [B, Q, H]: every point far out
    assert np.all(numpy_out.reshape(2, 11, 3, 5)[outside.numpy()] == 0)


def test_reference_samples_pixel_centres_and_interpolates_between_them():
    """On a 2x2 map, (x, y) = ((j + 0.5) / 2, (i + 0.5) / 2) is pixel (i, j) exactly; (0.5, 0.5)
    averages the four; (0, 0) is a quarter of pixel (0, 0) (three corners outside the map)."""
    value = np.arange(1.0, 5.0).reshape(1, 4, 1, 1)  # pixels 1 2 / 3 4
    table, starts = np.array([[2, 2]]), np.array([0])
    locations = np.array([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.5, 0.5], [0.0, 0.0], [1.0, 0.75]])
    locations = locations.reshape(1, 6, 1, 1, 1, 2)
    weights = np.full((1, 6, 1, 1, 1), 2.0)
    out = OP.reference(value, table, starts, locations, weights).ravel()
    np.testing.assert_allclose(out, 2 * np.array([1.0, 2.0, 3.0, 2.5, 0.25, 2.0]))


def test_level_start_index_of_the_detr_levels():
    assert OP.level_start(OP.DETR_LEVELS) == [0, 15000, 18750, 19700]


def test_random_inputs_follow_the_case():
    import torch
    case = SCHEMA.test_cases[3]
    value, table, starts, locations, weights = OP.random_inputs(case["inputs"], "float16", 0, "cpu", case["values"])
    assert table.dtype == starts.dtype == torch.int32 and value.dtype == torch.float16
    assert table.tolist() == [[4, 4], [2, 2]] and starts.tolist() == [0, 16]
    assert locations.min() >= -0.1 and locations.max() <= 1.1


def test_torch_op_runs_the_reference_and_traces_to_the_output_shape():
    torch = pytest.importorskip("torch")
    from plugkit.torch_ops import torch_op
    op = torch_op(NAME)
    inputs = cpu_inputs(SCHEMA.test_cases[1])
    out = op(*inputs)
    np.testing.assert_allclose(out.numpy(), OP.reference(*[testing.to_numpy(t) for t in inputs]), rtol=1e-6, atol=1e-6)

    class Attention(torch.nn.Module):
        def forward(self, *args):
            return op(*args)

    exported = torch.export.export(Attention(), tuple(inputs))
    assert list(exported.module()(*inputs).shape) == [2, 5, 16]
    assert any("multi_scale_deformable_attention" in str(n.target) for n in exported.graph.nodes)


# ------------------------------------------------------------------ numerics (GPU)

def run(inputs, tactic):
    import torch
    specs = [(str(t.dtype).replace("torch.", ""), list(t.shape)) for t in inputs]
    prepared = PreparedPlugin(testing.plugin_library().creator(NAME), {}, specs, tactic=tactic)
    assert prepared.tactic == tactic
    outputs = prepared.allocate_outputs(inputs[0])
    for o in outputs:
        o.fill_(float("nan"))  # an output the kernel leaves unwritten fails the comparison
    prepared.enqueue(inputs, outputs)
    torch.cuda.synchronize()
    return outputs[0]


def check(inputs, tactic, dtype, expected=None):
    out = run(inputs, tactic)
    if expected is None:
        # The kernel's pixel coordinates are float32 (see the reference).
        expected = OP.reference(*[testing.to_numpy(t) for t in inputs], pixel_dtype=np.float32)
    result = compare(testing.to_numpy(out), expected, dtype)
    assert result.ok, f"tactic {tactic}, {dtype}, shapes {[list(t.shape) for t in inputs]}: {result}"


GPU_CASES = {
    "1x1 level": OP.case(1, [(1, 1)], 1, heads=1, channels=1, points=1),
    "1x1 levels": OP.case(2, [(1, 1), (1, 1), (1, 1)], 9, heads=2, channels=8, points=2),
    "one level": OP.case(2, [(13, 17)], 33, heads=4, channels=32, points=4),
    "P=1": OP.case(2, [(6, 7), (3, 4)], 10, heads=8, channels=32, points=1),
    "Q=1": OP.case(3, [(9, 11), (5, 6), (3, 3)], 1, heads=8, channels=32, points=4),
    "S odd, Q=S": OP.case(1, [(5, 9), (3, 5), (2, 3), (1, 2)], "S", heads=4, channels=32, points=4),
    "B=0": OP.case(0, [(3, 3)], 4, heads=2, channels=16, points=4),
    "Q=0": OP.case(2, [(3, 3)], 0, heads=2, channels=16, points=4),
    "int32 table": OP.case(2, [(4, 4), (2, 2)], 7, heads=3, channels=12, points=3, index_dtype="int32"),
    "D=3 scalar lanes": OP.case(2, [(7, 5), (4, 3)], 19, heads=5, channels=3, points=2),
    "D=12 fp16: 8-byte vectors": OP.case(1, [(6, 6)], 21, heads=2, channels=12, points=4),
    "D=64": OP.case(2, [(8, 12), (4, 6)], 40, heads=4, channels=64, points=4),
    "D=16 P=3: split points, samples not a multiple of 4": OP.case(3, [(7, 6), (3, 3)], 37, heads=3, channels=16,
                                                                   points=3),
    "D=5 split points of scalar lanes": OP.case(2, [(4, 5)], 13, heads=7, channels=5, points=4),
    "D=512 lanes loop": OP.case(1, [(5, 5), (3, 3)], 6, heads=2, channels=512, points=2),
    "32 levels": OP.case(1, [(2, 3)] * 31 + [(1, 1)], 5, heads=2, channels=8, points=2),
    "many queries": OP.case(2, [(20, 30), (10, 15), (5, 8), (3, 4)], 3001, heads=8, channels=32, points=4),
}


@pytest.mark.gpu
@pytest.mark.parametrize("tactic", TACTICS)
@pytest.mark.parametrize("dtype", SCHEMA.dtypes)
@pytest.mark.parametrize("name", list(GPU_CASES))
def test_every_tactic_matches_the_reference(name, dtype, tactic):
    testing.require_cuda()
    case = GPU_CASES[name]
    check(OP.random_inputs(case["inputs"], dtype, len(name), "cuda", case["values"]), tactic, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("tactic", TACTICS)
@pytest.mark.parametrize("dtype", SCHEMA.dtypes)
@pytest.mark.parametrize("spread", [0.5, 4.0, 1e4])  # 1e4: still finite in fp16
def test_locations_outside_the_map(dtype, tactic, spread):
    testing.require_cuda()
    shapes, values = shapes_and_values(OP.case(2, [(7, 9), (4, 5), (2, 3)], 50))
    inputs = OP.random_inputs(shapes, dtype, 3, "cuda", values)
    inputs[3] = ((inputs[3] + 0.1) / 1.2 * (1 + 2 * spread) - spread).to(inputs[3].dtype)
    check(inputs, tactic, dtype)


def shapes_and_values(case):
    return case["inputs"], case["values"]


@pytest.mark.gpu
@pytest.mark.parametrize("tactic", TACTICS)
def test_non_finite_locations_sample_nothing(tactic):
    torch = testing.require_cuda()
    case = OP.case(1, [(4, 4)], 6, heads=2, channels=16, points=2)
    inputs = OP.random_inputs(case["inputs"], "float32", 0, "cuda", case["values"])
    inputs[3][0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")], device="cuda")[:, None, None, None, None]
    out = run(inputs, tactic)
    assert torch.all(out[0, :3] == 0)
    check(inputs[:3] + [inputs[3][:, 3:].contiguous(), inputs[4][:, 3:].contiguous()], tactic, "float32")


@pytest.mark.gpu
@pytest.mark.parametrize("tactic", TACTICS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_misaligned_tensors_take_scalar_lanes(dtype, tactic):
    torch = testing.require_cuda()
    case = OP.case(2, [(6, 8), (3, 4)], 17, heads=4, channels=32, points=4)
    inputs = OP.random_inputs(case["inputs"], dtype, 5, "cuda", case["values"])
    base = torch.empty(inputs[0].numel() + 1, device="cuda", dtype=inputs[0].dtype)
    base[1:].copy_(inputs[0].flatten())
    inputs[0] = base[1:].view(inputs[0].shape)  # one element past a 16-byte boundary
    check(inputs, tactic, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("tactic", TACTICS)
def test_a_level_table_that_does_not_fit_in_value_reads_nothing_outside_it(tactic):
    """S vs spatial_shapes can only be known on the device: a level whose rows end past S (or
    start outside it) is read as empty, so that no read leaves value; the other levels count."""
    testing.require_cuda()
    case = OP.case(2, [(5, 6), (3, 4), (2, 2)], 9, heads=2, channels=16, points=3)
    inputs = OP.random_inputs(case["inputs"], "float32", 2, "cuda", case["values"])
    inputs[1][1, 0] = 5   # level 1 (start 30) is now 5x4: it would end at 50, past S = 46
    inputs[2][2] = 1000   # level 2 starts past S
    host_table, host_starts = testing.to_numpy(inputs[1]), testing.to_numpy(inputs[2])
    expected_inputs = [testing.to_numpy(t) for t in inputs]
    expected_inputs[4] = expected_inputs[4].copy()
    expected_inputs[4][:, :, :, 1:] = 0  # the two bad levels contribute nothing
    expected_inputs[1], expected_inputs[2] = host_table.copy(), host_starts.copy()
    expected_inputs[1][1:], expected_inputs[2][1:] = 1, 0  # any level that the reference can index
    check(inputs, tactic, "float32", OP.reference(*expected_inputs))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", SCHEMA.dtypes)
def test_tactics_agree_at_a_bench_shape(dtype):
    """The Deformable-DETR decoder shape (Q=300): every tactic within the tolerance of the reference."""
    testing.require_cuda()
    case = SCHEMA.bench_cases[1]
    inputs = OP.random_inputs(case["inputs"], dtype, 0, "cuda", case["values"])
    # float32 pixel coordinates, as the kernel computes them (1e-4 apart from float64's on a 150-wide level)
    expected = OP.reference(*[testing.to_numpy(t) for t in inputs], pixel_dtype=np.float32)
    for tactic in TACTICS:
        check(inputs, tactic, dtype, expected)


@pytest.mark.gpu
def test_runs_on_the_given_stream():
    torch = testing.require_cuda()
    case = SCHEMA.test_cases[2]
    inputs = OP.random_inputs(case["inputs"], "float32", 0, "cuda", case["values"])
    specs = [(str(t.dtype).replace("torch.", ""), list(t.shape)) for t in inputs]
    prepared = PreparedPlugin(testing.plugin_library().creator(NAME), {}, specs)
    out = prepared.allocate_outputs(inputs[0])
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    prepared.enqueue(inputs, out, stream=stream)
    stream.synchronize()
    expected = OP.reference(*[testing.to_numpy(t) for t in inputs])
    assert compare(testing.to_numpy(out[0]), expected, "float32").ok
