"""MaskGITSampler: the dynamics model and its sampler settings, stepping a RolloutState frame by frame.

    sampler = MaskGITSampler(dynamics, SampleConfig(steps=3, temperature=0.5))
    state = sampler.start(tokens, actions_in, seeds)   # prompt tokens [B,T0,N], actions into them [B,T0]
    new = sampler.next_tokens(state, actions)          # actions int64 [B] -> the next frame's tokens [B,N]

One frame costs `steps` forwards of the dynamics model over that frame, against a KV cache of the
frames before it (genie.nn.KVCache, a preallocated ring). The newest frame's keys/values are not
written by a forward of their own: the frame waits in the state (`pending`) and joins the cache in
the first round of the next frame, which runs over [pending frame, masked new frame] at once, so a
frame costs `steps` forwards rather than `steps + 1`, with identical logits. `cached=False`
recomputes the whole window every round instead (the reference path).

Randomness is counter-based: round r of frame f of a world with seed s draws
genie.nn.maskgit.uniform(s, f, n, r), the same numbers whatever batch the world is in, for any
number of rounds. The frame counter lives on the device, so a step needs no host round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genie.errors import GenieError
from genie.models.dynamics import Dynamics
from genie.nn import KVCache
from genie.nn.maskgit import maskgit_sample, uniform


@dataclass
class SampleConfig:
    steps: int = 8  # MaskGIT rounds per frame (Genie used 25 on CoinRun)
    temperature: float = 1.0
    context: int = 16  # frames the dynamics model attends to (its training clip length)
    tokenizer_context: int = 4  # frames the tokenizer's decoder attends to (its training clip length)
    lam_context: int = 16  # frames per LAM window when inferring actions

    def check(self) -> None:
        """GenieError naming the first setting out of its range."""
        for name, low in (("steps", 1), ("context", 2), ("tokenizer_context", 1), ("lam_context", 2)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise GenieError(f"sample.{name} must be an integer >= {low}, got {value!r}")
        t = self.temperature
        if not isinstance(t, (int, float, np.floating)) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
            raise GenieError(f"sample.temperature must be a number >= 0 (0: greedy), got {t!r}")


@dataclass
class RolloutState:
    """Everything a batch of rollouts carries from one frame to the next."""

    seeds: Tensor  # int64 [B]: world b's random stream
    frame: Tensor  # int64 [] on the device: frames sampled since start (the stream's counter)
    tokens: Tensor  # int64 [B,T,N]: the last `context` frames' tokens (the uncached path, inspection)
    actions_in: Tensor  # int64 [B,T]: the action into each of those frames
    cache: KVCache | None  # dynamics keys/values of the frames before the pending one (None: uncached)
    decoder_cache: KVCache | None = None  # the tokenizer decoder's, kept by whoever decodes (the World)

    @property
    def batch_size(self) -> int:
        return self.seeds.shape[0]


class MaskGITSampler:
    """See the module docstring."""

    def __init__(self, dynamics: Dynamics, config: SampleConfig, cached: bool = True):
        self.dynamics, self.config, self.cached = dynamics, config, cached

    def start(self, tokens: Tensor, actions_in: Tensor, seeds: Tensor) -> RolloutState:
        """A rollout from prompt tokens int64 [B,T0,N] and the action into each frame [B,T0]
        (frame 0's is the dynamics' no-action id). Frames 0..T0-2 join the cache; the last waits."""
        cache = None
        if self.cached:
            cache = self.dynamics.transformer.new_cache(self.config.context - 1, max_new=2)
            if tokens.shape[1] > 1:
                self.dynamics.step_logits(tokens[:, :-1], actions_in[:, :-1], cache, commit=True)
        frame = torch.zeros((), dtype=torch.int64, device=tokens.device)
        return RolloutState(seeds, frame, tokens, actions_in, cache)

    def next_tokens(self, state: RolloutState, actions: Tensor) -> Tensor:
        """Sample the next frame of every rollout given actions int64 [B] -> tokens int64 [B,N];
        the state moves on by one frame."""
        b, n = state.tokens.shape[0], state.tokens.shape[-1]
        action_in = actions[:, None]
        new = maskgit_sample(
            lambda tokens, i: self.round_logits(state, tokens, action_in, i), b, n, self.dynamics.config.mask_id,
            self.config.steps, self.config.temperature, draw=lambda i: uniform(state.seeds, state.frame, n, i),
            device=state.tokens.device,
        )
        context = self.config.context
        state.tokens = torch.cat((state.tokens, new[:, None]), 1)[:, -context:]
        state.actions_in = torch.cat((state.actions_in, action_in), 1)[:, -context:]
        state.frame += 1
        return new

    def round_logits(self, state: RolloutState, tokens: Tensor, action_in: Tensor, round_: int) -> Tensor:
        """Logits [B,N,V] of the frame being sampled, holding `tokens` [B,N] (mask_id where masked)."""
        if not self.cached:  # recompute the whole window
            keep = self.config.context - 1
            seq = torch.cat((state.tokens[:, -keep:], tokens[:, None]), 1)
            acts = torch.cat((state.actions_in[:, -keep:], action_in), 1)
            return self.dynamics.step_logits(seq, acts)[:, -1]
        if round_ == 0:  # the pending frame joins the cache in the same forward
            seq = torch.cat((state.tokens[:, -1:], tokens[:, None]), 1)
            acts = torch.cat((state.actions_in[:, -1:], action_in), 1)
            return self.dynamics.step_logits(seq, acts, state.cache, commit=1)[:, -1]
        return self.dynamics.step_logits(tokens[:, None], action_in, state.cache)[:, 0]
