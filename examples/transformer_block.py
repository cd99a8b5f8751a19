"""A pre-norm transformer block (RMSNorm, attention, SwiGLU MLP), two ways
to a plugged ONNX model, checked on the CPU.

(a) From PyTorch: the block calls ``torch.ops.plugkit.rms_norm`` and
    ``plugkit.onnx_export.export`` emits the plugin nodes directly.
(b) After export: the plain block (``torch.nn.RMSNorm``) is exported by the
    dynamo exporter at opset 18, where RMSNorm is a chain of ONNX ops, and
    ``plugkit insert`` replaces each chain with the plugin node.

Both plugged models are verified against the plain export at several
batch sizes and sequence lengths (on a GPU, also with the plugin's kernel:
``plugkit verify --device cuda``).

    python examples/transformer_block.py [workdir]
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from plugkit.cli import main as plugkit


class PluginRMSNorm(nn.RMSNorm):
    """torch.nn.RMSNorm computed by the plugkit op (its reference in eager)."""

    def forward(self, x):
        from plugkit.torch_ops import torch_op
        return torch_op("RMSNorm")(x, self.weight, axis=-1, epsilon=self.eps)


class TransformerBlock(nn.Module):
    def __init__(self, dim=32, heads=4, hidden=64, norm=nn.RMSNorm):
        super().__init__()
        self.heads = heads
        self.attn_norm, self.mlp_norm = norm(dim, eps=1e-6), norm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):  # (batch, seq, dim)
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1) @ v
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        h = self.mlp_norm(x)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


class Decoder(nn.Module):
    """Two blocks and a final norm: five RMSNorms in all."""

    def __init__(self, norm=nn.RMSNorm, dim=32):
        super().__init__()
        self.blocks = nn.ModuleList([TransformerBlock(dim, norm=norm) for _ in range(2)])
        self.norm = norm(dim, eps=1e-6)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def build_models(seed=0):
    """The plain decoder and the same weights calling the plugkit op."""
    torch.manual_seed(seed)
    plain = Decoder()
    with torch.no_grad():
        for m in plain.modules():
            if isinstance(m, nn.RMSNorm):
                m.weight.uniform_(0.5, 1.5)
    plugin = Decoder(norm=PluginRMSNorm)
    plugin.load_state_dict(plain.state_dict())
    return plain.eval(), plugin.eval()


def export(model, path: Path):
    from plugkit import onnx_export
    x = torch.randn(2, 8, 32)
    kwargs = dict(input_names=["x"], output_names=["y"], opset_version=18,
                  dynamic_shapes=({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")},))
    with warnings.catch_warnings():  # torch's exporter warns about itself
        warnings.simplefilter("ignore")
        onnx_export.export(model, (x,), str(path), dynamo=True, verbose=False, **kwargs)


def main(workdir: str | Path, verify_options: Sequence[str] = ()) -> int:
    """``verify_options``: added to each ``plugkit verify`` (the GPU tests pass --device cuda --plugins LIB)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    plain, plugin = build_models()
    original = workdir / "decoder.onnx"
    from_torch, inserted = workdir / "decoder.from_torch.onnx", workdir / "decoder.inserted.onnx"
    export(plain, original)
    export(plugin, from_torch)                                      # (a)
    status = plugkit(["insert", str(original), "--op", "RMSNorm", "-o", str(inserted), "--force"])  # (b)
    dims = ["--dim", "batch=1,2,3", "--dim", "seq=1,7,16"]
    return (status
            or plugkit(["verify", str(original), str(from_torch), *dims, *verify_options])
            or plugkit(["verify", str(original), str(inserted), *dims, *verify_options]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="plugkit-")))
