"""A Deformable-DETR encoder layer whose attention samples through the
MultiScaleDeformableAttention plugin, from PyTorch to a plugged ONNX model,
checked on the CPU.

The layer (multi-scale deformable self-attention, then a feed-forward block,
each with a residual and a LayerNorm) runs over the flattened feature maps of
a small pyramid. Its sampling core is written two ways with the same weights:

- plain: the grid_sample formulation, exported by the dynamo exporter as ONNX
  GridSample nodes (the levels' sizes are Python ints of the model);
- plugged: ``torch.ops.plugkit.multi_scale_deformable_attention``, exported by
  ``plugkit.onnx_export`` as one plugin node, with spatial_shapes and
  level_start_index as int64 initializers.

``plugkit verify`` then runs both models on the CPU (the plugin node through
the op's numpy reference) at several batch sizes and compares them.

    python examples/deformable_encoder.py [workdir]
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from plugkit.cli import main as plugkit
from plugkit.ops import op_module

LEVELS = [(12, 16), (6, 8), (3, 4)]
DIM, HEADS, POINTS = 64, 4, 4


def reference_points(levels) -> torch.Tensor:
    """[S, L, 2]: each position's pixel centre, normalized to [0, 1], on every level."""
    points = []
    for rows, cols in levels:
        y, x = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
        points.append(torch.stack([x.flatten(), y.flatten()], -1))
    return torch.cat(points)[:, None].expand(-1, len(levels), -1).contiguous()


class DeformableAttention(nn.Module):
    def __init__(self, levels, dim=DIM, heads=HEADS, points=POINTS, plugin=False):
        super().__init__()
        self.levels, self.heads, self.points, self.plugin = list(levels), heads, points, plugin
        self.value_proj, self.output_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.sampling_offsets = nn.Linear(dim, heads * len(levels) * points * 2)
        self.attention_weights = nn.Linear(dim, heads * len(levels) * points)
        op = op_module("MultiScaleDeformableAttention")
        self.register_buffer("spatial_shapes", torch.tensor(self.levels, dtype=torch.int64))
        self.register_buffer("level_start_index", torch.tensor(op.level_start(self.levels), dtype=torch.int64))
        self.register_buffer("reference", reference_points(self.levels))
        # offsets are in pixels of each level: (x, y) / (W_l, H_l)
        self.register_buffer("normalizer", torch.tensor([[w, h] for h, w in self.levels], dtype=torch.float32))
        self._grid_sample_attention = op.grid_sample_attention
        from plugkit.torch_ops import torch_op
        # The plugged layer's sampling: the custom op (its reference in eager, the plugin node in
        # ONNX); a test swaps in the plugin itself (see run_with_plugin).
        self.sample = torch_op("MultiScaleDeformableAttention")

    def forward(self, query):  # [B, S, dim], S = sum of H_l * W_l (queries are the positions)
        B, S, dim = query.shape
        L, H, P = len(self.levels), self.heads, self.points
        value = self.value_proj(query).view(B, S, H, dim // H)
        offsets = self.sampling_offsets(query).view(B, S, H, L, P, 2)
        locations = self.reference[None, :, None, :, None, :] + offsets / self.normalizer[None, None, None, :, None, :]
        weights = self.attention_weights(query).view(B, S, H, L * P).softmax(-1).view(B, S, H, L, P)
        if self.plugin:
            out = self.sample(value, self.spatial_shapes, self.level_start_index, locations, weights)
        else:
            out = self._grid_sample_attention(value, self.levels, locations, weights)
        return self.output_proj(out)


class DeformableEncoderLayer(nn.Module):
    def __init__(self, levels=LEVELS, dim=DIM, hidden=128, plugin=False):
        super().__init__()
        self.attention = DeformableAttention(levels, dim, plugin=plugin)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, src):
        src = self.norm1(src + self.attention(src))
        return self.norm2(src + self.ffn(src))


def build_models(seed=0):
    """The plain layer and the same weights calling the plugkit op. The offsets get weights large
    enough to send some sampling points off the maps."""
    torch.manual_seed(seed)
    plain = DeformableEncoderLayer()
    with torch.no_grad():
        plain.attention.sampling_offsets.weight.normal_(0, 0.1)
        plain.attention.sampling_offsets.bias.normal_(0, 1.0)
    plugged = DeformableEncoderLayer(plugin=True)
    plugged.load_state_dict(plain.state_dict())
    return plain.eval(), plugged.eval()


def export(model, path: Path):
    from plugkit import onnx_export
    src = torch.randn(2, sum(h * w for h, w in LEVELS), DIM)
    # Opset 20: GridSample's "linear" mode, which onnx's reference evaluator (verify) runs.
    kwargs = dict(input_names=["src"], output_names=["out"], opset_version=20,
                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    with warnings.catch_warnings():  # torch's exporter warns about itself
        warnings.simplefilter("ignore")
        onnx_export.export(model, (src,), str(path), dynamo=True, verbose=False, **kwargs)


def run_with_plugin(model: DeformableEncoderLayer, src: torch.Tensor, library) -> torch.Tensor:
    """The plugged layer on src's CUDA device, its sampling run by the plugin through the host."""
    from plugkit import testing

    op = op_module("MultiScaleDeformableAttention")

    def plugin(*inputs):
        return testing.run_plugin(library, op.schema, [t.contiguous() for t in inputs])[0]

    model.attention.sample = plugin
    with torch.no_grad():
        return model(src)


def main(workdir: str | Path) -> int:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    plain, plugged = build_models()
    original, from_torch = workdir / "encoder.onnx", workdir / "encoder.plugged.onnx"
    export(plain, original)
    export(plugged, from_torch)
    return plugkit(["verify", str(original), str(from_torch), "--dim", "batch=1,2,3"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="plugkit-")))
