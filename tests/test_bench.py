"""The benchmark's table and its statistics (the timing itself needs a GPU: `plugkit bench`)."""
import pytest

from plugkit import bench


def row(**overrides):
    values = dict(shapes=[[64, 2048], [2048]], dtype="float16", bytes_moved=2 * 64 * 2048 * 2 + 2048 * 2,
                  plugin_us=[2.0], eager_us=20.0, compile_us=2.5, vs_compile=[1.25], copy_gbps=3000.0)
    values.update(overrides)
    return bench.BenchRow(**values)


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # Round 3 is an outlier for both contenders alike: pairing keeps it from deciding the ratio.
    assert bench.paired_ratio([10, 10, 30, 10, 10], [5, 5, 15, 5, 4]) == pytest.approx(2.0)
    assert bench.paired_ratio([3, 1, 2], [1, 1, 1]) == 2.0
    with pytest.raises(ValueError):
        bench.paired_ratio([1, 2], [1])


def test_row_bandwidth_and_fraction_of_copy():
    r = row(plugin_us=[2.0, 4.0], vs_compile=[1.25, 0.6])
    assert r.gbps() == pytest.approx(r.bytes_moved / 2e-6 / 1e9)
    assert r.gbps(1) == pytest.approx(r.gbps() / 2)
    assert r.copy_fraction() == pytest.approx(r.gbps() / 3000.0)


def test_table_has_a_column_per_extra_library():
    r = row(plugin_us=[2.0, 4.0], vs_compile=[1.25, 0.6])
    text = bench.table([r], labels=["#2 us, vs compile"])
    header, line = text.splitlines()
    assert header.endswith("#2 us, vs compile") and header.startswith(bench.HEADER)
    assert line.split()[:4] == ["64x2048", "2048", "float16", "2.0"]
    assert line.split()[-5:] == ["20.0", "2.5", "1.25x", "4.0", "0.60x"]


def test_without_baselines_extra_libraries_compare_with_the_first():
    r = row(plugin_us=[2.0, 4.0], eager_us=None, compile_us=None, vs_compile=[None, None])
    line = bench.format_row(r)
    assert line.split()[-2:] == ["4.0", "0.50x"]
    assert " - " in line  # no eager or compile times
