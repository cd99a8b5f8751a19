"""Build, save, load and run TensorRT engines that use plugkit plugins.

    from plugkit import engine
    result = engine.build("model.plugged.onnx", "model.engine",
                          plugins=["build/libplugkit_plugins.so"], fp16=True,
                          shapes=["input:1x3x32x64,1x3x32x448,1x3x32x1024"])
    trt_engine = engine.load("model.engine", plugins=["build/libplugkit_plugins.so"])
    outputs = trt_engine.run({"input": x})          # torch CUDA tensors in and out

Builds go through Polygraphy's TensorRT loaders (NetworkFromOnnxPath,
CreateConfig, EngineBytesFromNetwork), runs through its TrtRunner. TensorRT,
Polygraphy and torch are imported when a function needs them, never when this
package is imported; everything that can be checked without them (files,
options, shapes, input feeds, engine metadata) is checked first, so mistakes
surface as clear messages before a minutes-long build or a cryptic TensorRT log.

Next to each engine, ``build`` writes ``<engine>.json``: the TensorRT version
and GPU it was built with, its inputs/outputs and profile ranges, its plugins
and its precision. ``load`` reads it to tell "built by another TensorRT" or
"built for another GPU" or "needs plugin library X" before deserializing.

The modules, one concern each:

| module | what |
|---|---|
| ``backend`` | the only place ``tensorrt`` is imported (lazily): which backend (TensorRT or TensorRT-RTX), registry, logger, engine I/O description, progress monitor, Polygraphy's mode |
| ``rtx`` | TensorRT-RTX: importing its bindings so its parser can load plugin nodes, compute-capability targets, supported GPUs |
| ``versions`` | TensorRT version parsing; which plugin library works with which runtime |
| ``files`` | engine-file sanity checks, atomic writes, hashes |
| ``record`` | the build record ``<engine>.json`` and what it lets ``load`` check |
| ``progress`` | the build's status line |
| ``builder`` | ``build`` and its option checks |
| ``runtime`` | ``load``, ``Engine`` (run, benchmark), latency statistics |
| ``feeds`` | inputs: checks against the engine, random ones |
| ``compare`` | outputs against the CPU reference |

Plugin library paths are checked and opened once in :mod:`plugkit.plugin_libraries`.
"""
from ..errors import EngineError, EngineFileError, EngineMismatchError, InputError, TensorRTMissingError
from ..tensors import dtype_name
from .backend import (BACKENDS, TITLES, backend_of, describe_engine_tensors, import_backend, import_tensorrt,
                      load_plugins_into_tensorrt, parse_onnx, resolve_backend)
from .builder import BuildOptions, BuildResult, build, default_engine_path, validate_build_options
from .compare import OutputComparison, compare_outputs, reference_outputs
from .feeds import check_feeds, make_inputs, random_array
from .files import MIN_ENGINE_BYTES, atomic_write, check_engine_file
from .progress import BuildProgress
from .record import (EngineMetadata, TensorInfo, check_engine_against_metadata, check_metadata_compatible,
                     compute_precision, explain_load_failure, metadata_path, read_metadata)
from .runtime import Engine, LatencyStats, load
from .versions import check_plugin_library_version, parse_version

__all__ = [
    "EngineError", "EngineFileError", "EngineMismatchError", "InputError", "TensorRTMissingError",
    "BACKENDS", "describe_engine_tensors", "import_backend", "import_tensorrt", "load_plugins_into_tensorrt",
    "resolve_backend", "TITLES", "backend_of", "parse_onnx",
    "BuildOptions", "BuildResult", "build", "default_engine_path", "validate_build_options",
    "OutputComparison", "compare_outputs", "reference_outputs",
    "check_feeds", "make_inputs", "random_array",
    "MIN_ENGINE_BYTES", "atomic_write", "check_engine_file", "BuildProgress",
    "EngineMetadata", "TensorInfo", "check_engine_against_metadata", "check_metadata_compatible",
    "compute_precision", "dtype_name", "explain_load_failure", "metadata_path", "read_metadata",
    "Engine", "LatencyStats", "load", "check_plugin_library_version", "parse_version",
]
