"""The benchmark's table and its statistics (the timing itself needs a GPU: `plugkit bench`)."""
import pytest

from plugkit import bench


def row(**overrides):
    values = dict(shapes=[[64, 2048], [2048]], dtype="float16", bytes_moved=2 * 64 * 2048 * 2 + 2048 * 2,
                  plugin_us=[2.0], eager_us=20.0, compile_us=2.5, vs_compile=[1.25], copy_gbps=3000.0,
                  vs_compile_ci=[(1.2, 1.31)])
    values.update(overrides)
    return bench.BenchRow(**values)


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # Round 3 is an outlier for both contenders alike: pairing keeps it from deciding the ratio.
    assert bench.paired_ratio([10, 10, 30, 10, 10], [5, 5, 15, 5, 4]) == pytest.approx(2.0)
    assert bench.paired_ratio([3, 1, 2], [1, 1, 1]) == 2.0
    with pytest.raises(ValueError):
        bench.paired_ratio([1, 2], [1])


def test_median_interval_takes_order_statistics_by_the_binomial():
    values = list(range(1, 31))[::-1]  # 30 values, any order
    assert bench.median_interval(values) == (10, 21)  # 95.7%: the 10th to the 21st
    assert bench.median_interval(range(1, 16)) == (4, 12)  # 15 values: 96.5%
    assert bench.median_interval([5, 1, 3, 2, 4]) == (1, 5)  # too few for 95%: the range
    assert bench.median_interval([7.0]) == (7.0, 7.0)
    assert bench.median_interval(range(1, 31), confidence=0.5) == (13, 18)
    with pytest.raises(ValueError):
        bench.median_interval([])


def test_paired_interval_brackets_the_paired_ratio():
    compile_us = [10.0, 10.2, 9.8, 10.1, 30.0, 9.9, 10.0, 10.3, 9.7, 10.0, 10.1, 9.9, 10.2, 10.0, 9.8]
    plugin_us = [9.9, 10.4, 9.9, 10.0, 29.0, 10.1, 10.2, 10.1, 9.9, 10.3, 10.0, 10.0, 10.5, 10.1, 10.0]
    lo, hi = bench.paired_interval(compile_us, plugin_us)
    assert lo <= bench.paired_ratio(compile_us, plugin_us) <= hi
    assert lo < 1.0 < hi  # these rounds cannot tell the two apart
    with pytest.raises(ValueError):
        bench.paired_interval([1, 2], [1])


def test_cases_default_to_the_schemas_bench_cases_in_each_dtype():
    from plugkit.ops import get_schema
    schema = get_schema("RMSNorm")
    plan = bench.cases_and_dtypes(schema)
    assert len(plan) == len(schema.bench_cases) * len(schema.dtypes) > 0
    assert plan == [(case, dtype) for case in schema.bench_cases for dtype in schema.dtypes]
    given = [{"inputs": [[8, 16], [16]]}]
    assert bench.cases_and_dtypes(schema, given, ["float16"]) == [(given[0], "float16")]


def test_row_bandwidth_and_fraction_of_copy():
    r = row(plugin_us=[2.0, 4.0], vs_compile=[1.25, 0.6])
    assert r.gbps() == pytest.approx(r.bytes_moved / 2e-6 / 1e9)
    assert r.gbps(1) == pytest.approx(r.gbps() / 2)
    assert r.copy_fraction() == pytest.approx(r.gbps() / 3000.0)


def test_table_has_a_column_per_extra_library():
    r = row(plugin_us=[2.0, 4.0], vs_compile=[1.25, 0.6], vs_compile_ci=[(1.2, 1.31), (0.58, 0.61)])
    text = bench.table([r], labels=["#2 us, vs compile, CI"])
    header, line = text.splitlines()
    assert header.endswith("#2 us, vs compile, CI") and header.startswith(bench.HEADER)
    assert line.split()[:4] == ["64x2048", "2048", "float16", "2.0"]
    assert line.split()[-7:] == ["20.0", "2.5", "1.25x", "1.20-1.31", "4.0", "0.60x", "0.58-0.61"]
    assert len(header) == len(line)  # the columns line up


def test_table_with_pdl_has_the_plugin_without_it_and_compile_with_it():
    r = row(plugin_us=[2.0, 4.0], vs_compile=[1.25, 0.6], vs_compile_ci=[(1.2, 1.31), (0.58, 0.61)],
            no_pdl_us=2.4, no_pdl_vs_compile=1.04, compile_pdl_us=2.2, vs_compile_pdl=1.1,
            vs_compile_pdl_ci=(1.05, 1.12))
    assert r.has_pdl and not row().has_pdl
    text = bench.table([r], labels=["#2 us, vs compile, CI"])
    header, line = text.splitlines()
    assert header == bench.header(["#2 us, vs compile, CI"], pdl=True)
    assert header.startswith(bench.HEADER + bench.PDL_HEADER)
    # The PDL columns follow the main ones, before the extra library's.
    assert line.split()[-11:] == ["2.5", "1.25x", "1.20-1.31", "2.4", "1.04x", "2.2", "1.10x", "1.05-1.12",
                                  "4.0", "0.60x", "0.58-0.61"]
    assert len(header) == len(line)
    assert len(bench.table([row()]).splitlines()[0]) == len(bench.HEADER)  # no PDL columns without PDL


def test_plain_launches_set_plugkit_pdl_and_restore_it(monkeypatch):
    import os

    monkeypatch.delenv("PLUGKIT_PDL", raising=False)
    with bench.plain_launches():
        assert os.environ["PLUGKIT_PDL"] == "0"
    assert "PLUGKIT_PDL" not in os.environ
    monkeypatch.setenv("PLUGKIT_PDL", "1")
    with pytest.raises(RuntimeError), bench.plain_launches():
        raise RuntimeError
    assert os.environ["PLUGKIT_PDL"] == "1"


def test_without_baselines_extra_libraries_compare_with_the_first():
    r = row(plugin_us=[2.0, 4.0], eager_us=None, compile_us=None, vs_compile=[None, None],
            vs_compile_ci=[None, None])
    line = bench.format_row(r)
    assert line.split()[-3:] == ["4.0", "0.50x", "-"]
    assert " - " in line  # no eager or compile times


def test_profile_without_a_gpu_says_so():
    from test_cli import plugkit

    result = plugkit("bench", "rms_norm", "--profile", "--shapes", "64x256;256", env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2 and "benchmarks need a CUDA device" in result.stderr


@pytest.mark.gpu
def test_profile_launches_each_contender_once_in_the_profiler_window():
    import torch

    from plugkit import testing
    from plugkit.ops import get_schema

    schema = get_schema("RMSNorm")
    libraries = [testing.plugin_library()] * 2
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        names = bench.profile_case(libraries, schema, [(64, 256), (256,)], "float16", None)
    assert names == ["plugin0", "plugin1", "eager", "compile"]
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    # Three warm-up launches of each contender, then one each in the window.
    assert sum("registerKernel" in k for k in kernels) == 2 * 4


@pytest.mark.gpu
def test_run_times_every_contender_of_a_case():
    from plugkit import testing
    from plugkit.ops import get_schema

    lines = []
    rows = bench.run([testing.plugin_library()] * 2, get_schema("RMSNorm"), ["float16"],
                     [{"inputs": [(64, 256), (256,)]}], echo=lines.append, rounds=2)
    row, = rows
    assert len(row.plugin_us) == 2 and all(t > 0 for t in row.plugin_us)
    assert row.eager_us > 0 and row.compile_us > 0 and all(r > 0 for r in row.vs_compile)
    assert all(lo <= r <= hi for r, (lo, hi) in zip(row.vs_compile, row.vs_compile_ci, strict=True))
    assert row.has_pdl == bench.pdl_supported()
    if row.has_pdl:
        assert row.no_pdl_us > 0 and row.compile_pdl_us > 0 and row.no_pdl_vs_compile > 0
        lo, hi = row.vs_compile_pdl_ci
        assert lo <= row.vs_compile_pdl <= hi
    assert lines[0].startswith("device: ")
    assert lines[-2] == bench.header(pdl=row.has_pdl) and lines[-1] == bench.format_row(row)
