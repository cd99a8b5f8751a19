"""Benchmarks of a plugin's kernels against PyTorch, on one GPU, in one run.

For each shape and dtype: the plugin's enqueue (through the host), for each
library given, and the op in PyTorch eager and under ``torch.compile`` (the
schema's ``torch_reference``). Each is captured in its own CUDA graph of
several launches, so that launch overhead stays out. A round replays every
graph once, in turn, between CUDA events; times are medians over rounds, and a
speed-up is the median of the per-round ratios, so that drift of the clocks
or the temperature during a run falls on every contender alike; its 95%
confidence interval (from the order statistics of those ratios, assuming nothing
of their distribution) says whether a speed-up of 0.98x is one or the noise of
that run. It does not cover what differs between runs (another machine, its
clocks): two runs of one build can differ by more.

The launches of a graph rotate through copies of the case's tensors, enough
copies to hold twice the device's L2 cache, so that each launch finds its data
in device memory as a layer of a large network would, not left in L2 by the
launch before it (``warm=True`` replays one set, which a small case then reads
from L2), and before each graph an untimed write of twice the L2 cache leaves L2
full of dirty lines, the same for every contender, so that none pays for the writes
of the one it follows. Bandwidth counts each input read once and each output written once,
and is set against the device's device-to-device copy bandwidth, measured in
the same run.

Plugins launch their kernels with programmatic dependent launch (PDL, plugkit/launch.h) on
compute capability 9.0 and newer, which lets each launch of a graph start while the one before
it finishes; ``torch.compile`` does so only when asked (inductor's ``triton.enable_pdl``). On
such a device, a case also times, in the same rounds, the first library launched without PDL
(``PLUGKIT_PDL=0`` while its graph is captured) and ``torch.compile`` with PDL, so that the
table says what the launch mode is worth and how the kernels compare when both use it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import statistics
from typing import Any, Callable, Mapping, Sequence

from . import tensors
from .host import PluginLibrary, PreparedPlugin
from .ops import case_inputs
from .schema import OpSchema


@dataclasses.dataclass
class BenchRow:
    shapes: list[list[int]]
    dtype: str
    bytes_moved: int
    plugin_us: list[float]  # one per library, in the order given
    eager_us: float | None
    compile_us: float | None
    vs_compile: list[float | None]  # per library: median over rounds of compile time / plugin time
    copy_gbps: float
    vs_compile_ci: list[tuple[float, float] | None]  # per library: 95% confidence interval of vs_compile
    # On devices with PDL (see the module's docstring), for the first library:
    no_pdl_us: float | None = None  # launched without PDL
    no_pdl_vs_compile: float | None = None
    compile_pdl_us: float | None = None  # torch.compile with triton.enable_pdl
    vs_compile_pdl: float | None = None  # compile_pdl time / plugin time, median of per-round ratios
    vs_compile_pdl_ci: tuple[float, float] | None = None

    @property
    def has_pdl(self) -> bool:
        return self.no_pdl_us is not None

    def gbps(self, library: int = 0) -> float:
        return self.bytes_moved / (self.plugin_us[library] * 1e-6) / 1e9

    def copy_fraction(self, library: int = 0) -> float:
        return self.gbps(library) / self.copy_gbps


def time_graphs(fns: Mapping[str, Callable[[], Any]], launches: int = 20, rounds: int = 15,
                scrub: bool = True) -> dict[str, list[float]]:
    """Microseconds of one call of each fn, one entry per round. Each fn is captured ``launches``
    times in its own CUDA graph; a round replays each graph once, in turn, between CUDA events,
    starting with the next contender each round (no place in the order is always someone's).
    With ``scrub``, a write of twice the L2 cache precedes each replay, untimed: every
    contender then starts with L2 full of dirty lines of its own (to be written back, as in
    a network's steady state), not with what the contender before it left there (in the
    cyclic order, each contender always follows the same one)."""
    import torch

    scrub_buffer = torch.empty(2 * l2_cache_bytes() // 4, device="cuda") if scrub else None

    graphs = {}
    for name, fn in fns.items():
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
        graphs[name] = graph
    torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in graphs}
    names = list(graphs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # each contender leads a round in turn
            graph = graphs[name]
            if scrub_buffer is not None:
                scrub_buffer.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times[name].append(start.elapsed_time(end) * 1e3 / launches)
    return times


def round_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """The per-round ratios of two contenders timed in the same rounds."""
    return [n / d for n, d in zip(numerator, denominator, strict=True)]


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median of the per-round ratios of two contenders timed in the same rounds."""
    return statistics.median(round_ratios(numerator, denominator))


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A confidence interval for the median of ``values`` that assumes nothing of their
    distribution: the k-th smallest and the k-th largest value, with k the largest count for
    which fewer than k of n values fall below the median with probability (1 - confidence) / 2
    at most (binomial, p = 1/2). Too few values for that confidence give their range (n = 5:
    94%). 15 values: the 4th to the 12th (96.5%); 30: the 10th to the 21st (95.7%)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    tail = (1.0 - confidence) / 2.0
    k, below = 0, 0.0
    while k < n // 2:
        below += math.comb(n, k) / 2.0**n  # P(exactly k values below the median)
        if below > tail:
            break
        k += 1
    return (xs[k - 1], xs[n - k]) if k > 0 else (xs[0], xs[-1])


def paired_interval(numerator: Sequence[float], denominator: Sequence[float]) -> tuple[float, float]:
    """95% confidence interval of :func:`paired_ratio`."""
    return median_interval(round_ratios(numerator, denominator))


def copy_bandwidth(nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written: the
    faster of cudaMemcpyAsync and an elementwise copy kernel over ``nbytes``."""
    import torch

    src = torch.rand(nbytes // 4, device="cuda")
    dst = torch.empty_like(src)
    times = time_graphs({"memcpy": lambda: dst.copy_(src), "kernel": lambda: torch.mul(src, 1.0, out=dst)},
                        launches=5, rounds=10, scrub=False)
    return 2 * nbytes / (min(statistics.median(t) for t in times.values()) * 1e-6) / 1e9


def tensor_sets(nbytes: int, warm: bool = False) -> int:
    """Copies of a case's tensors its launches rotate through: enough to hold twice the L2
    cache, so that a copy has left L2 by the time it comes round again; one when ``warm``."""
    if warm or nbytes == 0:
        return 1
    return max(1, min(math.ceil(2 * l2_cache_bytes() / nbytes), 4096))


def l2_cache_bytes() -> int:
    import torch

    return getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 64 << 20)


def pdl_supported() -> bool:
    """Whether the current device has programmatic dependent launch (compute capability 9.0+)
    and this torch's inductor can generate kernels that use it."""
    import torch

    inductor = torch._inductor.config
    return torch.cuda.get_device_capability()[0] >= 9 and hasattr(inductor.triton, "enable_pdl")


@contextlib.contextmanager
def plain_launches():
    """Plugins launch without PDL inside this block (plugkit/launch.h reads PLUGKIT_PDL at each launch)."""
    before = os.environ.get("PLUGKIT_PDL")
    os.environ["PLUGKIT_PDL"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PLUGKIT_PDL"]
        else:
            os.environ["PLUGKIT_PDL"] = before


def contenders(libraries: Sequence[PluginLibrary], schema: OpSchema, shapes: Sequence[Sequence[int]], dtype: str,
               attrs: Mapping[str, Any] | None, baselines: bool = True, warm: bool = False,
               pdl: bool = False, values: Mapping[str, Any] | None = None,
               ) -> tuple[dict[str, Callable[[], Any]], int, int]:
    """One launch of each contender (``plugin0``, ``plugin1``..., ``eager``, ``compile``; with
    ``pdl`` also ``plugin0-no-pdl`` and ``compile-pdl``) as a function that takes the next set of
    tensors in turn; the bytes one launch moves; the sets."""
    import torch

    attrs = schema.resolve_attrs(attrs)
    inputs = case_inputs(schema, shapes, dtype, seed=0, values=values)
    specs = [(str(t.dtype).replace("torch.", ""), list(t.shape)) for t in inputs]  # integer inputs keep theirs
    prepared = [PreparedPlugin(library.creator(schema.name, schema.version, schema.namespace), attrs, specs)
                for library in libraries]
    outputs = prepared[0].allocate_outputs(inputs[0])
    nbytes = sum(t.numel() * t.element_size() for t in list(inputs) + list(outputs))
    sets = [(inputs, outputs)] + [([t.clone() for t in inputs], prepared[0].allocate_outputs(inputs[0]))
                                  for _ in range(tensor_sets(nbytes, warm) - 1)]

    def rotating(call: Callable[[int, list, list], Any]) -> Callable[[], Any]:
        turn = itertools.cycle(range(len(sets)))

        def launch():
            k = next(turn)
            return call(k, *sets[k])
        return launch

    def keeping(fn: Callable[..., Any]) -> Callable[[], Any]:
        # A baseline's result stays alive until its set comes round again, so that its outputs
        # rotate through as many buffers as the plugin's (a result dropped at once would hand
        # its memory, still in L2, to the next launch).
        results: dict[int, Any] = {}
        return rotating(lambda k, x, y: results.__setitem__(k, fn(*x, **attrs)))

    def enqueue_plainly(k, x, y, p=prepared[0]):
        with plain_launches():
            return p.enqueue(x, y)

    fns: dict[str, Callable[[], Any]] = {
        f"plugin{i}": rotating(lambda k, x, y, p=p: p.enqueue(x, y)) for i, p in enumerate(prepared)}
    if pdl:
        fns["plugin0-no-pdl"] = rotating(enqueue_plainly)
    if baselines and schema.torch_reference is not None:
        fns["eager"] = keeping(schema.torch_reference)
        torch._dynamo.reset()  # a fresh compile per case: no recompile limit, no stale guards
        fns["compile"] = keeping(torch.compile(schema.torch_reference, dynamic=False))
        if pdl:  # another backend: dynamo's backend guard keeps the two compiles apart
            fns["compile-pdl"] = keeping(torch.compile(schema.torch_reference, dynamic=False,
                                                       options={"triton.enable_pdl": True}))
    return fns, nbytes, len(sets)


def bench_case(libraries: Sequence[PluginLibrary], schema: OpSchema, shapes: Sequence[Sequence[int]], dtype: str,
               attrs: Mapping[str, Any] | None, copy_gbps: float, baselines: bool = True,
               rounds: int = 15, warm: bool = False, pdl: bool = False,
               values: Mapping[str, Any] | None = None) -> BenchRow:
    """One row of the table; with ``pdl`` (baselines needed) also the first library without PDL
    and torch.compile with it."""
    fns, nbytes, sets = contenders(libraries, schema, shapes, dtype, attrs, baselines, warm, pdl, values)
    times = time_graphs(fns, launches=sets * math.ceil(20 / sets), rounds=rounds, scrub=not warm)
    plugin_times = [times[f"plugin{i}"] for i in range(len(libraries))]
    compile_times = times.get("compile")
    pdl_fields = {}
    if pdl:
        no_pdl, compile_pdl = times["plugin0-no-pdl"], times["compile-pdl"]
        pdl_fields = dict(no_pdl_us=statistics.median(no_pdl), no_pdl_vs_compile=paired_ratio(compile_times, no_pdl),
                          compile_pdl_us=statistics.median(compile_pdl),
                          vs_compile_pdl=paired_ratio(compile_pdl, plugin_times[0]),
                          vs_compile_pdl_ci=paired_interval(compile_pdl, plugin_times[0]))
    return BenchRow(
        shapes=[list(s) for s in shapes],
        dtype=dtype,
        bytes_moved=nbytes,
        plugin_us=[statistics.median(t) for t in plugin_times],
        eager_us=statistics.median(times["eager"]) if "eager" in times else None,
        compile_us=statistics.median(compile_times) if compile_times else None,
        vs_compile=[paired_ratio(compile_times, t) if compile_times else None for t in plugin_times],
        copy_gbps=copy_gbps,
        vs_compile_ci=[paired_interval(compile_times, t) if compile_times else None for t in plugin_times],
        **pdl_fields,
    )


def profile_case(libraries: Sequence[PluginLibrary], schema: OpSchema, shapes: Sequence[Sequence[int]], dtype: str,
                 attrs: Mapping[str, Any] | None, baselines: bool = True,
                 values: Mapping[str, Any] | None = None) -> list[str]:
    """Launch each contender once between ``cudaProfilerStart`` and ``cudaProfilerStop``, each in
    an NVTX range of its name, after warm-up launches (module loading, torch.compile's compile
    and autotuning) outside that window: for ``ncu --profile-from-start off`` or
    ``nsys profile --capture-range=cudaProfilerApi``. Returns the range names in launch order."""
    import torch

    fns, _, _ = contenders(libraries, schema, shapes, dtype, attrs, baselines, warm=True, values=values)
    for fn in fns.values():
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    try:
        for name, fn in fns.items():
            with torch.cuda.nvtx.range(f"{name} {'x'.join(map(str, shapes[0]))} {dtype}"):
                fn()
        torch.cuda.synchronize()
    finally:
        torch.cuda.profiler.stop()
    return list(fns)


def require_cuda() -> None:
    tensors.require_cuda("benchmarks")


def cases_and_dtypes(schema: OpSchema, cases: Sequence[Mapping[str, Any]] | None = None,
                     dtypes: Sequence[str] | None = None) -> list[tuple[Mapping[str, Any], str]]:
    """The (case, dtype) pairs a benchmark covers: the given ones, else the schema's bench
    cases (or its test cases) in each of its dtypes."""
    return [(case, dtype) for case in (cases or schema.bench_cases or schema.test_cases)
            for dtype in (dtypes or schema.dtypes)]


def measure_each(plan, measure: Callable[[Mapping[str, Any], str], Any], format_row: Callable[[Any], str],
                 echo: Callable[[str], None] | None) -> list:
    """``measure(case, dtype)`` for each pair of ``plan``; ``echo`` gets each row as it is measured."""
    rows = []
    for case, dtype in plan:
        rows.append(measure(case, dtype))
        if echo:
            echo(format_row(rows[-1]))
    return rows


def run(libraries: PluginLibrary | Sequence[PluginLibrary], schema: OpSchema, dtypes: Sequence[str] | None = None,
        cases: Sequence[Mapping[str, Any]] | None = None, baselines: bool = True,
        echo: Callable[[str], None] | None = None, rounds: int = 15, warm: bool = False,
        labels: Sequence[str] = ()) -> list[BenchRow]:
    """Time the schema's op from each library (one, or several builds to compare) at each case
    and dtype; ``echo`` gets the copy bandwidth, the table's header (``labels`` name the libraries
    after the first) and each row of the table as it is measured."""
    import torch

    require_cuda()
    libraries = [libraries] if isinstance(libraries, PluginLibrary) else list(libraries)
    plan = cases_and_dtypes(schema, cases, dtypes)
    copy_gbps = copy_bandwidth()
    pdl = baselines and schema.torch_reference is not None and pdl_supported()
    if echo:
        echo(f"device: {torch.cuda.get_device_name()}  copy bandwidth: {copy_gbps:.0f} GB/s (read + write)")
        if pdl:
            echo("plugin launches use PDL; 'no PDL' is the plugin without it, 'c+PDL' torch.compile with it")
        echo(header(labels, pdl))
    return measure_each(plan, lambda case, dtype: bench_case(
        libraries, schema, case["inputs"], dtype, case.get("attrs"), copy_gbps, baselines, rounds, warm, pdl,
        case.get("values")), format_row, echo)


# --------------------------------------------------------------------------- tactics

@dataclasses.dataclass
class TacticRow:
    """One case of ``bench --tactics``: the median time of each tactic, timed as TensorRT's
    builder times them (on the build-phase plugin, after setTactic and onShapeChange)."""

    shapes: list[list[int]]
    dtype: str
    tactics: list[Any]  # host.Tactic, in the plugin's order
    us: dict[int, float]

    @property
    def best(self):
        return min(self.tactics, key=lambda t: self.us[t.value])

    @property
    def margin(self) -> float | None:
        """How much slower the runner-up is than the pick (1.25 = 25%); None with one tactic."""
        ranked = sorted(self.us.values())
        return ranked[1] / ranked[0] if len(ranked) > 1 else None


def tactic_case(library: PluginLibrary, schema: OpSchema, shapes: Sequence[Sequence[int]], dtype: str,
                attrs: Mapping[str, Any] | None, rounds: int = 15, warm: bool = False,
                values: Mapping[str, Any] | None = None) -> TacticRow:
    """Time every valid tactic of the op at one case, in the same interleaved rounds."""
    from .errors import PlugkitError

    attrs = schema.resolve_attrs(attrs)
    inputs = case_inputs(schema, shapes, dtype, seed=0, values=values)
    prepared = PreparedPlugin(library.creator(schema.name, schema.version, schema.namespace), attrs,
                              [(str(t.dtype).replace("torch.", ""), list(t.shape)) for t in inputs])
    tactics = prepared.build_plugin.tactics()
    if not tactics:
        raise PlugkitError(f"{schema.name} declares no tactics (its plugin has no tactics() hook); "
                           "TensorRT runs its one kernel as the default tactic 0")
    outputs = prepared.allocate_outputs(inputs[0])
    nbytes = sum(t.numel() * t.element_size() for t in list(inputs) + list(outputs))
    sets = tensor_sets(nbytes, warm)

    def timer(fns):
        times = time_graphs(fns, launches=sets * math.ceil(20 / sets), rounds=rounds, scrub=not warm)
        return {t: statistics.median(v) for t, v in times.items()}

    copies = [(inputs, outputs)] + [([t.clone() for t in inputs], prepared.allocate_outputs(inputs[0]))
                                    for _ in range(sets - 1)]
    us = prepared.time_tactics(copies, timer)
    return TacticRow([list(s) for s in shapes], dtype, tactics, us)


def format_tactic_row(row: TacticRow) -> str:
    shapes = " ".join("x".join(map(str, s)) for s in row.shapes)
    times = "  ".join(f"{t.value}:{t.name} {row.us[t.value]:.1f}" for t in row.tactics)
    best = row.best
    margin = f"{row.margin:.2f}x ahead of the next" if row.margin is not None else "the only tactic"
    return f"{shapes:<28} {row.dtype:<9} {times}  -> TensorRT picks {best.value} ({best.name}), {margin}"


def run_tactics(library: PluginLibrary, schema: OpSchema, dtypes: Sequence[str] | None = None,
                cases: Sequence[Mapping[str, Any]] | None = None, echo: Callable[[str], None] | None = None,
                rounds: int = 15, warm: bool = False) -> list[TacticRow]:
    """``bench --tactics``: every valid tactic at each case and dtype (us per launch), and which
    one TensorRT would pick (the fastest) and by how much."""
    import torch

    require_cuda()
    if echo:
        echo(f"device: {torch.cuda.get_device_name()}  (us per launch, median of {rounds} rounds)")
    return measure_each(cases_and_dtypes(schema, cases, dtypes), lambda case, dtype: tactic_case(
        library, schema, case["inputs"], dtype, case.get("attrs"), rounds, warm, case.get("values")),
        format_tactic_row, echo)


# --------------------------------------------------------------------------- overhead

@dataclasses.dataclass
class OverheadRow:
    """CPU time per enqueue (us): the plugin's own enqueue, timed in C++ around the call
    TensorRT makes, and the Python round trip of ``PreparedPlugin.enqueue``."""

    shapes: list[list[int]]
    dtype: str
    enqueue_us: list[float]
    python_us: list[float]
    torch_op_us: list[float] = dataclasses.field(default_factory=list)  # a call of torch.ops.plugkit.<op> on CUDA

    @staticmethod
    def _p(values, q):
        xs = sorted(values)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    def summary(self) -> dict[str, float]:
        out = {"enqueue_median": statistics.median(self.enqueue_us), "enqueue_p90": self._p(self.enqueue_us, 0.9),
               "python_median": statistics.median(self.python_us), "python_p90": self._p(self.python_us, 0.9)}
        if self.torch_op_us:
            out.update(torch_op_median=statistics.median(self.torch_op_us), torch_op_p90=self._p(self.torch_op_us, 0.9))
            out["torch_op_above_enqueue"] = out["torch_op_median"] - out["enqueue_median"]
        return out


ENQUEUE_GOAL_US = 5.0  # issue 23: a plugin's own enqueue costs the host thread at most this
TORCH_OP_GOAL_US = 10.0  # issue 25: a torch op call costs at most this above the plugin's own enqueue


def torch_op_cpu_times(library: PluginLibrary, schema: OpSchema, inputs: Sequence[Any], attrs: Mapping[str, Any],
                       iterations: int, batch: int = 100) -> list[float]:
    """Microseconds of each of ``iterations`` calls of ``torch.ops.plugkit.<op>`` on CUDA tensors, as a
    compiled graph calls it (the overload, positional arguments, no grad), timed from Python around the
    call, in batches with a synchronize between them (untimed)."""
    import time

    import torch

    from .torch_ops import torch_op

    call = torch_op(schema.name, library=library.path)._opoverload
    args = (*inputs, *[attrs[a.name] for a in schema.attrs])
    times = []
    with torch.no_grad():
        for _ in range(10):  # the plugin prepared for this key, the first launches
            call(*args)
        torch.cuda.synchronize()
        for start in range(0, iterations, batch):
            for _ in range(min(batch, iterations - start)):
                t0 = time.perf_counter_ns()
                call(*args)
                times.append((time.perf_counter_ns() - t0) / 1e3)
            torch.cuda.synchronize()
    return times


def overhead_case(library: PluginLibrary, schema: OpSchema, shapes: Sequence[Sequence[int]], dtype: str,
                  attrs: Mapping[str, Any] | None, iterations: int = 1000, batch: int = 100,
                  values: Mapping[str, Any] | None = None) -> OverheadRow:
    """Time ``iterations`` enqueues both ways, in batches of ``batch`` launches with a synchronize
    between batches (untimed), so that a full launch queue never blocks a timed call."""
    import time

    import torch

    attrs = schema.resolve_attrs(attrs)
    inputs = case_inputs(schema, shapes, dtype, seed=0, values=values)
    prepared = PreparedPlugin(library.creator(schema.name, schema.version, schema.namespace), attrs,
                              [(str(t.dtype).replace("torch.", ""), list(t.shape)) for t in inputs])
    outputs = prepared.allocate_outputs(inputs[0])
    for _ in range(10):  # module load, first-launch costs, caches filled in onShapeChange or the first enqueue
        prepared.enqueue(inputs, outputs)
    torch.cuda.synchronize()
    enqueue_us, python_us = [], []
    for start in range(0, iterations, batch):
        n = min(batch, iterations - start)
        enqueue_us += prepared.enqueue_cpu_times(inputs, outputs, n)
        torch.cuda.synchronize()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            prepared.enqueue(inputs, outputs)
            python_us.append((time.perf_counter_ns() - t0) / 1e3)
        torch.cuda.synchronize()
    torch_op_us = torch_op_cpu_times(library, schema, inputs, attrs, iterations, batch)
    return OverheadRow([list(s) for s in shapes], dtype, enqueue_us, python_us, torch_op_us)


OVERHEAD_HEADER = (f"{'shapes':<28} {'dtype':<9} {'enqueue us':>10} {'p90':>6} {'python us':>10} {'p90':>6}  "
                   f"goal: enqueue <= {ENQUEUE_GOAL_US:g} us")


TORCH_OP_HEADER = f"  {'torch op us':>11} {'p90':>6} {'above enq':>9}  goal: <= {TORCH_OP_GOAL_US:g} us above enqueue"


def format_overhead_row(row: OverheadRow) -> str:
    s = row.summary()
    shapes = " ".join("x".join(map(str, sh)) for sh in row.shapes)
    verdict = "ok" if s["enqueue_median"] <= ENQUEUE_GOAL_US else "over"
    line = (f"{shapes:<28} {row.dtype:<9} {s['enqueue_median']:>10.2f} {s['enqueue_p90']:>6.2f} "
            f"{s['python_median']:>10.2f} {s['python_p90']:>6.2f}  {verdict}")
    if row.torch_op_us:
        op_verdict = "ok" if s["torch_op_above_enqueue"] <= TORCH_OP_GOAL_US else "over"
        line += (f" {s['torch_op_median']:>11.2f} {s['torch_op_p90']:>6.2f} {s['torch_op_above_enqueue']:>9.2f}  "
                 f"{op_verdict}")
    return line


def run_overhead(library: PluginLibrary, schema: OpSchema, dtypes: Sequence[str] | None = None,
                 cases: Sequence[Mapping[str, Any]] | None = None, echo: Callable[[str], None] | None = None,
                 iterations: int = 1000) -> list[OverheadRow]:
    """``bench --overhead``: the CPU cost of launching the op, at each case and dtype."""
    import torch

    require_cuda()
    if echo:
        echo(f"device: {torch.cuda.get_device_name()}  CPU time per enqueue over {iterations} calls: the plugin's "
             "own enqueue (timed in C++, the call TensorRT makes), the Python round trip of PreparedPlugin.enqueue, "
             "and a call of the torch op on CUDA tensors (torch.ops.plugkit.*, no grad)")
        echo(OVERHEAD_HEADER + TORCH_OP_HEADER)
    return measure_each(cases_and_dtypes(schema, cases, dtypes), lambda case, dtype: overhead_case(
        library, schema, case["inputs"], dtype, case.get("attrs"), iterations, values=case.get("values")),
        format_overhead_row, echo)


HEADER = (f"{'shapes':<28} {'dtype':<9} {'plugin us':>10} {'GB/s':>7} {'% copy':>7} "
          f"{'eager us':>9} {'compile us':>10} {'vs compile':>10} {'95% CI':>9}")


PDL_HEADER = f" {'no PDL us':>9} {'vs compile':>10} {'c+PDL us':>9} {'vs c+PDL':>8} {'95% CI':>9}"


def header(labels: Sequence[str] = (), pdl: bool = False) -> str:
    """The table's header; with ``pdl`` the columns of the first library launched without PDL
    and of torch.compile with it; ``labels`` name the libraries after the first, each a column of
    its time, its speed-up over torch.compile (over the first library without baselines) and
    that speed-up's 95% confidence interval."""
    return HEADER + (PDL_HEADER if pdl else "") + "".join(f" {label[:28]:>28}" for label in labels)


def format_row(row: BenchRow) -> str:
    def us(v):
        return f"{v:.1f}" if v is not None else "-"

    def speedup(ratio):
        return f"{ratio:.2f}x" if ratio is not None else "-"

    def interval(ci):
        return f"{ci[0]:.2f}-{ci[1]:.2f}" if ci is not None else "-"

    shapes = " ".join("x".join(map(str, s)) for s in row.shapes)
    line = (f"{shapes:<28} {row.dtype:<9} {row.plugin_us[0]:>10.1f} {row.gbps():>7.0f} {row.copy_fraction():>7.1%} "
            f"{us(row.eager_us):>9} {us(row.compile_us):>10} {speedup(row.vs_compile[0]):>10} {interval(row.vs_compile_ci[0]):>9}")
    if row.has_pdl:
        line += (f" {us(row.no_pdl_us):>9} {speedup(row.no_pdl_vs_compile):>10} {us(row.compile_pdl_us):>9} "
                 f"{speedup(row.vs_compile_pdl):>8} {interval(row.vs_compile_pdl_ci):>9}")
    for i, (plugin_us, ratio) in enumerate(zip(row.plugin_us[1:], row.vs_compile[1:]), start=1):
        if ratio is None:  # no baseline: the speed-up over the first library
            ratio = row.plugin_us[0] / plugin_us
        line += f" {f'{plugin_us:.1f} {speedup(ratio)} {interval(row.vs_compile_ci[i])}':>28}"
    return line


def table(rows: Sequence[BenchRow], labels: Sequence[str] = ()) -> str:
    return "\n".join([header(labels, any(r.has_pdl for r in rows))] + [format_row(r) for r in rows])
