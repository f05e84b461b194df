"""Spatiotemporal (ST) transformer: the one attention stack behind the tokenizer, LAM and dynamics.

A block attends within a frame (spatial: all patches of one time step), then across time
(temporal: one patch position over frames, causal), then applies a feed-forward layer. Memory
grows linearly with the number of frames. Temporal attention uses rotary position embeddings
over absolute frame indices, so a sliding KV cache keeps relative distances exact.

Shapes: x is [B, T, N, D] (batch, frames, patches per frame, width) throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def rotary(x: Tensor, positions: Tensor, base: float = 10_000.0) -> Tensor:
    """Rotate pairs of channels of x [..., L, d] by angles positions [L] * base^(-2i/d).

    Computed in float32 (bf16 angles drift at large frame indices), returned in x's dtype.
    """
    d = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # [L, d/2]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention over sequences x [B, L, D] (scaled_dot_product_attention).

    With `rope`, queries and keys are rotated by their absolute `positions` [L]. `past` holds
    the already-rotated keys and values [B, H, Lp, d] of earlier positions (a KV cache); the
    keys/values of this call are returned so the caller can cache them.
    """

    def __init__(self, dim: int, heads: int, rope: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.rope = heads, rope
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: Tensor,
        causal: bool,
        positions: Tensor | None = None,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        if self.rope:
            q, k = rotary(q, positions), rotary(k, positions)
        new_kv = (k, v)
        mask = None
        if past is not None and past[0].shape[2] > 0:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
            if causal and q.shape[2] > 1:
                # query i sits after every cached key and may see new keys j <= i
                lq, lk = q.shape[2], k.shape[2]
                mask = torch.ones(lq, lk, dtype=torch.bool, device=x.device).tril(lk - lq)
            causal = False  # a single new query may see every cached key and itself
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.proj(rearrange(out, "b h l d -> b l (h d)")), new_kv


class KVCache:
    """Keys and values of past frames for every temporal-attention layer of an STTransformer.

    Holds at most `window` frames (a sliding context: the oldest frames drop out). `pos` is the
    absolute index of the next frame, used for rotary positions. Shapes per layer:
    k, v [B*N, H, T_cached, d]. The cache is plain state owned by the caller (e.g. the World).
    """

    def __init__(self, depth: int, window: int):
        self.window = window
        self.pos = 0
        self.layers: list[tuple[Tensor, Tensor] | None] = [None] * depth

    def __len__(self) -> int:
        first = self.layers[0]
        return 0 if first is None else first[0].shape[2]

    def append(self, layer: int, kv: tuple[Tensor, Tensor]) -> None:
        past = self.layers[layer]
        k, v = kv if past is None else (torch.cat((past[0], kv[0]), 2), torch.cat((past[1], kv[1]), 2))
        self.layers[layer] = (k[:, :, -self.window :], v[:, :, -self.window :])

    def reset(self) -> None:
        self.pos = 0
        self.layers = [None] * len(self.layers)


class STBlock(nn.Module):
    """Spatial attention within each frame, causal temporal attention across frames, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.norm_s, self.spatial = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_t, self.temporal = nn.LayerNorm(dim), Attention(dim, heads, rope=True)
        hidden = int(dim * mlp_ratio)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(
        self, x: Tensor, positions: Tensor, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x [B, T, N, D], positions [T] absolute frame indices -> (x, this call's temporal k/v)."""
        b, t, n, _ = x.shape
        h = rearrange(self.norm_s(x), "b t n d -> (b t) n d")
        x = x + rearrange(self.spatial(h, causal=False)[0], "(b t) n d -> b t n d", b=b)
        h = rearrange(self.norm_t(x), "b t n d -> (b n) t d")
        h, kv = self.temporal(h, causal=self.causal, positions=positions, past=past)
        x = x + rearrange(h, "(b n) t d -> b t n d", n=n)
        return x + self.mlp(self.norm_m(x)), kv


class STTransformer(nn.Module):
    """A stack of ST blocks with a final LayerNorm. Input and output x: [B, T, N, D].

    `forward(x, cache=cache)` treats x as the frames that follow the cached ones (positions
    cache.pos, cache.pos+1, ...); with `update_cache=True` their keys/values are appended and
    cache.pos advances. Without a cache, positions start at 0 and nothing is stored. A cached
    call gives the same output as an uncached call over the whole sequence (tested).
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, causal: bool = True):
        super().__init__()
        self.depth = depth
        self.blocks = nn.ModuleList(STBlock(dim, heads, mlp_ratio, causal) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * depth))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def new_cache(self, window: int) -> KVCache:
        return KVCache(self.depth, window)

    def forward(self, x: Tensor, cache: KVCache | None = None, update_cache: bool = False) -> Tensor:
        start = 0 if cache is None else cache.pos
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        for i, block in enumerate(self.blocks):
            past = None if cache is None else cache.layers[i]
            x, kv = block(x, positions, past)
            if cache is not None and update_cache:
                cache.append(i, kv)
        if cache is not None and update_cache:
            cache.pos += x.shape[1]
        return self.norm(x)
