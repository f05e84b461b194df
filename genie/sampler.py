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

Classifier-free guidance (`guidance` g != 1, for a dynamics model trained with action_dropout):
every round also predicts the frame with the "no action" id in place of a_t, and samples from
uncond + g * (cond - uncond), which makes the action's effect g times as strong (g = 1: plain
conditional sampling, one forward a round; otherwise two). The past frames keep their actions.

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
    guidance: float = 1.0  # classifier-free guidance scale on the action (1: none; needs dynamics.action_dropout > 0)
    # greedy picks (temperature 0) by minimum Bayes risk: each token is the code nearest the expected
    # code vector under softmax(logits / mbr) rather than the most likely code (0: the most likely)
    mbr: float = 0.0

    def check(self) -> None:
        """GenieError naming the first setting out of its range."""
        for name, low in (("steps", 1), ("context", 2), ("tokenizer_context", 1), ("lam_context", 2)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise GenieError(f"sample.{name} must be an integer >= {low}, got {value!r}")
        for name, meaning in (("temperature", "0: greedy"), ("guidance", "1: none"), ("mbr", "0: the most likely code")):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise GenieError(f"sample.{name} must be a number >= 0 ({meaning}), got {v!r}")
        if self.mbr > 0 and self.temperature > 0:
            raise GenieError(f"sample.mbr {self.mbr:g} picks greedy tokens: it needs sample.temperature 0, "
                             f"got {self.temperature:g}")


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

    def __init__(self, dynamics: Dynamics, config: SampleConfig, cached: bool = True, codes: Tensor | None = None):
        """codes: the tokenizer's l2-normalised codebook [V, D], which sample.mbr > 0 needs."""
        self.dynamics, self.config, self.cached, self.codes = dynamics, config, cached, codes
        self.check(config)

    def check(self, config: SampleConfig) -> None:
        """GenieError unless `config` suits this dynamics model."""
        config.check()
        if config.guidance != 1 and self.dynamics.config.action_dropout == 0:
            raise GenieError(f"sample.guidance {config.guidance:g}: this world's dynamics was trained without "
                             "action dropout (dynamics.action_dropout 0), so it has no unconditional prediction "
                             "to guide against; use guidance 1")
        if config.mbr > 0 and self.codes is None:
            raise GenieError(f"sample.mbr {config.mbr:g} needs the tokenizer's codebook: "
                             "MaskGITSampler(..., codes=tokenizer.vq.codes())")

    def start(self, tokens: Tensor, actions_in: Tensor, seeds: Tensor) -> RolloutState:
        """A rollout from prompt tokens int64 [B,T0,N] and the action into each frame [B,T0]
        (frame 0's is the dynamics' no-action id). Frames 0..T0-2 join the cache; the last waits."""
        cache = None
        if self.cached:
            cache = self.dynamics.transformer.new_cache(self.config.context - 1, max_new=2)
            if tokens.shape[1] > 1:
                self.dynamics.step_logits(tokens[:, :-1], actions_in[:, :-1], cache, commit=True, last=True)
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
            device=state.tokens.device, codes=self.codes, mbr=self.config.mbr,
        )
        context = self.config.context
        state.tokens = torch.cat((state.tokens, new[:, None]), 1)[:, -context:]
        state.actions_in = torch.cat((state.actions_in, action_in), 1)[:, -context:]
        state.frame += 1
        return new

    def round_logits(self, state: RolloutState, tokens: Tensor, action_in: Tensor, round_: int) -> Tensor:
        """Logits [B,N,V] of the frame being sampled, holding `tokens` [B,N] (mask_id where masked),
        guided when config.guidance != 1."""
        cond = self.conditional_logits(state, tokens, action_in, round_)
        g = self.config.guidance
        if g == 1:
            return cond
        # the pending frame joined the cache in the conditional forward of round 0: round >= 1 from here
        uncond = self.conditional_logits(state, tokens, torch.full_like(action_in, self.dynamics.config.no_action),
                                         max(round_, 1)).float()
        return uncond + g * (cond.float() - uncond)

    def conditional_logits(self, state: RolloutState, tokens: Tensor, action_in: Tensor, round_: int) -> Tensor:
        """The model's logits [B,N,V] of the frame being sampled given the action into it."""
        if not self.cached:  # recompute the whole window
            keep = self.config.context - 1
            seq = torch.cat((state.tokens[:, -keep:], tokens[:, None]), 1)
            acts = torch.cat((state.actions_in[:, -keep:], action_in), 1)
            return self.dynamics.step_logits(seq, acts, last=True)[:, 0]
        if round_ == 0:  # the pending frame joins the cache in the same forward
            seq = torch.cat((state.tokens[:, -1:], tokens[:, None]), 1)
            acts = torch.cat((state.actions_in[:, -1:], action_in), 1)
            return self.dynamics.step_logits(seq, acts, state.cache, commit=1, last=True)[:, 0]
        return self.dynamics.step_logits(tokens[:, None], action_in, state.cache)[:, 0]
