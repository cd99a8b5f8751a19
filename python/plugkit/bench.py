"""Benchmarks of a plugin's kernels against PyTorch, on one GPU, in one run.

For each shape and dtype: the plugin's enqueue (through the host), the op in
PyTorch eager and under ``torch.compile`` (the schema's ``torch_reference``),
each captured in a CUDA graph of several launches so that launch overhead stays
out, timed with CUDA events (median of repeats). Bandwidth counts each input
read once and each output written once, and is set against the device's
device-to-device copy bandwidth, measured in the same run.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Callable, Mapping, Sequence

from .host import PluginLibrary, PreparedPlugin
from .schema import OpSchema


@dataclasses.dataclass
class BenchRow:
    shapes: list[list[int]]
    dtype: str
    bytes_moved: int
    plugin_us: float
    eager_us: float | None
    compile_us: float | None
    copy_gbps: float

    @property
    def gbps(self) -> float:
        return self.bytes_moved / (self.plugin_us * 1e-6) / 1e9

    @property
    def copy_fraction(self) -> float:
        return self.gbps / self.copy_gbps


def time_graph(fn: Callable[[], Any], launches: int = 20, repeats: int = 15) -> float:
    """Median microseconds of one fn() call: fn is captured ``launches`` times in a CUDA
    graph, which is replayed ``repeats`` times between CUDA events."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up: module load, autotuning, allocator
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(launches):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / launches)
    return statistics.median(times)


def copy_bandwidth(nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written: the
    faster of cudaMemcpyAsync and an elementwise copy kernel over ``nbytes``."""
    import torch

    src = torch.rand(nbytes // 4, device="cuda")
    dst = torch.empty_like(src)
    memcpy_us = time_graph(lambda: dst.copy_(src), launches=5, repeats=10)
    kernel_us = time_graph(lambda: torch.mul(src, 1.0, out=dst), launches=5, repeats=10)
    return 2 * nbytes / (min(memcpy_us, kernel_us) * 1e-6) / 1e9


def bench_case(library: PluginLibrary, schema: OpSchema, shapes: Sequence[Sequence[int]], dtype: str,
               attrs: Mapping[str, Any] | None, copy_gbps: float, baselines: bool = True) -> BenchRow:
    import torch

    from .testing import random_inputs

    attrs = schema.resolve_attrs(attrs)
    inputs = random_inputs(schema, shapes, dtype, seed=0)
    creator = library.creator(schema.name, schema.version, schema.namespace)
    prepared = PreparedPlugin(creator, attrs, [(dtype, list(s)) for s in shapes])
    outputs = prepared.allocate_outputs(inputs[0])
    plugin_us = time_graph(lambda: prepared.enqueue(inputs, outputs))
    nbytes = sum(t.numel() * t.element_size() for t in list(inputs) + list(outputs))

    eager_us = compile_us = None
    if baselines and schema.torch_reference is not None:
        eager = lambda: schema.torch_reference(*inputs, **attrs)  # noqa: E731
        eager_us = time_graph(eager)
        torch._dynamo.reset()  # a fresh compile per case: no recompile limit, no stale guards
        compiled_fn = torch.compile(schema.torch_reference, dynamic=False)
        compile_us = time_graph(lambda: compiled_fn(*inputs, **attrs))
    return BenchRow([list(s) for s in shapes], dtype, nbytes, plugin_us, eager_us, compile_us, copy_gbps)


def run(library: PluginLibrary, schema: OpSchema, dtypes: Sequence[str] | None = None,
        cases: Sequence[Mapping[str, Any]] | None = None, baselines: bool = True,
        echo: Callable[[str], None] | None = None) -> list[BenchRow]:
    import torch

    if not torch.cuda.is_available():
        from .errors import PlugkitError
        raise PlugkitError("benchmarks need a CUDA device; none is visible")
    cases = list(cases or schema.bench_cases or schema.test_cases)
    copy_gbps = copy_bandwidth()
    if echo:
        echo(f"device: {torch.cuda.get_device_name()}  copy bandwidth: {copy_gbps:.0f} GB/s (read + write)")
    rows = []
    for case in cases:
        for dtype in dtypes or schema.dtypes:
            row = bench_case(library, schema, case["inputs"], dtype, case.get("attrs"), copy_gbps, baselines)
            rows.append(row)
            if echo:
                echo(format_row(row))
    return rows


HEADER = (f"{'shapes':<28} {'dtype':<9} {'plugin us':>10} {'GB/s':>7} {'% copy':>7} "
          f"{'eager us':>9} {'compile us':>10} {'vs compile':>10}")


def format_row(row: BenchRow) -> str:
    def us(v):
        return f"{v:.1f}" if v is not None else "-"

    speedup = f"{row.compile_us / row.plugin_us:.2f}x" if row.compile_us else "-"
    shapes = " ".join("x".join(map(str, s)) for s in row.shapes)
    return (f"{shapes:<28} {row.dtype:<9} {row.plugin_us:>10.1f} {row.gbps:>7.0f} {row.copy_fraction:>7.1%} "
            f"{us(row.eager_us):>9} {us(row.compile_us):>10} {speedup:>10}")


def table(rows: Sequence[BenchRow]) -> str:
    return "\n".join([HEADER] + [format_row(r) for r in rows])
