"""CTCGreedyDecoder: fields, the data-dependent output shape, refusals and the lifecycle on any
machine; the references against each other on the CPU; the plugin against the reference on a GPU."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugkit import testing
from plugkit.host import Field, PluginError, PreparedPlugin
from plugkit.ops import op_module
from plugkit.tolerances import compare

OP = op_module("CTCGreedyDecoder")
SCHEMA = OP.schema
REPO = Path(__file__).resolve().parents[1]
OUTPUT_DTYPES = ["int32", "float32", "int32", "int32"]


@pytest.fixture(scope="module")
def creator():
    return testing.plugin_library().creator("CTCGreedyDecoder", "1", "plugkit")


def plugkit_cli(*args):
    return subprocess.run([sys.executable, "-m", "plugkit", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)


# ------------------------------------------------------------------ fields and the CLI

def test_list_shows_the_fields():
    result = plugkit_cli("list", testing.built_library())
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.strip().startswith("CTCGreedyDecoder"))
    assert "blank:INT32, merge_repeated:INT32" in line and "plugkit" in line


def test_check_passes():
    result = plugkit_cli("check", testing.built_library())
    assert result.returncode == 0, result.stdout + result.stderr


def test_fields_equal_the_schema(creator):
    assert testing.check_fields(testing.plugin_library(), SCHEMA) == []
    assert {f.name: f.scalar for f in creator.create({}).serialize()} == {"blank": 0, "merge_repeated": 1}


def test_serialize_then_recreate_round_trips(creator):
    fields = creator.create({"blank": 5, "merge_repeated": 0}).serialize()
    runtime = creator.create(fields=fields, phase="runtime")
    assert runtime.serialize() == fields and runtime.attach_to_context().serialize() == fields
    assert {f.name: f.scalar for f in fields} == {"blank": 5, "merge_repeated": 0}


@pytest.mark.parametrize("fields, message", [
    ([Field("blank", -1, "INT32")], "blank must be a class index >= 0; got -1"),
    ([Field("merge_repeated", 2, "INT32")], "merge_repeated must be 0 or 1; got 2"),
    ([Field("blank", 0.5, "FLOAT32")], "field 'blank' is INT32; got FLOAT32"),
])
def test_bad_fields_are_refused(creator, fields, message):
    with pytest.raises(PluginError, match="CTCGreedyDecoder") as info:
        creator.create(fields=fields)
    assert message in str(info.value)


# ------------------------------------------------------------------ shapes and dtypes

@pytest.mark.parametrize("inputs", [[[8, 112, 97]], [[8, 112, 97], [8]]])
def test_output_shapes_have_a_data_dependent_dim_bounded_by_t(creator, inputs):
    names = [t.name for t in SCHEMA.outputs]
    labels, scores, lengths, longest = creator.create({}).output_shapes(inputs, output_names=names)
    assert labels[0] == 8 and scores == labels and lengths == [8] and longest == []
    m = labels[1]
    assert str(m) == "M<=112" and m.size_output == 3 and m.upper == 112 and m.opt == 56


def test_symbolic_shapes_bound_m_by_the_symbol_t(creator):
    labels, _, lengths, _ = creator.create({}).output_shapes([["N", "T", 6625]])
    assert labels[0] == "N" and lengths == ["N"] and labels[1].upper == "T" and str(labels[1]) == "size3<=T"


def test_output_dtypes_and_format_table(creator):
    plugin = creator.create({})
    for dtype in SCHEMA.dtypes:
        assert plugin.output_dtypes([dtype]) == OUTPUT_DTYPES
        assert plugin.output_dtypes([dtype, "int32"]) == OUTPUT_DTYPES
    floats = {"float32", "float16", "bfloat16"}
    assert {c[0] for c in plugin.format_table(1)} == floats
    assert set(plugin.format_table(1)) == {(d, *OUTPUT_DTYPES) for d in floats}
    assert set(plugin.format_table(2)) == {(d, "int32", *OUTPUT_DTYPES) for d in floats}


@pytest.mark.parametrize("dtype", ["int64", "float32", "float16"])
def test_lengths_of_another_dtype_are_refused(creator, dtype):
    plugin = creator.create({})
    assert plugin.supports(1, ["float32", "int32", *OUTPUT_DTYPES], nb_inputs=2)
    assert not plugin.supports(1, ["float32", dtype, *OUTPUT_DTYPES], nb_inputs=2)
    with pytest.raises(PluginError, match=f"does not support dtype {dtype} at position 1"):
        PreparedPlugin(creator, {}, [("float32", [2, 10, 5]), (dtype, [2])])


@pytest.mark.parametrize("inputs", [[("float16", [4, 30, 97])], [("float16", [4, 30, 97]), ("int32", [4])]])
def test_lifecycle_with_and_without_lengths(creator, inputs):
    prepared = PreparedPlugin(creator, {"blank": 96}, inputs)
    assert prepared.output_shapes == [[4, 30], [4, 30], [4], []]  # allocated for the upper bound M = T
    assert prepared.size_outputs == [3] and prepared.output_dims[0] == [4, -1]
    assert prepared.trace.index("configurePlugin") < prepared.trace.index("onShapeChange")


@pytest.mark.parametrize("attrs, shapes, message", [
    ({}, [[2, 10]], "logits must have rank 3 [N, T, C]; got rank 2"),
    ({}, [[2, 10, 5, 1]], "logits must have rank 3 [N, T, C]; got rank 4"),
    ({"blank": 5}, [[2, 10, 5]], "blank 5 is outside [0, C) for logits with C = 5 classes"),
    ({}, [[2, 10, 5], [3]], "lengths must have shape [N] = [2]; got [3]"),
    ({}, [[2, 10, 5], [2, 1]], "lengths must have shape [N]; got rank 2"),
])
def test_shapes_the_plugin_refuses(creator, attrs, shapes, message):
    with pytest.raises(PluginError) as info:
        creator.create(attrs, layer_name="decode").output_shapes(shapes)
    assert message in str(info.value) and "CTCGreedyDecoder 'decode'" in str(info.value)


def test_blank_is_checked_against_c_when_c_is_known_only_at_configure(creator):
    plugin = creator.create({"blank": 97})
    plugin.output_shapes([["N", "T", "C"]])  # C unknown: nothing to check yet
    outputs = [("int32", [2, 10]), ("float32", [2, 10]), ("int32", [2]), ("int32", [])]
    with pytest.raises(PluginError, match=r"blank 97 is outside \[0, C\) for logits with C = 97"):
        plugin.configure([("float16", [2, 10, 97])], outputs)


def test_three_inputs_are_refused(creator):
    with pytest.raises(PluginError, match="expects 1 to 2 input"):
        creator.create({}).output_shapes([[2, 10, 5], [2], [2]])


def test_workspace_holds_four_values_a_frame(creator):
    plugin = creator.create({})
    outputs = [("int32", [64, 112]), ("float32", [64, 112]), ("int32", [64]), ("int32", [])]
    assert plugin.workspace_size([("float16", [64, 112, 6625])], outputs) >= 4 * 4 * 64 * 112


# ------------------------------------------------------------------ the references

def test_reference_on_a_worked_example():
    # frames' argmax: a a _ a b b _ _ c   (blank = 0 = '_')
    classes = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    probabilities = [0.5, 0.9, 0.8, 0.6, 0.7, 0.4, 0.9, 0.9, 0.3]
    c = 4
    logits = np.full((1, len(classes), c), -50.0)
    for f, (k, p) in enumerate(zip(classes, probabilities)):
        # the other c - 1 classes share 1 - p: softmax at k is p
        logits[0, f, :] = np.log((1 - p) / (c - 1))
        logits[0, f, k] = np.log(p)
    labels, scores, lengths, m = OP.reference(logits)
    assert labels.tolist() == [[1, 1, 2, 3]] and lengths.tolist() == [4] and int(m) == 4
    np.testing.assert_allclose(scores, [[0.9, 0.6, 0.7, 0.3]], rtol=1e-6)
    labels, scores, lengths, m = OP.reference(logits, merge_repeated=0)
    assert labels.tolist() == [[1, 1, 1, 2, 2, 3]] and int(m) == 6
    np.testing.assert_allclose(scores, [[0.5, 0.9, 0.6, 0.7, 0.4, 0.3]], rtol=1e-6)
    labels, _, lengths, m = OP.reference(logits, np.array([5], np.int32), blank=2)
    assert labels.tolist() == [[1, 0, 1]] and lengths.tolist() == [3]


def test_reference_pads_and_lowest_index_wins_ties():
    logits = np.zeros((2, 3, 3))
    logits[0, :, 2] = 1.0  # sample 0: every frame class 2
    # sample 1: all classes tie in every frame: class 0 (blank) wins, nothing is decoded
    labels, scores, lengths, m = OP.reference(logits)
    assert labels.tolist() == [[2], [-1]] and scores[1, 0] == 0 and lengths.tolist() == [1, 0] and int(m) == 1


def integer_logits(shape, seed, low=-2, high=3):
    """Logits with many exact ties (small integers), the case where 'lowest index wins' shows."""
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(np.float32)


@pytest.mark.parametrize("merge_repeated", [0, 1])
@pytest.mark.parametrize("blank", [0, 2])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 20, 4), (6, 57, 5), (2, 300, 3)])
def test_torch_reference_equals_the_reference(shape, with_lengths, blank, merge_repeated):
    torch = pytest.importorskip("torch")
    logits = integer_logits(shape, seed=sum(shape))
    lengths = np.random.default_rng(1).integers(-1, shape[1] + 2, size=shape[0]).astype(np.int32) \
        if with_lengths else None
    expected = OP.reference(logits, lengths, blank=blank, merge_repeated=merge_repeated)
    got = OP.torch_reference(torch.from_numpy(logits), None if lengths is None else torch.from_numpy(lengths),
                             blank=blank, merge_repeated=merge_repeated)
    m = int(got[3])
    assert m == int(expected[3])
    assert np.array_equal(got[0][:, :m].numpy(), expected[0]) and np.array_equal(got[2].numpy(), expected[2])
    assert compare(got[1][:, :m].numpy(), expected[1], "float32").ok
    assert (got[0][:, m:] == -1).all() and (got[1][:, m:] == 0).all()


def test_reference_refuses_what_the_plugin_refuses():
    with pytest.raises(ValueError, match="rank 3"):
        OP.reference(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"blank 3 is outside \[0, C\)"):
        OP.reference(np.zeros((1, 2, 3)), blank=3)
    with pytest.raises(ValueError, match=r"lengths must have shape \[N\]"):
        OP.reference(np.zeros((2, 2, 3)), np.zeros(3, np.int32))


def test_torch_op_returns_int_labels_and_float32_scores():
    torch = pytest.importorskip("torch")
    from plugkit.torch_ops import torch_op

    decode = torch_op("CTCGreedyDecoder")
    logits = torch.from_numpy(integer_logits((3, 12, 5), seed=3)).half()
    labels, scores, lengths, m = decode(logits)
    expected = OP.reference(logits.float().numpy())
    assert labels.dtype == torch.int32 and scores.dtype == torch.float32 and m.dtype == torch.int32
    assert np.array_equal(labels.numpy(), expected[0]) and np.array_equal(lengths.numpy(), expected[2])
    with_lengths = decode(logits, torch.tensor([12, 3, 0], dtype=torch.int32), blank=1)
    assert with_lengths[2].tolist() == OP.reference(logits.float().numpy(), np.array([12, 3, 0]), blank=1)[2].tolist()


# ------------------------------------------------------------------ GPU

def run_decoder(inputs, attrs=None, prepared=None):
    """The plugin through the whole lifecycle; outputs allocated by the upper bound and poisoned,
    then cut to the real [N, M] the way TensorRT hands a data-dependent output on (its first
    N * M elements)."""
    import torch

    if prepared is None:
        creator = testing.plugin_library().creator("CTCGreedyDecoder", "1", "plugkit")
        prepared = PreparedPlugin(creator, attrs, [(str(t.dtype).replace("torch.", ""), list(t.shape)) for t in inputs])
    outputs = prepared.allocate_outputs(inputs[0])
    for o, poison in zip(outputs, (12345, float("nan"), -7, -7)):
        o.fill_(poison)
    prepared.enqueue(inputs, outputs)
    torch.cuda.synchronize()
    labels, scores, lengths, m = prepared.trim(outputs)
    assert labels.shape == (inputs[0].shape[0], int(m.item()))
    assert labels.numel() == 0 or labels.data_ptr() == outputs[0].data_ptr()  # torch gives an empty tensor no address
    return labels, scores, lengths, m


def check(inputs, attrs=None, prepared=None):
    got = run_decoder(inputs, attrs, prepared)
    expected = OP.reference(*[testing.to_numpy(t) for t in inputs], **(attrs or {}))
    where = f"shape {list(inputs[0].shape)} {inputs[0].dtype} attrs {attrs}"
    assert int(got[3].item()) == int(expected[3]), where
    assert np.array_equal(got[2].cpu().numpy(), expected[2]), where
    assert np.array_equal(got[0].cpu().numpy(), expected[0]), where
    result = compare(got[1].cpu().numpy(), expected[1], "float32")
    assert result.ok, f"{where}: scores {result}"
    return got


def logits_on_gpu(shape, dtype, seed, ties=False):
    import torch

    if ties:
        x = torch.from_numpy(integer_logits(shape, seed))
    else:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(shape, generator=gen) * 3  # peaked enough that labels are kept and runs form
    return x.to(device="cuda", dtype=getattr(torch, dtype))


GPU_SHAPES = [(1, 1, 2), (1, 50, 97), (7, 33, 5), (16, 112, 97), (64, 112, 6625), (3, 1024, 6625),
              (8, 1024, 97), (64, 26, 6625), (5, 70, 1000), (2, 40, 65)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", GPU_SHAPES, ids=str)
def test_matches_reference(shape, dtype):
    testing.require_cuda()
    check([logits_on_gpu(shape, dtype, seed=sum(shape))])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("attrs", [{"merge_repeated": 0}, {"blank": 3}, {"blank": 4, "merge_repeated": 0}])
@pytest.mark.parametrize("shape", [(4, 200, 5), (2, 64, 6625), (9, 31, 97)], ids=str)
def test_ties_and_attributes(shape, dtype, attrs):
    testing.require_cuda()
    check([logits_on_gpu(shape, dtype, seed=1, ties=True)], attrs)
    check([logits_on_gpu(shape, dtype, seed=2)], attrs)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shape", [(1, 17, 5), (64, 112, 6625), (13, 1024, 97)], ids=str)
def test_lengths_input(shape, dtype):
    torch = testing.require_cuda()
    n, t, _ = shape
    lengths = torch.randint(-2, t + 3, (n,), generator=torch.Generator().manual_seed(n), dtype=torch.int32)
    lengths[0] = t
    check([logits_on_gpu(shape, dtype, seed=5), lengths.cuda()])
    check([logits_on_gpu(shape, dtype, seed=5), torch.zeros(n, dtype=torch.int32, device="cuda")])  # M = 0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, offset", [("float16", 1), ("float16", 3), ("float32", 1), ("bfloat16", 5)])
@pytest.mark.parametrize("c", [97, 6625, 8])
def test_logits_not_on_a_16_byte_boundary(dtype, offset, c):
    torch = testing.require_cuda()
    shape = (5, 30, c)
    base = logits_on_gpu((5 * 30 * c + offset,), dtype, seed=c)
    check([base[offset:].view(shape)])


@pytest.mark.gpu
def test_data_dependent_outputs_come_back_trimmed_from_host_run():
    torch = testing.require_cuda()
    from plugkit.host import run

    logits = logits_on_gpu((6, 80, 97), "float16", seed=9)
    labels, scores, lengths, m = run(testing.plugin_library().creator("CTCGreedyDecoder"), [logits])
    expected = OP.reference(testing.to_numpy(logits))
    assert tuple(labels.shape) == tuple(scores.shape) == expected[0].shape
    assert np.array_equal(labels.cpu().numpy(), expected[0]) and int(m.item()) == int(expected[3])


@pytest.mark.gpu
@pytest.mark.parametrize("handle", [False, True])
def test_host_run_on_a_busy_stream_waits_for_it_before_reading_m(handle):
    # The size output is read on the host: after the work on the given stream, not only on
    # torch's current one (a sleep queued first keeps the decode from having finished).
    torch = testing.require_cuda()
    from plugkit.host import run

    logits = logits_on_gpu((6, 80, 97), "float16", seed=4)
    expected = OP.reference(testing.to_numpy(logits))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU clock
    labels, _, _, m = run(testing.plugin_library().creator("CTCGreedyDecoder"), [logits],
                          stream=stream.cuda_stream if handle else stream)
    assert int(m.item()) == int(expected[3])
    assert np.array_equal(labels.cpu().numpy(), expected[0])


@pytest.mark.gpu
def test_launches_in_a_row_each_find_their_own_m():
    # M is zeroed by the first kernel of every decode: a long decode followed by a short one on the
    # same plugin and buffers must report the short one's M (not the maximum of both).
    torch = testing.require_cuda()
    creator = testing.plugin_library().creator("CTCGreedyDecoder", "1", "plugkit")
    prepared = PreparedPlugin(creator, {}, [("float16", [8, 200, 97])])
    busy = logits_on_gpu((8, 200, 97), "float16", seed=1)
    quiet = torch.zeros_like(busy)
    quiet[:, :, 0] = 1  # blank everywhere but one frame
    quiet[3, 7, 0], quiet[3, 7, 9] = 0, 1
    for logits in (busy, quiet, busy):
        check([logits], prepared=prepared)


@pytest.mark.gpu
def test_empty_batch_and_empty_sequences():
    torch = testing.require_cuda()
    got = run_decoder([torch.zeros((0, 10, 5), device="cuda")])
    assert int(got[3].item()) == 0 and got[0].numel() == 0
    got = run_decoder([torch.zeros((3, 0, 5), device="cuda")])
    assert int(got[3].item()) == 0 and got[2].tolist() == [0, 0, 0]


# ------------------------------------------------------------------ TensorRT

@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("with_lengths", [False, True])
def test_engine_decodes_like_the_reference(with_lengths):
    """A TensorRT network of the plugin alone: M comes back through an output allocator, the way
    TensorRT hands out data-dependent outputs."""
    torch = testing.require_cuda()
    from plugkit import engine

    trt = engine.import_tensorrt()
    engine.load_plugins_into_tensorrt(trt, [testing.built_library()])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    logits = network.add_input("logits", trt.float16, (-1, -1, 97))
    inputs = [logits]
    if with_lengths:
        inputs.append(network.add_input("lengths", trt.int32, (-1,)))
    creator = trt.get_plugin_registry().get_creator("CTCGreedyDecoder", "1", "plugkit")
    fields = trt.PluginFieldCollection([
        trt.PluginField("blank", np.array([0], np.int32), trt.PluginFieldType.INT32),
        trt.PluginField("merge_repeated", np.array([1], np.int32), trt.PluginFieldType.INT32)])
    plugin = creator.create_plugin("decode", fields, trt.TensorRTPhase.BUILD)
    layer = network.add_plugin_v3(inputs, [], plugin)
    names = ["labels", "scores", "decoded_lengths"]  # M, the size tensor, stays inside the network
    for i, name in enumerate(names):
        layer.get_output(i).name = name
        network.mark_output(layer.get_output(i))
    profile = builder.create_optimization_profile()
    profile.set_shape("logits", (1, 1, 97), (8, 64, 97), (16, 256, 97))
    if with_lengths:
        profile.set_shape("lengths", (1,), (8,), (16,))
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "the engine build failed (see TensorRT's log above)"
    runtime = trt.Runtime(logger)
    context = runtime.deserialize_cuda_engine(serialized).create_execution_context()

    class Allocator(trt.IOutputAllocator):
        def __init__(self):
            super().__init__()
            self.buffers, self.shapes = {}, {}

        def reallocate_output(self, name, memory, size, alignment):
            self.buffers[name] = torch.empty(max(size, 1), dtype=torch.uint8, device="cuda")
            return self.buffers[name].data_ptr()

        def reallocate_output_async(self, name, memory, size, alignment, stream):  # TensorRT >= 10
            return self.reallocate_output(name, memory, size, alignment)

        def notify_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

    x = logits_on_gpu((6, 100, 97), "float16", seed=4)
    lengths = torch.tensor([100, 50, 0, 7, 99, 101], dtype=torch.int32, device="cuda")
    context.set_input_shape("logits", tuple(x.shape))
    context.set_tensor_address("logits", x.data_ptr())
    if with_lengths:
        context.set_input_shape("lengths", tuple(lengths.shape))
        context.set_tensor_address("lengths", lengths.data_ptr())
    allocator = Allocator()
    for name in names:
        context.set_output_allocator(name, allocator)
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    dtypes = {"labels": torch.int32, "scores": torch.float32, "decoded_lengths": torch.int32}
    got = {}
    for name in names:
        shape = allocator.shapes[name]
        count = int(np.prod(shape)) if shape else 1
        got[name] = allocator.buffers[name].view(dtypes[name])[:count].reshape(shape).cpu().numpy()
    expected = OP.reference(testing.to_numpy(x), lengths.cpu().numpy() if with_lengths else None)
    assert allocator.shapes["labels"] == expected[0].shape
    assert np.array_equal(got["labels"], expected[0]) and np.array_equal(got["decoded_lengths"], expected[2])
    assert compare(got["scores"], expected[1], "float32").ok and allocator.shapes["labels"][1] == int(expected[3])
