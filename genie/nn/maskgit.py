"""MaskGIT building blocks: training masks, the cosine unmasking schedule, and the sampler.

Randomness is counter-based: `uniform(seeds, counter, n, stream)` hashes (seed, counter, stream,
index) into floats, so world b of a batch draws exactly the numbers it would draw alone with the
same seed, on any device, without a torch.Generator per world and without host syncs (the
counter may be a device tensor). The sampler uses counter = frame and stream = MaskGIT round.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

_MASK31 = 0x7FFFFFFF
SEED_LIMIT = 2**31  # seeds are hashed as 31-bit values: 0 .. SEED_LIMIT - 1 draw distinct numbers
_MULT = 0x45D9F3B  # < 2^27, so products of 31-bit values fit in int64


def _mix(x: Tensor) -> Tensor:
    """An integer hash on int64 tensors holding 31-bit values."""
    x = (((x >> 16) ^ x) * _MULT) & _MASK31
    x = (((x >> 16) ^ x) * _MULT) & _MASK31
    return (x >> 16) ^ x


def uniform(seeds: Tensor, counter: int | Tensor, n: int, stream: int = 0) -> Tensor:
    """Deterministic uniforms in (0, 1): seeds int64 [B], a counter (int or int64 tensor []), a
    stream id, n per seed -> [B, n]. Distinct (counter, stream) pairs give independent draws."""
    idx = torch.arange(n, device=seeds.device, dtype=torch.int64)
    counter = torch.as_tensor(counter, dtype=torch.int64, device=seeds.device)
    key = _mix((counter & _MASK31) ^ _mix(torch.full_like(counter, stream & _MASK31)))
    x = _mix((seeds[:, None] & _MASK31) ^ _mix(key))
    x = _mix(x ^ ((idx[None, :] * 0x9E37) & _MASK31))
    return (x.to(torch.float64) + 0.5) / 2**31


def random_mask(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None = None,
                device=None) -> Tensor:
    """Bool mask [..., N]: each row masks a fraction r ~ U[low, high) of its N positions (at least one)."""
    *rows, n = shape
    ratio = low + (high - low) * torch.rand(*rows, 1, generator=generator, device=device)
    count = (ratio * n).ceil().clamp(1, n)  # [..., 1]
    ranks = torch.rand(*rows, n, generator=generator, device=device).argsort(dim=-1).argsort(dim=-1)
    return ranks < count


def unmask_schedule(n: int, steps: int) -> list[int]:
    """Tokens still masked after each of `steps` rounds (cosine schedule, strictly decreasing, ends at 0)."""
    left, out = n, []
    for i in range(steps):
        target = math.floor(n * math.cos(math.pi / 2 * (i + 1) / steps))
        left = max(0, min(target, left - 1))
        out.append(left)
    out[-1] = 0
    return out


@torch.no_grad()
def maskgit_sample(
    logits_fn: Callable[[Tensor, int], Tensor],
    batch: int,
    n: int,
    mask_id: int,
    steps: int,
    temperature: float,
    draw: Callable[[int], Tensor],
    device=None,
    codes: Tensor | None = None,
    mbr: float = 0.0,
) -> Tensor:
    """Sample n tokens per batch row by confidence-ranked iterative unmasking.

    Args:
        logits_fn: (tokens int64 [B, n] (mask_id where masked), round) -> logits [B, n, V].
        steps: rounds; after round i, unmask_schedule(n, steps)[i] tokens stay masked.
        temperature: softmax temperature; 0 is greedy: the most likely token (or the mbr pick).
        draw: round -> uniforms [B, n] in (0, 1) (e.g. from `uniform`), one per token.
        codes, mbr: with temperature 0 and mbr > 0, each token is the minimum-Bayes-risk pick
            instead of the most likely one: the code of `codes` [V, D] (l2-normalised) nearest
            the expected code vector under softmax(logits / mbr), ranked by that cosine.
    Returns tokens int64 [B, n]. Each round samples every masked token, then keeps the most
    confident (highest probability) ones and re-masks the rest.
    """
    tokens = torch.full((batch, n), mask_id, dtype=torch.int64, device=device)
    masked = torch.ones(batch, n, dtype=torch.bool, device=device)
    for i, keep_masked in enumerate(unmask_schedule(n, steps)):
        logits = logits_fn(tokens, i).float()
        probs = confidence = None
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            u = draw(i).to(probs.dtype).unsqueeze(-1)  # inverse-CDF sampling, one uniform per token
            sampled = torch.searchsorted(probs.cumsum(dim=-1), u * probs.sum(-1, keepdim=True)).squeeze(-1)
            sampled = sampled.clamp_max(probs.shape[-1] - 1)
        elif mbr > 0:
            mean = torch.softmax(logits / mbr, dim=-1) @ codes  # the expected code vector [B, n, D]
            confidence, sampled = (mean @ codes.T).max(dim=-1)
        else:
            sampled = logits.argmax(dim=-1)
        candidate = torch.where(masked, sampled, tokens)
        if keep_masked == 0:  # the last round ranks nothing
            return candidate
        if confidence is None:
            probs = torch.softmax(logits, dim=-1) if probs is None else probs
            confidence = probs.gather(-1, sampled[..., None]).squeeze(-1)
        confidence = torch.where(masked, confidence, torch.full_like(confidence, math.inf))
        lowest = confidence.argsort(dim=-1)[:, :keep_masked]  # least confident stay masked
        masked = torch.zeros_like(masked).scatter_(1, lowest, True)
        tokens = torch.where(masked, torch.full_like(candidate, mask_id), candidate)
    return tokens
