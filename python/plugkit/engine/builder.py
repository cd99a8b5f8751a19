"""``build``: an ONNX model with plugkit plugins -> a saved engine and its build record.

Everything that can be checked without TensorRT (files, options, shapes, the
plugin nodes against the libraries) is checked first, so mistakes surface as
clear messages before a minutes-long build."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..errors import EngineError, HostUnavailableError, OutputExistsError
from ..plugin_libraries import check_library_paths, open_libraries
from ..shapes import ShapeRange, check_ranges_against_model, onnx_input_dims, parse_shape_specs
from .backend import (STRONGLY_TYPED_ONLY, TITLES, backend_of, capturing_logger, describe_engine_tensors,
                      describe_network_tensors, import_backend, load_plugins_into_tensorrt, plugin_layers,
                      polygraphy_quiet, progress_monitor, resolve_backend, use_polygraphy)
from .files import atomic_write
from .progress import BuildProgress, Heartbeat, log_to_stderr
from .record import EngineMetadata, compute_precision, device, metadata_path
from .versions import check_library_versions, parse_version


@dataclasses.dataclass
class BuildOptions:
    onnx_path: Path
    output: Path
    plugins: list[str]
    fp16: bool = False
    bf16: bool = False
    strongly_typed: bool = False
    shapes: dict[str, ShapeRange] = dataclasses.field(default_factory=dict)
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    version_compatible: bool = False
    serialize_plugins: bool = False
    force: bool = False
    compute_capabilities: list[str] = dataclasses.field(default_factory=list)


def default_engine_path(onnx_path: str | os.PathLike) -> Path:
    """``model.plugged.onnx`` -> ``model.plugged.engine``."""
    return Path(onnx_path).with_suffix(".engine")


def validate_build_options(onnx_path, output=None, *, plugins=(), fp16=False, bf16=False,
                           strongly_typed=False, shapes=None, workspace_mib=None, timing_cache=None,
                           version_compatible=False, serialize_plugins=False,
                           force=False, compute_capabilities=(), backend=None) -> BuildOptions:
    """Everything about a build request that can be checked without TensorRT."""
    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        raise EngineError(f"ONNX model {onnx_path} does not exist")
    if onnx_path.is_dir():
        raise EngineError(f"{onnx_path} is a directory; pass the .onnx file")
    output = Path(output) if output else default_engine_path(onnx_path)
    if output.resolve() == onnx_path.resolve():
        raise EngineError(f"the engine would overwrite the model {onnx_path}; choose another -o path")
    if output.is_dir():
        raise EngineError(f"output {output} is a directory; pass a file name such as "
                          f"{output / default_engine_path(onnx_path).name}")
    if output.exists() and not force:
        raise OutputExistsError(f"{output} already exists (force=True overwrites it)")
    if not output.parent.exists():
        raise EngineError(f"the directory of {output} does not exist; create {output.parent} first")
    plugins = [str(p) for p in check_library_paths(plugins)]
    if serialize_plugins and not version_compatible:
        raise EngineError("--serialize-plugins needs --version-compatible: TensorRT serializes plugin "
                          "libraries only into version-compatible engines")
    if serialize_plugins and not plugins:
        raise EngineError("--serialize-plugins has nothing to serialize: pass --plugins LIB")
    if workspace_mib is not None and workspace_mib <= 0:
        raise EngineError(f"--workspace must be a positive number of MiB; got {workspace_mib}")
    if timing_cache is not None:
        timing_cache = Path(timing_cache)
        if timing_cache.is_dir():
            raise EngineError(f"--timing-cache {timing_cache} is a directory; pass a file path")
        if not timing_cache.parent.exists():
            raise EngineError(f"the directory of --timing-cache {timing_cache} does not exist")
    compute_capabilities = [str(c).strip() for c in compute_capabilities or ()]
    if isinstance(shapes, Mapping):
        ranges = dict(shapes)
    else:
        ranges = parse_shape_specs([shapes] if isinstance(shapes, str) else shapes)
    options = BuildOptions(onnx_path, output, plugins, fp16, bf16, strongly_typed, ranges,
                           workspace_mib, timing_cache, version_compatible, serialize_plugins, force,
                           compute_capabilities)
    if backend is not None:
        check_backend_options(options, resolve_backend(backend))
    return options


def check_backend_options(options: BuildOptions, backend: str) -> None:
    """The options one backend has and the other has not."""
    if options.compute_capabilities and backend != "rtx":
        raise EngineError("--compute-capability chooses the GPUs a TensorRT-RTX engine is built for; use it "
                          "with --backend rtx (TensorRT builds for the GPU it runs on)")
    if backend == "rtx" and (options.version_compatible or options.serialize_plugins):
        raise EngineError("--version-compatible and --serialize-plugins are TensorRT options; TensorRT-RTX "
                          "does not build version-compatible engines")


def _targets(trt, capabilities: Sequence[str]) -> list:
    """TensorRT-RTX's ComputeCapability targets: those asked for, else the GPU here where
    TensorRT-RTX supports it, else every supported one (a build without such a GPU, as in CI)."""
    from .rtx import SUPPORTED_CAPABILITIES, compute_capability_targets

    if capabilities:
        return compute_capability_targets(trt, capabilities)
    _, capability = device()
    return compute_capability_targets(trt, [capability] if capability in SUPPORTED_CAPABILITIES
                                      else SUPPORTED_CAPABILITIES)


def targets_text(targets) -> list[str]:
    """ComputeCapability.SM89 -> "8.9"."""
    return [f"{t.name[2:-1]}.{t.name[-1]}" for t in targets]


@dataclasses.dataclass
class BuildResult:
    path: Path
    metadata: EngineMetadata
    seconds: float
    notes: list[str]


def _open_libraries(paths: Sequence[str], check_plugins: bool, log) -> list:
    """The plugin libraries opened once through the host, for the plugin check
    and the version check; [] (with a warning when the check was asked for)
    where the host is not built."""
    try:
        return open_libraries(paths)
    except HostUnavailableError as exc:
        if check_plugins:
            log(f"warning: plugin check skipped: {exc}")
        return []


def _plugin_report(model, options: BuildOptions, libraries: Sequence, check_plugins: bool, log):
    """Run the doctor before the build; returns the plugin op keys it found."""
    from .. import doctor

    nodes, _ = doctor.plugin_nodes(model)
    ops = sorted({f"{n.op_type}/{n.version}/{n.namespace}" for n in nodes})
    if not check_plugins or (options.plugins and not libraries):
        return ops
    report = doctor.check_model(model, libraries, str(options.onnx_path))
    for warning in report.warnings:
        log(f"warning: {warning}")
    if not report.ok:
        raise doctor.DoctorError(report)
    return ops


def build(onnx_path, output=None, *, plugins: Sequence = (), fp16: bool = False, bf16: bool = False,
          strongly_typed: bool = False, shapes=None, workspace_mib: int | None = None,
          timing_cache=None, version_compatible: bool = False, serialize_plugins: bool = False,
          force: bool = False, check_plugins: bool = True, progress: bool = True,
          verbose: bool = False, log: Callable[[str], None] = log_to_stderr, backend: str | None = None,
          compute_capabilities: Sequence[str] = ()) -> BuildResult:
    """Build an engine from an ONNX model with plugkit plugins and save it.

    ``shapes``: ``{"input": ShapeRange}`` or spec strings like
    ``"input:1x3x32x64,1x3x32x448,1x3x32x1024"``. ``fp16``/``bf16`` follow
    :func:`plugkit.precision.precision_plan` (builder flags on TensorRT 10,
    a cast model built strongly typed on TensorRT 11 and TensorRT-RTX). ``backend``:
    ``"tensorrt"``, ``"rtx"`` (TensorRT-RTX) or None (the first installed, TensorRT first).
    ``compute_capabilities`` (TensorRT-RTX only): the GPUs to build for, e.g. ``["8.9", "12.0"]``;
    by default the GPU here, or every supported one where there is none. Raises a
    :class:`~plugkit.errors.PlugkitError` subclass for anything a user can fix.
    """
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    from ..precision import cast_model, precision_plan

    options = validate_build_options(
        onnx_path, output, plugins=plugins, fp16=fp16, bf16=bf16, strongly_typed=strongly_typed,
        shapes=shapes, workspace_mib=workspace_mib, timing_cache=timing_cache,
        version_compatible=version_compatible, serialize_plugins=serialize_plugins, force=force,
        compute_capabilities=compute_capabilities, backend=backend)
    try:
        model = onnx.load(str(options.onnx_path), load_external_data=False)
    except Exception as exc:
        raise EngineError(f"{options.onnx_path} is not a readable ONNX model: {exc}") from None
    ranges = check_ranges_against_model(options.shapes, onnx_input_dims(model))
    libraries = _open_libraries(options.plugins, check_plugins, log)
    plugin_ops = _plugin_report(model, options, libraries, check_plugins, log)

    trt = import_backend(backend)
    if backend is None:  # the first installed: its options are checked now
        check_backend_options(options, backend_of(trt))
    backend = backend_of(trt)
    title = TITLES[backend]
    targets = _targets(trt, options.compute_capabilities) if backend == "rtx" else []
    if backend == "rtx" and options.timing_cache:
        log(f"note: TensorRT-RTX keeps no timing cache (it picks kernels when the engine first runs); "
            f"--timing-cache {options.timing_cache} is not used")
        options.timing_cache = None
    plan = precision_plan(parse_version(trt.__version__)[0], fp16=options.fp16, bf16=options.bf16,
                          strongly_typed=options.strongly_typed,
                          strongly_typed_only=STRONGLY_TYPED_ONLY.get(backend))
    notes = list(plan.notes)
    for note in notes:
        log(f"note: {note}")
    check_library_versions(trt.__version__, libraries, log, backend)
    load_plugins_into_tensorrt(trt, options.plugins)

    use_polygraphy(backend)
    polygraphy_quiet(verbose)
    from polygraphy.backend.trt import (CreateConfig, EngineBytesFromNetwork, EngineFromBytes,
                                        NetworkFromOnnxPath, PostprocessConfig, Profile)
    from polygraphy.exception import PolygraphyException

    with tempfile.TemporaryDirectory(prefix="plugkit-build-") as tmp:
        parse_path = options.onnx_path
        if plan.cast_to:
            # the model read above, now with its external weights: read once, not twice
            load_external_data_for_model(model, str(options.onnx_path.parent))
            cast = cast_model(model, plan.cast_to)
            parse_path = Path(tmp) / f"{options.onnx_path.stem}.{plan.cast_to}.onnx"
            large = cast.ByteSize() > 1_800_000_000
            onnx.save(cast, str(parse_path), save_as_external_data=large,
                      location=f"{parse_path.name}.data" if large else None)

        parser_flags = []
        if options.version_compatible and hasattr(trt, "OnnxParserFlag") and \
                hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
            parser_flags.append(trt.OnnxParserFlag.NATIVE_INSTANCENORM)
        strongly_typed_flag = plan.strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag,
                                                              "STRONGLY_TYPED")
        try:  # parsed here, not inside the build: its plugin layers and tensors go into the record
            network = NetworkFromOnnxPath(str(parse_path), flags=parser_flags or None,
                                          strongly_typed=strongly_typed_flag)()
        except PolygraphyException as exc:
            raise EngineError(
                f"{title}'s ONNX parser could not parse {options.onnx_path}: {exc} (its messages above "
                f"name the node; `plugkit doctor {options.onnx_path} --plugins ...` checks the plugin "
                f"nodes)") from None

        profiles = None
        if ranges:
            profile = Profile()
            for shape_range in ranges.values():
                profile.add(shape_range.name, min=shape_range.min, opt=shape_range.opt,
                            max=shape_range.max)
            profiles = [profile]
        monitor_progress = BuildProgress() if progress else None
        monitor = progress_monitor(trt, monitor_progress) if monitor_progress else None
        timing_cache_path = str(options.timing_cache) if options.timing_cache else None
        common = dict(
            profiles=profiles,
            memory_pool_limits=({trt.MemoryPoolType.WORKSPACE: options.workspace_mib << 20}
                                if options.workspace_mib else None),
            load_timing_cache=(timing_cache_path if options.timing_cache
                               and options.timing_cache.exists() else None),
            progress_monitor=monitor,
        )
        if backend == "rtx":  # no precision flags, no version compatibility; targets instead
            from polygraphy.backend.tensorrt_rtx import CreateConfigRTX

            config = CreateConfigRTX(compute_capabilities=[tuple(map(int, t.split(".")))
                                                           for t in targets_text(targets)], **common)
        else:
            config = CreateConfig(fp16="FP16" in plan.builder_flags or None,
                                  bf16="BF16" in plan.builder_flags or None,
                                  version_compatible=options.version_compatible or None, **common)
        if options.serialize_plugins:
            libraries = [os.path.abspath(p) for p in options.plugins]

            def serialize_plugins_into_engine(builder, network, config):
                config.plugins_to_serialize = libraries

            config = PostprocessConfig(config, serialize_plugins_into_engine)

        start = time.monotonic()
        log(f"building {options.output} from {options.onnx_path} with {title} {trt.__version__}"
            + (f" ({', '.join(plan.builder_flags)})" if plan.builder_flags else "")
            + (" strongly typed" if plan.strongly_typed else "")
            + (f" for compute capability {', '.join(targets_text(targets))}" if targets else ""))
        try:
            if monitor_progress:
                with Heartbeat(monitor_progress):
                    engine_bytes = EngineBytesFromNetwork(network, config,
                                                          save_timing_cache=timing_cache_path)()
            else:
                engine_bytes = EngineBytesFromNetwork(network, config,
                                                      save_timing_cache=timing_cache_path)()
        except PolygraphyException as exc:
            if monitor_progress:
                monitor_progress.close()
            raise EngineError(
                f"{title} could not build an engine from {options.onnx_path}: {exc} ({title}'s "
                f"messages above name the layer; `plugkit doctor {options.onnx_path} --plugins ...` "
                f"checks the plugin nodes)") from None
        seconds = time.monotonic() - start
        if monitor_progress:
            monitor_progress.close()

        layers = plugin_layers(trt, network[1])
        network_tensors = describe_network_tensors(trt, network[1], ranges)

    data = bytes(engine_bytes)
    atomic_write(options.output, data)
    device_name, capability = device()
    meta = EngineMetadata(
        tensorrt_version=trt.__version__, backend=backend, compute_capabilities=targets_text(targets),
        plugin_layers=layers, device_name=device_name, compute_capability=capability,
        version_compatible=options.version_compatible, plugins_serialized=options.serialize_plugins,
        plugins=[os.path.abspath(p) for p in options.plugins], plugin_ops=plugin_ops,
        precision=compute_precision(plan.cast_to, plan.builder_flags),
        builder_flags=list(plan.builder_flags), strongly_typed=plan.strongly_typed,
        onnx=str(options.onnx_path), engine_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest())
    if backend == "rtx":  # deserializing needs a GPU TensorRT-RTX supports: the network tells
        meta.tensors = network_tensors
    else:
        try:
            runtime = trt.Runtime(capturing_logger(trt))
            meta.tensors = describe_engine_tensors(trt, EngineFromBytes(data, runtime=runtime)())
        except Exception as exc:  # the record is a convenience; the engine is already saved
            log(f"warning: could not read the engine's inputs/outputs for "
                f"{metadata_path(options.output)}: {exc}")
    metadata_path(options.output).write_text(meta.to_json())
    log(f"saved {options.output} ({len(data) / 1e6:.1f} MB) in {seconds:.1f} s")
    return BuildResult(options.output, meta, seconds, notes)

