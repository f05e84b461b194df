"""Spatiotemporal (ST) transformer: the one attention stack behind the tokenizer, LAM and dynamics.

A block attends within a frame (spatial: all patches of one time step), then across time
(temporal: one patch position over frames, causal), then applies a feed-forward layer. Memory
grows linearly with the number of frames. Temporal attention uses rotary position embeddings
over absolute frame indices, so a sliding KV cache keeps relative distances exact. With a
`spatial_grid` (h, w), spatial attention is rotary too, over each patch's column (half of each
head's channel pairs) and row (the other half): its scores then depend on how far apart two
patches are, not where they are, so "look one patch to the right" is one pattern for every patch
(a view that scrolls moves every patch's content by the same offset).

Shapes: x is [B, T, N, D] (batch, frames, patches per frame, width) throughout.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def rotary_tables(positions: Tensor, d: int, base: float = 10_000.0) -> Tensor:
    """The rotations of rotary() for positions [L]: complex64 [L, d/2], unit numbers at the angles
    positions * base^(-2i/d), one per channel pair. Computed once per forward, shared by every layer
    (float32 angles: bf16 ones drift at large frame indices)."""
    inv_freq = base ** (-torch.arange(0, d, 2, device=positions.device, dtype=torch.float32) / d)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # [L, d/2]
    return torch.polar(torch.ones_like(angles), angles)


SPATIAL_BASE = 100.0  # a frame is tens of patches across: base 10,000 would leave most channel pairs unturned


def spatial_rotary_tables(h: int, w: int, d: int, device=None) -> Tensor:
    """The rotations of rotary() for the patches of an h x w grid (row-major, as patchify lays them
    out): complex64 [h*w, d/2]; the first d/4 channel pairs turn with the patch's column, the
    other d/4 with its row. d must be a multiple of 4."""
    if d % 4:
        raise ValueError(f"spatial rotary embeddings need a head dim divisible by 4, got {d}")
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.cat((rotary_tables(cols.flatten(), d // 2, SPATIAL_BASE),
                      rotary_tables(rows.flatten(), d // 2, SPATIAL_BASE)), dim=-1)


def rotary(x: Tensor, tables: Tensor) -> Tensor:
    """Rotate each pair of channels (x1, x2) of x [..., L, d] by its angle: (x1 cos - x2 sin, x1 sin + x2 cos),
    as the complex product (x1 + i x2) * rotary_tables' (cos + i sin); computed in float32, returned in x's
    dtype. One complex multiply is several times faster on a CPU than the same in real arithmetic."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * tables).flatten(-2).to(x.dtype)


class TanhGELU(nn.Module):
    """GELU with the tanh approximation (what the models were trained with). Without autograd on a
    CPU it is computed in float32, in place, as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3),
    the same function (0.5 (1 + tanh u) = sigmoid 2u) in half the time of the fused kernel (bf16
    inputs too: the casts cost less than the bf16 kernel); elsewhere the fused kernel."""

    SCALE = 2 * math.sqrt(2 / math.pi)

    def forward(self, x: Tensor) -> Tensor:
        if (torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16)
                or torch.compiler.is_compiling()):
            return F.gelu(x, approximate="tanh")
        y = x.float()
        u = y * y
        return u.mul_(0.044715 * self.SCALE).add_(self.SCALE).mul_(y).sigmoid_().mul_(y).to(x.dtype)


# A cached one-query attention with at most this many key elements (rows * heads * slots * head dim: the
# batch-1 decoder step's is 123K) runs as broadcast products and sums on a CPU, which made a bf16 step 4-7%
# faster than the fused kernel with a mask; larger ones (bigger batches, longer windows) ran up to several
# times slower that way and take the kernel (benchmarks/RESULTS.md, 2026-12-05).
SMALL_ONE_QUERY = 1 << 17


class Attention(nn.Module):
    """Multi-head self-attention over sequences x [B, L, D] (scaled_dot_product_attention).

    With `rope`, queries and keys are rotated by their absolute positions (`tables`: rotary_tables of
    the positions [L]). With `cache`
    (k, v, slots, mask: a layer's preallocated key/value buffers [B, H, S, d], the slots this call's
    positions are written to (int64 [L], or a slice when they are consecutive: a plain strided copy,
    several times faster on a CPU than index_copy_), and which slots each query sees, bool [L, S]),
    this call's rotated keys/values are written into the buffers in place and the queries attend
    over them.
    """

    def __init__(self, dim: int, heads: int, rope: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.rope = heads, rope
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, causal: bool, tables: Tensor | None = None,
                cache: tuple[Tensor, Tensor, Tensor, Tensor] | None = None) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        if self.rope:
            q, k = rotary(q, tables), rotary(k, tables)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            k_buf, v_buf, slots, mask = cache
            if isinstance(slots, slice):
                k_buf[:, :, slots] = k
                v_buf[:, :, slots] = v
            else:
                k_buf.index_copy_(2, slots, k.to(k_buf.dtype))
                v_buf.index_copy_(2, slots, v.to(v_buf.dtype))
            k, v = k_buf.to(q.dtype), v_buf.to(q.dtype)
            if q.shape[2] == 1 and q.device.type == "cpu" and k.numel() <= SMALL_ONE_QUERY:
                # one query over a few keys on a CPU: broadcast products and sums in fp32, [rows, H, slots, 1]
                scores = (q.float() * k.float()).sum(-1, keepdim=True) * q.shape[-1] ** -0.5
                weights = scores.masked_fill(~mask[0, :, None], float("-inf")).softmax(-2)
                out = (weights * v.float()).sum(-2, keepdim=True).to(q.dtype)
            elif q.shape[2] == 1:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            else:  # a few queries over a few keys: plain math (the CPU's fused kernel took 7x longer here)
                scores = ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).masked_fill(~mask, float("-inf"))
                # softmax written out: torch's kernel is 5x slower over a last dim this short on a CPU
                weights = (scores - scores.amax(dim=-1, keepdim=True)).exp()
                out = (weights / weights.sum(dim=-1, keepdim=True)) @ v
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class KVCache:
    """Keys and values of past frames for every temporal-attention layer of an STTransformer: a
    preallocated ring, written in place, never concatenated or reallocated after its first use.

    A frame at absolute index q attends to itself and the `window` frames before it. Frame f
    lives in slot f % slots, slots = window + max_new: a call may bring up to `max_new` new
    frames (e.g. the frame just sampled, committed, plus the next one being sampled) while every
    frame its queries still need stays put. `frame[s]` is the absolute index held in slot s
    (-inf-like when empty), so the attention mask is index arithmetic. `pos` is the absolute
    index of the next frame to commit (rotary positions); frames a call does not commit are
    scratch, overwritten by the next call. Buffers per layer: k, v [B*N, H, slots, d], allocated
    on the first call (batch, device and dtype come from it). Plain state owned by the caller.
    """

    EMPTY = -(2**62)

    def __init__(self, depth: int, window: int, max_new: int = 2):
        self.depth, self.window, self.slots, self.max_new = depth, window, window + max_new, max_new
        self.pos = 0
        self.k: Tensor | None = None  # [depth, B*N, H, slots, d]
        self.v: Tensor | None = None
        self.frame: Tensor | None = None  # int64 [slots]

    def __len__(self) -> int:
        """Frames held that the next frame will see."""
        return min(self.pos, self.window)

    def prepare(self, t: int, device: torch.device, as_slice: bool = False) -> tuple[Tensor, Tensor | slice, Tensor]:
        """Claim slots for frames pos..pos+t-1 -> (positions [t], slots [t], mask bool [t, slots]); with
        as_slice, slots is a slice where they are consecutive (eager code; a compiled graph takes tensors)."""
        if t > self.max_new and self.pos > 0 or t > self.slots:
            raise ValueError(f"a cached call brings at most {self.max_new} new frames once the cache holds "
                             f"frames ({self.slots} into an empty one), got {t}")
        if self.frame is None or self.frame.device != device:
            self.frame = torch.full((self.slots,), self.EMPTY, dtype=torch.int64, device=device)
        positions = torch.arange(self.pos, self.pos + t, device=device)
        slots = positions % self.slots
        self.frame.index_copy_(0, slots, positions)
        seen = self.frame[None, :]
        mask = (seen <= positions[:, None]) & (seen >= positions[:, None] - self.window)
        first = self.pos % self.slots
        if as_slice and first + t <= self.slots:
            slots = slice(first, first + t)
        return positions, slots, mask

    def buffers(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """The k, v buffers [depth, B*N, H, slots, d], allocated like `like` ([B*N, H, t, d]) at first use."""
        rows, heads, _, d = like.shape
        if self.k is None or self.k.shape[1] != rows or self.k.device != like.device:
            self.k = torch.zeros(self.depth, rows, heads, self.slots, d, dtype=like.dtype, device=like.device)
            self.v = torch.zeros_like(self.k)
        return self.k, self.v

    def commit(self, t: int) -> None:
        self.pos += t

    def reset(self) -> None:
        self.pos = 0
        self.k = self.v = self.frame = None


class STBlock(nn.Module):
    """Spatial attention within each frame (rotary over patch positions with `spatial_rope`), causal
    temporal attention across frames, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, causal: bool = True, spatial_rope: bool = False):
        super().__init__()
        self.causal = causal
        self.norm_s, self.spatial = nn.LayerNorm(dim), Attention(dim, heads, rope=spatial_rope)
        self.norm_t, self.temporal = nn.LayerNorm(dim), Attention(dim, heads, rope=True)
        hidden = int(dim * mlp_ratio)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), TanhGELU(), nn.Linear(hidden, dim))

    def make_identity(self) -> None:
        """Zero the three residual branches' output layers: the block passes x through unchanged (and
        still learns, as its output layers get gradients), so it can join a trained stack."""
        for layer in (self.spatial.proj, self.temporal.proj, self.mlp[2]):
            nn.init.zeros_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, tables: Tensor, cache: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
                keep: int = 0, spatial_tables: Tensor | None = None) -> Tensor:
        """x [B, T, N, D], tables: rotary_tables of the frames' absolute indices, cache: see Attention,
        spatial_tables: spatial_rotary_tables of the patches (with spatial_rope) -> x; with keep > 0
        only the last `keep` frames go on through the MLP and out ([B, keep, N, D])."""
        b, t, n, _ = x.shape
        h = rearrange(self.norm_s(x), "b t n d -> (b t) n d")
        x = x + rearrange(self.spatial(h, causal=False, tables=spatial_tables), "(b t) n d -> b t n d", b=b)
        h = rearrange(self.norm_t(x), "b t n d -> (b n) t d")
        h = self.temporal(h, causal=self.causal, tables=tables, cache=cache)
        x = x + rearrange(h, "(b n) t d -> b t n d", n=n)
        x = x[:, -keep:] if keep else x
        return x + self.mlp(self.norm_m(x))


class STTransformer(nn.Module):
    """A stack of ST blocks with a final LayerNorm. Input and output x: [B, T, N, D].

    `forward(x, cache=cache)` treats x as the frames that follow the cached ones (positions
    cache.pos, cache.pos+1, ...); with `update_cache=True` their keys/values are appended and
    cache.pos advances. Without a cache, positions start at 0 and nothing is stored. A cached
    call gives the same output as an uncached call over the whole sequence (tested).
    `spatial_grid` (h, w) with h * w = N: rotary spatial attention over that grid (module docstring).
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, causal: bool = True,
                 spatial_grid: tuple[int, int] | None = None):
        super().__init__()
        self.depth, self.head_dim = depth, dim // heads
        self.spatial_grid = tuple(spatial_grid) if spatial_grid else None
        if self.spatial_grid:
            spatial_rotary_tables(*self.spatial_grid, self.head_dim)  # fails early on a head dim it cannot split
        self._compiled = None  # compile_cached()
        self._spatial: Tensor | None = None  # spatial_tables()
        self.blocks = nn.ModuleList(STBlock(dim, heads, mlp_ratio, causal, spatial_rope=self.spatial_grid is not None)
                                    for _ in range(depth))
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

    def new_cache(self, window: int, max_new: int = 2) -> KVCache:
        return KVCache(self.depth, window, max_new)

    def forward(self, x: Tensor, cache: KVCache | None = None, update_cache: bool | int = False,
                keep: int = 0) -> Tensor:
        """x [B, T, N, D] -> [B, T, N, D]. With a cache: `update_cache` frames of x (True: all, False:
        none; only the last frame may stay uncommitted) join it and cache.pos advances by as many.
        keep > 0: only the last `keep` frames are returned ([B, keep, N, D]), and the last block spends
        nothing past the keys/values on the others."""
        if cache is None:
            tables = rotary_tables(torch.arange(x.shape[1], device=x.device), self.head_dim)
            spatial = self.spatial_tables(x.device)
            for i, block in enumerate(self.blocks):
                x = block(x, tables, keep=keep if i == self.depth - 1 else 0, spatial_tables=spatial)
            return self.norm(x)
        t = x.shape[1]
        commit = t if update_cache is True else int(update_cache)
        if not t - 1 <= commit <= t:
            raise ValueError(f"a cached call commits all its {t} frames or all but the last, got {commit}")
        if t > cache.max_new and not (cache.pos == 0 and t <= cache.slots):  # e.g. a long prompt
            step = cache.max_new  # in pieces the ring holds: frame by frame it is the same computation
            parts = [self.forward(x[:, s : s + step], cache, min(step, commit - s)) for s in range(0, t, step)]
            out = torch.cat(parts, dim=1)
            return out[:, -keep:] if keep else out
        positions, slots, mask = cache.prepare(t, x.device, as_slice=self._compiled is None)
        heads = self.blocks[0].temporal.heads
        kind = x.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
        k, v = cache.buffers(x.new_empty(x.shape[0] * x.shape[2], heads, t, x.shape[-1] // heads, dtype=dtype))
        x = (self._compiled or self._cached_blocks)(x, positions, slots, mask, k, v, keep, self.spatial_tables(x.device))
        cache.commit(commit)
        return x

    def spatial_tables(self, device) -> Tensor | None:
        """spatial_rotary_tables of the grid (None without one), made once per device."""
        if self.spatial_grid is None:
            return None
        if self._spatial is None or self._spatial.device != torch.device(device):
            self._spatial = spatial_rotary_tables(*self.spatial_grid, self.head_dim, device)
        return self._spatial

    def _cached_blocks(self, x: Tensor, positions: Tensor, slots: Tensor | slice, mask: Tensor, k: Tensor, v: Tensor,
                       keep: int = 0, spatial: Tensor | None = None) -> Tensor:
        """The blocks over frames that follow the cached ones (tensors in, no Python state: compilable)."""
        tables = rotary_tables(positions, self.head_dim)
        for i, block in enumerate(self.blocks):
            x = block(x, tables, (k[i], v[i], slots, mask), keep=keep if i == self.depth - 1 else 0, spatial_tables=spatial)
        return self.norm(x)

    def compile_cached(self, mode: str | None = None) -> None:
        """torch.compile the cached path (the World's per-round forward): one graph per frame count
        and batch size, so the first steps pay for compiling. `mode` as torch.compile's, e.g.
        "reduce-overhead" (CUDA graphs) on a GPU."""
        # rotary()'s complex multiply runs as eager code inside the graph (inductor says so once): fine here
        warnings.filterwarnings("ignore", message=".*Torchinductor does not support code generation for complex")
        self._compiled = torch.compile(self._cached_blocks, dynamic=False, mode=mode)
