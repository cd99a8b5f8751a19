"""End to end: a text recognizer's ONNX -> plugged ONNX -> TensorRT engine -> inference,
compared with the CPU reference.

    python examples/recognizer_engine.py --plugins build/libplugkit_plugins.so [--model repvgg|small] [--onnx FILE]

By default (--model repvgg) the RepVGG-style recognizer of examples/text_recognizer.py
(input 1x3x32xW, dynamic width) is built in PyTorch with random weights, exported, and
plugged with `plugkit insert --op RMSNorm`; --onnx FILE plugs a model of your own the
same way. --model small writes a small recognizer of the same shape (3x3 conv stages,
height pooled away, an RMSNorm over channels as a plugkit node, a per-column
classifier) with onnx's helper, no PyTorch needed. Then, with the commands a user types:

    plugkit doctor  recognizer.plugged.onnx --plugins LIB
    plugkit engine  recognizer.plugged.onnx --plugins LIB [--fp16] \
        --shapes input:1x3x32x64,1x3x32x448,1x3x32x1024 -o recognizer.engine
    plugkit run     recognizer.engine --plugins LIB --shapes input:1x3x32x448 \
        --compare recognizer.onnx --iterations 100

Building and running need TensorRT and a CUDA GPU; the script says so and stops
after the doctor where they are missing.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPES = "{input}:1x3x32x64,1x3x32x448,1x3x32x1024"
RUN_SHAPE = "{input}:1x3x32x448"
CLASSES = 37  # blank + 10 digits + 26 letters


def small_recognizer(path: Path, plugged: bool = True, seed: int = 0) -> Path:
    """A CRNN-without-RNN recognizer: [N,3,32,W] -> logits [N, W/4, CLASSES]. ``plugged``
    writes the RMSNorm as a plugkit plugin node, else as ONNX RMSNormalization (opset 23)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name, *shape):
        scale = 1.0 / np.sqrt(np.prod(shape[1:]) if len(shape) > 1 else 1.0)
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [weight("w1", 16, 3, 3, 3), weight("b1", 16), weight("w2", 32, 16, 3, 3), weight("b2", 32),
             weight("w3", 32, 32, 3, 3), weight("b3", 32),
             numpy_helper.from_array((1.0 + 0.1 * rng.standard_normal(32)).astype(np.float32), "norm_scale"),
             weight("classifier", 32, CLASSES), weight("classifier_bias", CLASSES),
             numpy_helper.from_array(np.array([2], np.int64), "height_axis")]
    if plugged:
        norm = helper.make_node("RMSNorm", ["features", "norm_scale"], ["normed"], name="/head/norm",
                                domain="plugkit", plugin_version="1", plugin_namespace="plugkit", axis=-1,
                                epsilon=1e-5)
    else:
        norm = helper.make_node("RMSNormalization", ["features", "norm_scale"], ["normed"], name="/head/norm",
                                axis=-1, epsilon=1e-5)
    nodes = [
        # RepVGG-style stages: 3x3 convolutions (re-parameterized branches folded in) + ReLU.
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        # Height pooled away: one feature vector per column.
        helper.make_node("ReduceMean", ["r3", "height_axis"], ["pooled"], keepdims=0),
        helper.make_node("Transpose", ["pooled"], ["features"], perm=[0, 2, 1]),
        norm,
        helper.make_node("MatMul", ["normed", "classifier"], ["scores"]),
        helper.make_node("Add", ["scores", "classifier_bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "recognizer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "columns", CLASSES])], inits)
    opsets = [helper.make_opsetid("", 23 if not plugged else 18)]
    if plugged:
        opsets.append(helper.make_opsetid("plugkit", 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def export_repvgg(path: Path) -> Path:
    """The RepVGG-style recognizer of examples/text_recognizer.py, exported with a dynamic width."""
    import text_recognizer  # next to this file (on sys.path when run as a script or by pytest)

    text_recognizer.export(text_recognizer.build_model(), path)
    return path


def plugkit(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "plugkit", *map(str, args)]
    print("$", " ".join(["plugkit", *map(str, args)]), flush=True)
    result = subprocess.run(command, text=True, capture_output=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugins", default=str(ROOT / "build" / "libplugkit_plugins.so"))
    parser.add_argument("--model", choices=("repvgg", "small"), default="repvgg",
                        help="repvgg: examples/text_recognizer.py exported from PyTorch (default); "
                             "small: written with onnx's helper")
    parser.add_argument("--onnx", help="a recognizer's ONNX of your own (un-plugged), instead of --model")
    parser.add_argument("--workdir", default="recognizer_out", help="where the files go")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--backend", choices=("tensorrt", "rtx"), default="tensorrt",
                        help="the engine backend: TensorRT (default) or TensorRT-RTX (its runtime needs "
                             "an RTX-class GPU)")
    parser.add_argument("--fp16", action="store_true",
                        help="build in fp16 (compared under the fp16 tolerance; a deep network may "
                             "accumulate more error than one op's tolerance allows)")
    args = parser.parse_args(argv)

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    plugged = work / "recognizer.plugged.onnx"
    if args.onnx or args.model == "repvgg":
        original = Path(args.onnx) if args.onnx else export_repvgg(work / "recognizer.onnx")
        if plugkit("insert", original, "--op", "RMSNorm", "-o", plugged, "--force").returncode:
            return 1
    else:
        original = small_recognizer(work / "recognizer.plugged.onnx", plugged=True)
        # The plugged model is its own reference: `run --compare` runs the plugin node's op reference.

    if plugkit("doctor", plugged, "--plugins", args.plugins).returncode:
        return 1
    import onnx

    input_name = onnx.load(str(plugged), load_external_data=False).graph.input[0].name
    engine_path = work / "recognizer.engine"
    result = plugkit("engine", plugged, "--plugins", args.plugins, "--backend", args.backend,
                     *(["--fp16"] if args.fp16 else []),
                     "--shapes", SHAPES.format(input=input_name), "-o", engine_path, "--force")
    if result.returncode:
        if "TensorRT's Python package is not available" in result.stderr:
            print("TensorRT is not installed here: stopping after the plugin check.")
            return 0
        return 1
    return plugkit("run", engine_path, "--plugins", args.plugins, "--backend", args.backend,
                   "--shapes", RUN_SHAPE.format(input=input_name),
                   "--compare", original, "--iterations", args.iterations).returncode


if __name__ == "__main__":
    sys.exit(main())
