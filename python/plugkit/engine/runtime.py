"""``load`` an engine (after every check that needs no TensorRT) and run it
on torch CUDA tensors."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import EngineError, EngineMismatchError, HostUnavailableError
from ..plugin_libraries import check_library_paths, open_libraries
from ..tensors import numpy_to_torch, require_cuda
from .backend import (TITLES, backend_of, capturing_logger, describe_engine_tensors, import_backend,
                      load_plugins_into_tensorrt, polygraphy_quiet, use_polygraphy)
from .feeds import check_feeds
from .files import check_engine_file
from .progress import log_to_stderr
from .record import (EngineMetadata, TensorsByRole, check_engine_against_metadata, check_metadata_compatible,
                     device, explain_load_failure, read_metadata)
from .versions import check_library_versions


class Engine(TensorsByRole):
    """A deserialized engine, ready to run on torch CUDA tensors."""

    def __init__(self, trt, trt_engine, path: Path, metadata: EngineMetadata | None,
                 plugins: list[str]):
        self.trt = trt
        self.trt_engine = trt_engine
        self.path = path
        self.metadata = metadata
        self.plugins = plugins
        self.tensors = describe_engine_tensors(trt, trt_engine)
        self._runner = None

    @property
    def precision(self) -> str:
        return self.metadata.precision if self.metadata else "float32"

    def _activate(self):
        if self._runner is None:
            from polygraphy.backend.trt import TrtRunner

            self._runner = TrtRunner(self.trt_engine)
            self._runner.activate()
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
            self._runner = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _to_device(self, feeds: Mapping[str, Any]) -> dict:
        torch = require_cuda("engine runs", EngineError)
        check_feeds(self.inputs, feeds)
        device_feeds = {}
        for name, value in feeds.items():
            if isinstance(value, torch.Tensor):
                device_feeds[name] = value.cuda().contiguous()
            else:
                device_feeds[name] = numpy_to_torch(value).cuda()
        return device_feeds

    def run(self, feeds: Mapping[str, Any], *, to_host: bool = True) -> dict[str, Any]:
        """Run once. ``feeds``: input name -> numpy array or torch tensor. Returns
        output name -> torch tensor (on the CPU when ``to_host``)."""
        from polygraphy.exception import PolygraphyException

        device_feeds = self._to_device(feeds)
        runner = self._activate()
        try:
            outputs = runner.infer(device_feeds, copy_outputs_to_host=to_host)
        except PolygraphyException as exc:
            raise EngineError(f"running {self.path} failed: {exc}") from None
        return dict(outputs)

    def benchmark(self, feeds: Mapping[str, Any], iterations: int, warmup: int = 5) -> "LatencyStats":
        """Latency of ``iterations`` synchronous runs (inputs and outputs stay on the GPU)."""
        torch = require_cuda("engine runs", EngineError)
        device_feeds = self._to_device(feeds)
        runner = self._activate()
        for _ in range(max(warmup, 0)):
            runner.infer(device_feeds, copy_outputs_to_host=False)
        torch.cuda.synchronize()
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            runner.infer(device_feeds, copy_outputs_to_host=False)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return LatencyStats.from_seconds(times)


def load(engine_path, plugins: Sequence = (), *, verify: bool = True, verbose: bool = False,
         log: Callable[[str], None] = log_to_stderr, backend: str | None = None) -> Engine:
    """Deserialize an engine after checking, without TensorRT, everything that
    can be: the file, its build record (TensorRT version, GPU, plugins), the
    plugin libraries. ``verify`` also checks the file's SHA-256 against the record.
    ``backend``: ``"tensorrt"``, ``"rtx"`` or None (the one the build record names, else the
    first installed)."""
    path = check_engine_file(engine_path)
    meta = read_metadata(path)
    if meta is not None:
        check_engine_against_metadata(path, meta, verify_hash=verify)
    plugins = [str(p) for p in check_library_paths(plugins)]
    if meta is not None and meta.plugin_ops and not plugins and not meta.plugins_serialized:
        raise EngineError(
            f"engine {path} uses the plugin(s) {', '.join(meta.plugin_ops)} and was built without "
            f"--serialize-plugins: pass the plugin library with --plugins (it was built with "
            f"{', '.join(meta.plugins) or 'an unknown library'})")
    if meta is not None and backend is not None and backend != meta.backend:
        raise EngineMismatchError(
            f"engine {path} was built by {TITLES.get(meta.backend, meta.backend)}; load it with "
            f"--backend {meta.backend} (engines of one backend do not load in the other)")
    trt = import_backend(backend or (meta.backend if meta is not None else None))
    backend = backend_of(trt)
    if backend == "rtx":  # say so before the runtime meets a GPU it does not support
        from .rtx import check_gpu_supported

        require_cuda("engine runs", EngineError)
        check_gpu_supported(*device())
    if meta is not None:
        device_name, capability = device()
        for warning in check_metadata_compatible(meta, trt.__version__, capability, device_name):
            log(f"warning: {warning}")
    try:
        check_library_versions(trt.__version__, open_libraries(plugins), log, backend)
    except HostUnavailableError:  # the host only adds an early, clearer message; TensorRT still checks
        pass
    load_plugins_into_tensorrt(trt, plugins)

    use_polygraphy(backend)
    polygraphy_quiet(verbose)
    from polygraphy.backend.trt import EngineFromBytes
    from polygraphy.exception import PolygraphyException

    logger = capturing_logger(trt, verbose)
    runtime = trt.Runtime(logger)
    data = path.read_bytes()
    try:
        trt_engine = EngineFromBytes(data, runtime=runtime)()
    except PolygraphyException:
        trt_engine = None
    if not trt_engine:
        raise EngineError(explain_load_failure(logger.errors, path=str(path), plugins=plugins,
                                               meta=meta))
    return Engine(trt, trt_engine, path, meta, plugins)


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles in milliseconds."""

    count: int
    mean: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> "LatencyStats":
        import numpy as np

        if not len(seconds):
            raise ValueError("no timings")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
        return cls(len(ms), float(ms.mean()), float(ms.min()), float(ms.max()), float(p50),
                   float(p90), float(p95), float(p99))

    def __str__(self):
        return (f"latency over {self.count} runs (ms): mean {self.mean:.3f}, min {self.min:.3f}, "
                f"p50 {self.p50:.3f}, p90 {self.p90:.3f}, p95 {self.p95:.3f}, p99 {self.p99:.3f}, "
                f"max {self.max:.3f}; throughput {1e3 / self.mean:.1f} runs/s")

