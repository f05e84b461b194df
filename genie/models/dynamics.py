"""Dynamics: a spatiotemporal MaskGIT transformer over tokenizer tokens, conditioned on latent actions.

tokens z[B,T,h,w] (+ MASK) -> token embedding + patch position
    + action embedding: frame t+1 gets emb(a_t); frame 0 gets the "no action" embedding
    -> ST transformer (causal in time) -> logits over the tokenizer's codebook [B,T,N,V]

Training masks a fraction r ~ U[0.5, 1) of the tokens of frames 1..T-1 and takes cross-entropy on
the masked ones. Sampling predicts a frame from a whole, unmasked past, which that training rarely
shows (the frames before a target are masked too); with clean_history > 0 that share of the clips
keeps the frames before a random cut k in 1..T-1 unmasked, so frame k is predicted from a whole
past as in sampling (frames after k are masked as before). With context_noise > 0 a share of the
visible tokens is replaced by random codes first (the loss still targets the clean tokens), and
with action_dropout > 0 a share of the actions is replaced by the "no action" id, so the model
also learns the frame that follows without knowing the action: the unconditional prediction that
classifier-free guidance (SampleConfig.guidance) steers away from. With own_context > 0 that share
of the clips sees, at a random frame k, the frame the model draws itself: its greedy prediction of
frame k from the real frames before it (one extra forward, without gradient), as every rollout step
feeds the model a frame it drew; frames before k stay whole, frame k is context (no loss), and the
frames after it are masked and scored against the real tokens as usual. All four apply in training
mode only. Sampling (genie.nn.maskgit) predicts one new frame at a time from a KV cache of past
frames, so a step costs one frame of compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from genie.nn import KVCache, STTransformer
from genie.nn.maskgit import random_mask


@dataclass
class DynamicsConfig:
    vocab_size: int = 1024  # the tokenizer's codebook size
    grid_h: int = 16
    grid_w: int = 16
    num_actions: int = 8
    dim: int = 256
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    mask_low: float = 0.5  # training mask ratio ~ U[mask_low, mask_high)
    mask_high: float = 1.0
    # training only: share of the visible (unmasked) tokens replaced by random codes, so the model
    # learns to predict from imperfect context as in its own rollouts (exposure bias; Jasmine uses 0.1)
    context_noise: float = 0.0
    # training only: share of the clips whose frames before a random cut stay unmasked (see above)
    clean_history: float = 0.0
    # training only: share of the actions a_t replaced by the "no action" id (classifier-free
    # guidance needs the unconditional prediction; 0: the world cannot be guided)
    action_dropout: float = 0.0
    # training only: share of the clips whose frame at a random cut is the model's own greedy prediction
    # of it (exposure bias, as context_noise, but with the errors the model makes itself; see above)
    own_context: float = 0.0
    # spatial attention rotary over each token's column and row (genie.nn.st_transformer): its scores
    # depend on how far apart two tokens are, so shifting the frame by a token is one pattern for all
    spatial_rope: bool = False

    def __post_init__(self):
        for name in ("context_noise", "action_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"dynamics.{name} must be from 0 up to (not including) 1, got {value!r}")
        for name in ("clean_history", "own_context"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"dynamics.{name} must be from 0 to 1, got {value!r}")

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    @property
    def no_action(self) -> int:
        return self.num_actions


class Dynamics(nn.Module):
    """See the module docstring."""

    def __init__(self, config: DynamicsConfig):
        super().__init__()
        c = self.config = config
        self.token_embed = nn.Embedding(c.vocab_size + 1, c.dim)  # + MASK
        self.pos = nn.Parameter(torch.randn(c.grid_h * c.grid_w, c.dim) * 0.02)
        self.action_embed = nn.Embedding(c.num_actions + 1, c.dim)  # + "no action" for frame 0
        self.transformer = STTransformer(c.dim, c.depth, c.heads, c.mlp_ratio, causal=True,
                                         spatial_grid=(c.grid_h, c.grid_w) if c.spatial_rope else None)
        self.head = nn.Linear(c.dim, c.vocab_size)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.action_embed.weight, std=0.02)

    def embed(self, tokens: Tensor, actions_in: Tensor) -> Tensor:
        """tokens int64 [B,T,N], actions_in int64 [B,T] (the action that led into each frame) -> [B,T,N,D]."""
        return self.token_embed(tokens) + self.pos + self.action_embed(actions_in)[:, :, None, :]

    def forward(self, tokens: Tensor, actions: Tensor) -> Tensor:
        """tokens int64 [B,T,h,w] (may hold mask_id), actions int64 [B,T-1] (a_t: frame t -> t+1)
        -> logits [B,T,h*w,V]; the logits of frame t+1 depend on tokens <= t+1 and actions <= t."""
        b = tokens.shape[0]
        none = torch.full((b, 1), self.config.no_action, dtype=actions.dtype, device=actions.device)
        x = self.embed(rearrange(tokens, "b t h w -> b t (h w)"), torch.cat((none, actions), dim=1))
        return self.head(self.transformer(x))

    def loss(self, tokens: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Masked-token cross-entropy on frames 1..T-1 -> (loss, accuracy on masked tokens)."""
        b, t, h, w = tokens.shape
        flat = rearrange(tokens, "b t h w -> b t (h w)")
        inputs, mask = self.training_inputs(flat, generator)
        if self.training and self.config.action_dropout > 0:
            drop = torch.rand(actions.shape, generator=generator, device=actions.device) < self.config.action_dropout
            actions = torch.where(drop, torch.full_like(actions, self.config.no_action), actions)
        if self.training and self.config.own_context > 0 and t > 2:
            inputs, mask = self.own_frame(flat, inputs, mask, actions, generator)
        logits = self(rearrange(inputs, "b t (h w) -> b t h w", h=h), actions)  # through __call__: compile() applies
        target = torch.where(mask, flat, torch.full_like(flat, -100))
        loss = F.cross_entropy(rearrange(logits.float(), "b t n v -> (b t n) v"), target.flatten(), ignore_index=-100)
        accuracy = ((logits.argmax(-1) == flat) & mask).sum() / mask.sum()
        return loss, accuracy

    def training_inputs(self, flat: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Clean tokens int64 [B,T,N] -> (model inputs [B,T,N], mask bool [B,T,N]): frames 1..T-1
        masked at a random ratio, and a `context_noise` share of the visible tokens randomised."""
        c = self.config
        b, t, n = flat.shape
        mask = random_mask((b, t - 1, n), c.mask_low, c.mask_high, generator, flat.device)
        if self.training and c.clean_history > 0:
            cut = torch.randint(1, t, (b, 1), generator=generator, device=flat.device)  # first masked frame
            clean = torch.rand((b, 1), generator=generator, device=flat.device) < c.clean_history
            before = torch.arange(1, t, device=flat.device)[None] < cut  # frames 1..T-1 before the cut
            mask = mask & ~(clean & before)[..., None]
        mask = torch.cat((torch.zeros_like(mask[:, :1]), mask), dim=1)  # frame 0 is never masked
        inputs = torch.where(mask, torch.full_like(flat, c.mask_id), flat)
        if self.training and c.context_noise > 0:
            noisy = (torch.rand(flat.shape, generator=generator, device=flat.device) < c.context_noise) & ~mask
            codes = torch.randint(0, c.vocab_size, flat.shape, generator=generator, device=flat.device)
            inputs = torch.where(noisy, codes, inputs)
        return inputs, mask

    def own_frame(self, flat: Tensor, inputs: Tensor, mask: Tensor, actions: Tensor,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """training_inputs' (inputs, mask) [B,T,N] with an `own_context` share of the clips cut at a random
        frame k in 1..T-2: frames before k real and whole, frame k the model's greedy prediction of it
        from them (visible, no loss), frames after k as they were."""
        c = self.config
        b, t, n = flat.shape
        frame = torch.arange(t, device=flat.device)[None]  # [1, T]
        cut = torch.randint(1, t - 1, (b, 1), generator=generator, device=flat.device)
        own = torch.rand((b, 1), generator=generator, device=flat.device) < c.own_context
        query = torch.where((frame >= cut)[..., None], torch.full_like(flat, c.mask_id), flat)
        with torch.no_grad():  # frame k's logits see only the real frames before it (causal in time)
            drawn = self(rearrange(query, "b t (h w) -> b t h w", h=c.grid_h), actions).argmax(-1)
        before, at = (own & (frame < cut))[..., None], (own & (frame == cut))[..., None]
        inputs = torch.where(before, flat, torch.where(at, drawn, inputs))
        return inputs, mask & ~(before | at)

    def step_logits(self, tokens: Tensor, actions_in: Tensor, cache: KVCache | None = None,
                    commit: bool | int = False, last: bool = False) -> Tensor:
        """Logits of the frame(s) after the cached ones: tokens int64 [B,T,N] (may hold mask_id),
        actions_in int64 [B,T] (the action into each of these frames) -> [B,T,N,V] ([B,1,N,V] with
        last=True: the last frame's alone, with nothing spent on the others' outputs).

        With commit=True the frames' keys/values join the cache (call it with the final tokens);
        commit=T-1 commits all but the last (final tokens of a frame, then one being sampled).
        Without a cache, tokens are a whole window starting at position 0."""
        x = self.transformer(self.embed(tokens, actions_in), cache=cache, update_cache=commit, keep=int(last))
        return self.head(x)
