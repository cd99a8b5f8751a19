"""A RepVGG-style text recognizer with an RMSNorm neck, from PyTorch to a
plugged ONNX model, checked on the CPU.

The classic OCR deployment: a conv backbone over a 1x3x32x448 text line whose
width is dynamic, a sequence head that predicts one character distribution
per column (CTC). The RepVGG blocks are trained as 3x3 + 1x1 + identity
branches and re-parameterized into one 3x3 conv for deployment, which is the
graph TensorRT gets. The model is exported with the TorchScript exporter at
opset 17, then ``plugkit insert`` puts the RMSNorm plugin in and ``plugkit
verify`` checks it at several widths.

Then the recognizer ends with CTC greedy decoding (labels, scores and decoded
lengths instead of log-probabilities to copy back and decode on the host): once
with the decode written in PyTorch ops (argmax, runs, compaction; ONNX Runtime
runs it) and once through the CTCGreedyDecoder plugin's torch op, both exported
with the dynamo exporter (dynamic batch and width, labels [N, M] with M
data-dependent), and ``plugkit verify`` checks that the two agree.

    python examples/text_recognizer.py [workdir]
"""
from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from plugkit.cli import main as plugkit
from plugkit.onnx_export import export as export_with_plugins
from plugkit.ops import op_module
from plugkit.torch_ops import torch_op

NUM_CLASSES = 37  # CTC blank + 0-9 + a-z


def conv_bn(cin, cout, kernel, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout))


def fuse(conv: nn.Conv2d | None, bn: nn.BatchNorm2d, cin: int, kernel: int = 3):
    """Conv (or identity, when ``conv`` is None) + BN as a 3x3 kernel and bias."""
    if conv is None:
        weight = torch.zeros(bn.num_features, cin, 3, 3)
        weight[range(cin), range(cin), 1, 1] = 1.0
    else:
        pad = (3 - kernel) // 2
        weight = nn.functional.pad(conv.weight, [pad] * 4)
    std = (bn.running_var + bn.eps).sqrt()
    return weight * (bn.weight / std).reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * bn.weight / std


class RepVGGBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.cin = cin
        self.dense, self.one = conv_bn(cin, cout, 3, stride), conv_bn(cin, cout, 1, stride)
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        self.deployed = None

    def forward(self, x):
        if self.deployed is not None:
            return torch.relu(self.deployed(x))
        y = self.dense(x) + self.one(x)
        return torch.relu(y + self.identity(x) if self.identity is not None else y)

    @torch.no_grad()
    def reparameterize(self):
        """Fold the three branches into one 3x3 conv (RepVGG's deploy form)."""
        parts = [fuse(self.dense[0], self.dense[1], self.cin), fuse(self.one[0], self.one[1], self.cin, 1)]
        if self.identity is not None:
            parts.append(fuse(None, self.identity, self.cin))
        conv = self.dense[0]
        self.deployed = nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, 1)
        self.deployed.weight.copy_(sum(w for w, _ in parts))
        self.deployed.bias.copy_(sum(b for _, b in parts))


class TextRecognizer(nn.Module):
    """(N, 3, 32, W) -> (N, W/4, NUM_CLASSES) log-probabilities."""

    def __init__(self, width=48, norm: nn.Module | None = None):
        super().__init__()
        c = width
        self.backbone = nn.Sequential(
            RepVGGBlock(3, c // 2, 2),              # 16 x W/2
            RepVGGBlock(c // 2, c, 2),              # 8 x W/4
            RepVGGBlock(c, c, 1),
            RepVGGBlock(c, 2 * c, (2, 1)),          # 4 x W/4
            RepVGGBlock(2 * c, 2 * c, (2, 1)),      # 2 x W/4
        )
        self.norm = norm if norm is not None else nn.RMSNorm(2 * c, eps=1e-6)
        self.head = nn.Linear(2 * c, NUM_CLASSES)

    def forward(self, image):
        features = self.backbone(image).mean(dim=2)         # N, C, W/4
        sequence = self.norm(features.transpose(1, 2))      # N, W/4, C
        return self.head(sequence).log_softmax(-1)


class ManualRMSNorm(nn.Module):
    """RMSNorm as many codebases write it (the TorchScript exporter has no
    symbolic for aten::rms_norm, so torch.nn.RMSNorm does not export there)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def build_model(seed=0) -> TextRecognizer:
    torch.manual_seed(seed)
    model = TextRecognizer(norm=ManualRMSNorm(96))
    with torch.no_grad():  # random but non-trivial BN statistics and scale
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
        model.norm.weight.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(1, 3, 32, 448)
    before = model(x)
    for block in model.backbone:
        block.reparameterize()
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-4)  # same function, one conv per block
    return model


def export(model, path: Path):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 32, 448),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["log_probs"],
                          dynamic_axes={"image": {3: "width"}, "log_probs": {1: "columns"}})


class DecodingRecognizer(nn.Module):
    """The recognizer, then CTC greedy decoding: (N, 3, 32, W) -> labels [N, M] int32, scores [N, M]
    float32, decoded lengths [N] int32, with M the longest decoded length (data-dependent).
    ``plugin``: through the CTCGreedyDecoder op (a plugin node in ONNX); else in PyTorch ops."""

    def __init__(self, recognizer: TextRecognizer, plugin: bool = True):
        super().__init__()
        self.recognizer, self.plugin = recognizer, plugin

    def forward(self, image):
        log_probs = self.recognizer(image)
        if self.plugin:
            labels, scores, lengths, _ = torch_op("CTCGreedyDecoder")(log_probs)
            return labels, scores, lengths
        labels, scores, lengths, longest = op_module("CTCGreedyDecoder").torch_reference(log_probs)
        m = longest.item()  # padded to T columns: cut to M, a size known only from the data
        torch._check_is_size(m)
        torch._check(m <= labels.shape[1])
        return labels[:, :m], scores[:, :m], lengths


def export_decoding(model: TextRecognizer, path: Path, plugin: bool):
    """The decoding recognizer through the dynamo exporter, batch and width dynamic."""
    dims = {0: torch.export.Dim("batch", min=1, max=64), 3: torch.export.Dim("width", min=16, max=4096)}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        export_with_plugins(DecodingRecognizer(model, plugin), (torch.randn(2, 3, 32, 448),), str(path),
                            input_names=["image"], output_names=["labels", "scores", "lengths"],
                            dynamic_shapes={"image": dims})


def main(workdir: str | Path) -> int:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    original, plugged = workdir / "text_recognizer.onnx", workdir / "text_recognizer.plugged.onnx"
    export(build_model(), original)
    status = plugkit(["insert", str(original), "--op", "RMSNorm", "-o", str(plugged), "--force"])
    if status:
        return status
    status = plugkit(["verify", str(original), str(plugged), "--dim", "width=448,160,64"])
    if status:
        return status
    model = build_model()
    decoding, decoding_plugged = workdir / "text_recognizer.decoding.onnx", workdir / "text_recognizer.decoder.onnx"
    export_decoding(model, decoding, plugin=False)
    export_decoding(model, decoding_plugged, plugin=True)
    return plugkit(["verify", str(decoding), str(decoding_plugged), "--dim", "batch=1,3,8", "--dim",
                    "width=64,448,1024"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="plugkit-")))
