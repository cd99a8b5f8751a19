"""Tactics through the plugin host: the SDK base's getNbTactics/getValidTactics/setTactic/
getTimingCacheID, driven in TensorRT's order, on the test-only TacticScale plugin
(tests/cmake/sdk_plugins), whose second output holds the tactic its enqueue ran."""
import subprocess
import sys

import pytest

from plugkit import bench
from plugkit.host import PluginError, PreparedPlugin, Tactic, run

from sdk_test_library import BUILD, SOURCE, library


@pytest.fixture(scope="module")
def creator():
    return library().creator("TacticScale")


BUILD_PHASE = [
    "createPlugin(kBUILD)", "getNbOutputs", "getOutputDataTypes", "clone", "getNbOutputs", "getOutputShapes",
    "clone", "supportsFormatCombination", "supportsFormatCombination", "supportsFormatCombination",
    "getFormatCombinationLimit", "configurePlugin", "getWorkspaceSize", "getNbTactics", "getValidTactics",
    "getTimingCacheID", "getFieldsToSerialize",
]
RUNTIME_PHASE = ["createPlugin(kRUNTIME)", "attachToContext", "setTactic", "onShapeChange"]


def test_tactics_come_from_the_plugins_hook_with_their_names(creator):
    plugin = creator.create({"variants": 3})
    assert plugin.valid_tactics() == [1, 2, 3]
    assert plugin.tactics() == [Tactic(1, "one-per-thread"), Tactic(2, "grid-stride"), Tactic(3, "grid-stride")]
    assert plugin.trace[:3] == ["createPlugin(kBUILD)", "getNbTactics", "getValidTactics"]


def test_tactics_may_depend_on_attributes(creator):
    assert creator.create({"variants": 1}).valid_tactics() == [1]
    none = creator.create({"variants": 0})
    assert none.valid_tactics() == [] and none.trace == ["createPlugin(kBUILD)", "getNbTactics"]


def test_host_drives_tactics_in_tensorrts_order(creator):
    prepared = PreparedPlugin(creator, {"variants": 3}, [("float16", [4, 8])], tactic=2)
    assert prepared.trace == BUILD_PHASE + RUNTIME_PHASE
    assert prepared.tactics == [1, 2, 3] and prepared.tactic == 2
    assert prepared.output_dtypes == ["float16", "int32"] and prepared.output_shapes == [[4, 8], [1]]


def test_without_a_choice_the_host_sets_the_first_tactic(creator):
    assert PreparedPlugin(creator, {"variants": 3}, [("float32", [2])]).tactic == 1
    # No custom tactics: TensorRT calls setTactic(0), its default tactic.
    prepared = PreparedPlugin(creator, {"variants": 0}, [("float32", [2])])
    assert prepared.tactic == 0 and "setTactic" in prepared.plugin.trace
    # Nothing to time, so no timing-cache key: the builder does not ask for one either.
    assert prepared.timing_cache_id is None and "getTimingCacheID" not in prepared.trace


def test_set_tactic_refuses_a_value_the_plugin_did_not_declare(creator):
    plugin = creator.create({"variants": 3}, phase="runtime")
    plugin.set_tactic(3)
    plugin.set_tactic(0)  # TensorRT's default: always accepted
    with pytest.raises(PluginError, match=r"tactic 4 is not one of this plugin's tactics \(1, 2, 3\)"):
        plugin.set_tactic(4)
    with pytest.raises(PluginError, match="tactic -1 is not one"):
        plugin.set_tactic(-1)
    with pytest.raises(PluginError, match=r"tactic 1 is not one of this plugin's tactics \(none; only the default 0\)"):
        creator.create({"variants": 0}).set_tactic(1)
    with pytest.raises(PluginError, match="setTactic"):
        PreparedPlugin(creator, {"variants": 2}, [("float32", [2])], tactic=3)


def test_tactic_values_must_be_positive():
    plugin = library().creator("SizeTensorMisuse").create({"mistake": "zero_tactic"})
    with pytest.raises(PluginError, match=r"tactics\(\) must return unique positive values; got 2, 0"):
        plugin.valid_tactics()


def test_serialization_round_trip_with_a_chosen_tactic(creator):
    build = creator.create({"factor": 0.5, "variants": 3})
    build.set_tactic(3)
    fields = build.serialize()
    # The engine stores the chosen tactic itself; the fields carry the attributes only.
    assert {f.name: f.scalar for f in fields} == {"factor": 0.5, "variants": 3}
    runtime = creator.create(phase="runtime", fields=fields).attach_to_context()
    assert runtime.valid_tactics() == [1, 2, 3]
    runtime.set_tactic(3)
    assert {f.name: f.scalar for f in runtime.serialize()} == {"factor": 0.5, "variants": 3}
    assert runtime.clone().valid_tactics() == [1, 2, 3]


def test_timing_cache_id_separates_attribute_values(creator):
    a = creator.create({"factor": 2.0, "variants": 2}).timing_cache_id()
    assert a.startswith("sdktest::TacticScale_v1")
    assert creator.create({"factor": 2.0, "variants": 2}).timing_cache_id() == a
    assert creator.create({"factor": 3.0, "variants": 2}).timing_cache_id() != a
    assert creator.create({"factor": 2.0, "variants": 3}).timing_cache_id() != a


def test_bench_tactics_and_overhead_are_separate_runs():
    result = subprocess.run([sys.executable, "-m", "plugkit", "bench", "tactic_scale", "--tactics", "--overhead",
                             "--plugins-dir", str(SOURCE / "ops"), "--library", str(BUILD / "libsdk_test_plugins.so")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--tactics and --overhead are separate runs" in result.stderr


def test_tactic_rows_name_the_fastest_and_its_lead():
    row = bench.TacticRow([[64, 128]], "float16", [Tactic(1, "one-per-thread"), Tactic(2, "grid-stride")],
                          {1: 3.0, 2: 2.0})
    assert row.best == Tactic(2, "grid-stride") and row.margin == pytest.approx(1.5)
    line = bench.format_tactic_row(row)
    assert line.startswith("64x128") and "1:one-per-thread 3.0  2:grid-stride 2.0" in line
    assert line.endswith("TensorRT picks 2 (grid-stride), 1.50x ahead of the next")
    single = bench.TacticRow([[8]], "float32", [Tactic(1, "only")], {1: 1.0})
    assert single.margin is None and bench.format_tactic_row(single).endswith("the only tactic")


def test_overhead_rows_say_whether_enqueue_meets_the_goal():
    fast = bench.OverheadRow([[1, 4096], [4096]], "float16", [2.0, 3.0, 4.0], [20.0, 21.0, 30.0])
    assert fast.summary() == {"enqueue_median": 3.0, "enqueue_p90": 4.0, "python_median": 21.0, "python_p90": 30.0}
    assert bench.format_overhead_row(fast).split() == ["1x4096", "4096", "float16", "3.00", "4.00", "21.00",
                                                       "30.00", "ok"]
    slow = bench.OverheadRow([[1, 4096], [4096]], "float16", [6.0], [30.0])
    assert bench.format_overhead_row(slow).endswith("over")


def test_overhead_rows_say_whether_the_torch_op_meets_its_goal():
    row = bench.OverheadRow([[8, 4096], [4096]], "float16", [3.0], [20.0], [9.0, 11.0, 12.0])
    assert row.summary()["torch_op_above_enqueue"] == pytest.approx(8.0)
    assert bench.format_overhead_row(row).split()[-5:] == ["ok", "11.00", "12.00", "8.00", "ok"]
    slow = bench.OverheadRow([[8, 4096], [4096]], "float16", [3.0], [20.0], [14.0])
    assert bench.format_overhead_row(slow).split()[-2:] == ["11.00", "over"]


# ------------------------------------------------------------------ GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_each_tactic_computes_the_op_and_enqueue_sees_it(creator, dtype):
    import torch

    x = torch.randn(37, 129, device="cuda").to(getattr(torch, dtype))
    for tactic in [1, 2, 3]:
        y, used = run(creator, [x], {"factor": 3.0, "variants": 3}, tactic=tactic)
        torch.testing.assert_close(y, (x.float() * 3.0).to(x.dtype))
        assert used.item() == tactic
    _, used = run(creator, [x], {"variants": 3})
    assert used.item() == 1
    _, used = run(creator, [x], {"variants": 0})
    assert used.item() == 0


@pytest.mark.gpu
def test_clone_and_attach_keep_the_chosen_tactic(creator):
    import torch

    prepared = PreparedPlugin(creator, {"variants": 3}, [("float32", [8])], tactic=3)
    x = torch.ones(8, device="cuda")
    for plugin in (prepared.plugin.clone(), prepared.plugin.attach_to_context()):
        y, used = prepared.allocate_outputs(x)
        plugin.enqueue([x], [y, used])
        assert used.item() == 3


@pytest.mark.gpu
def test_time_tactics_runs_each_on_the_build_plugin(creator):
    import torch

    prepared = PreparedPlugin(creator, {"variants": 3}, [("float32", [1024])])
    x = torch.randn(1024, device="cuda")
    y, used = prepared.allocate_outputs(x)
    seen = {}

    def timer(launches):
        for tactic, launch in launches.items():
            launch()
            seen[tactic] = used.item()
        return {tactic: float(tactic) for tactic in launches}

    assert prepared.time_tactics([([x], [y, used])], timer) == {1: 1.0, 2: 2.0, 3: 3.0}
    assert seen == {1: 1, 2: 2, 3: 3}
    timing = prepared.build_plugin.trace[len(BUILD_PHASE):]
    assert timing == ["setTactic", "onShapeChange"] * 3 + ["setTactic", "enqueue"] * 3


@pytest.mark.gpu
def test_bench_tactics_prints_every_tactic_and_the_pick():
    result = subprocess.run([sys.executable, "-m", "plugkit", "bench", "tactic_scale", "--tactics",
                             "--plugins-dir", str(SOURCE / "ops"), "--library", str(BUILD / "libsdk_test_plugins.so"),
                             "--shapes", "256x256", "--dtype", "float16", "--rounds", "3"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    row = result.stdout.strip().splitlines()[-1]
    assert "1:one-per-thread" in row and "2:grid-stride" in row and "TensorRT picks" in row
