"""A small Llama-style decoder whose RMSNorms run the plugkit RMSNorm plugin,
against the same model in stock PyTorch, on the GPU.

The model is written here in plain torch from a config (no downloads, no
transformers): token embedding, decoder layers of grouped-query attention with
rotary embeddings and a SwiGLU MLP, each with two RMSNorms (pre-norm), a final
RMSNorm and the LM head. ``norm=PluginRMSNorm`` swaps every RMSNorm for
``torch.ops.plugkit.rms_norm``, which on CUDA tensors runs the plugin's kernel
from the plugin library (``--library``, default $PLUGKIT_PLUGIN_LIBRARY or
build/libplugkit_plugins.so).

It checks that the plugin-backed model's logits match the stock model's (float32,
under the float32 tolerance; the timed dtype's difference is printed), then
prints the forward time of both, eager and torch.compile, as a table.

    python examples/llama_rmsnorm.py [--layers 4 --hidden 2048 --batch 4 --seq 512 --dtype bfloat16]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys

import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int = 32000
    hidden_size: int = 2048
    intermediate_size: int = 5632
    num_layers: int = 4
    num_heads: int = 16
    num_kv_heads: int = 4
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


class RMSNorm(nn.Module):
    """Llama's RMSNorm as its reference code writes it: in float32, then scaled in the input dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class PluginRMSNorm(RMSNorm):
    """The same module computed by the plugkit op: the plugin's kernel on CUDA tensors."""

    def __init__(self, dim: int, eps: float):
        super().__init__(dim, eps)
        from plugkit.torch_ops import torch_op

        self.rms_norm = torch_op("RMSNorm")

    def forward(self, x):
        return self.rms_norm(x, self.weight, axis=-1, epsilon=self.eps)


def rotary(positions: torch.Tensor, head_dim: int, theta: float, dtype):
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.hidden_size, c.num_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(b, t, c.num_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, c.num_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, c.num_kv_heads, c.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        groups = c.num_heads // c.num_kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: LlamaConfig, norm):
        super().__init__()
        self.input_layernorm = norm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = norm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """tokens [B, T] -> logits [B, T, vocab]."""

    def __init__(self, c: LlamaConfig, norm=RMSNorm):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(c, norm) for _ in range(c.num_layers)])
        self.norm = norm(c.hidden_size, c.rms_norm_eps)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def forward(self, tokens):
        x = self.embed_tokens(tokens)
        cos, sin = rotary(torch.arange(tokens.shape[1], device=tokens.device), self.c.head_dim, self.c.rope_theta,
                          x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))


def build_models(config: LlamaConfig, seed: int = 0):
    """The stock model and the same weights with every RMSNorm computed by the plugin op."""
    torch.manual_seed(seed)
    stock = LlamaModel(config)
    with torch.no_grad():
        for m in stock.modules():
            if isinstance(m, RMSNorm):
                m.weight.uniform_(0.5, 1.5)  # so that a scale read wrongly shows
    plugin = LlamaModel(config, norm=PluginRMSNorm)
    plugin.load_state_dict(stock.state_dict())
    return stock.eval(), plugin.eval()


def forward_ms(model, tokens, iterations: int) -> float:
    """Median forward time in ms, between CUDA events, after warm-up."""
    with torch.inference_mode():
        for _ in range(3):
            model(tokens)
        torch.cuda.synchronize()
        times = []
        for _ in range(iterations):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(tokens)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def logits(model, tokens):
    with torch.inference_mode():
        return model(tokens).float().cpu().numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--intermediate", type=int, default=5632)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--library", help="plugin library (default: $PLUGKIT_PLUGIN_LIBRARY, else the built one)")
    p.add_argument("--no-compile", action="store_true", help="time eager mode only")
    args = p.parse_args(argv)

    from plugkit.plugin_libraries import default_library_path
    from plugkit.tolerances import compare
    from plugkit.torch_cuda import LIBRARY_ENV
    from plugkit.torch_ops import torch_op

    if not torch.cuda.is_available():
        print("this example runs on a CUDA device; torch sees none", file=sys.stderr)
        return 2
    torch_op("RMSNorm", library=args.library or os.environ.get(LIBRARY_ENV) or default_library_path())
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_layers=args.layers, num_heads=args.heads, num_kv_heads=args.kv_heads)
    stock, plugin = build_models(config)
    stock, plugin = stock.cuda(), plugin.cuda()
    tokens = torch.randint(0, config.vocab_size, (args.batch, args.seq), device="cuda",
                           generator=torch.Generator("cuda").manual_seed(0))

    # Same function: float32 logits under the float32 tolerance.
    check = compare(logits(plugin, tokens), logits(stock, tokens), "float32")
    print(f"plugin vs stock, float32 logits: {check}  {'ok' if check.ok else 'MISMATCH'}")
    dtype = getattr(torch, args.dtype)
    stock, plugin = stock.to(dtype), plugin.to(dtype)
    if args.dtype != "float32":
        info = compare(logits(plugin, tokens), logits(stock, tokens), args.dtype)
        print(f"plugin vs stock, {args.dtype} logits (the plugin scales in float32, Llama's code in "
              f"{args.dtype}): max abs {info.max_abs:.3g}, max rel {info.max_rel:.3g}")

    rows = {"stock PyTorch": stock, "plugin RMSNorm": plugin}
    eager = {name: forward_ms(model, tokens, args.iterations) for name, model in rows.items()}
    compiled = {}
    if not args.no_compile:
        compiled = {name: forward_ms(torch.compile(model, fullgraph=True), tokens, args.iterations)
                    for name, model in rows.items()}
    norms = sum(isinstance(m, RMSNorm) for m in plugin.modules())
    print(f"\n{torch.cuda.get_device_name()}: {config.num_layers} layers, hidden {config.hidden_size}, "
          f"{config.num_heads}/{config.num_kv_heads} heads, {norms} RMSNorms; batch {args.batch} x {args.seq} "
          f"tokens, {args.dtype}; median of {args.iterations} forwards")
    print(f"{'model':<16} {'eager ms':>9} {'compile ms':>11}")
    for name in rows:
        print(f"{name:<16} {eager[name]:>9.3f} {compiled.get(name, math.nan):>11.3f}")
    speedup = lambda t: t["stock PyTorch"] / t["plugin RMSNorm"] if t else math.nan  # noqa: E731
    print(f"{'stock / plugin':<16} {speedup(eager):>8.2f}x {speedup(compiled):>10.2f}x")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
