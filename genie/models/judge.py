"""The judge: a small supervised inverse-dynamics model (IDM) that reads real actions off frames.

It is for evaluation only. Latent actions are found without labels, so nothing says how good a
latent-action probe *could* be: some actions leave no trace in two frames (CoinRun's jump key in
mid-air), and momentum makes a frame pair show the player's velocity more than the key pressed.
The judge is the reference: trained with the true actions that `genie record` stores, its accuracy
on the same transitions is what a probe is read against; and it reads the frames a world
generates, so "does LEFT move the world left?" is answered by the same eyes that read the game.

This module is the network alone; genie/eval/judge.py loads a trained one and reads footage with
it (Judge), genie/training/judge.py trains it (`genie judge train`).

Input: frames t-history .. t+1 (history 1 by default, so it can read momentum; frames before an
episode's first repeat the first), as uint8 [B, history+2, H, W, 3]. The network stacks them with
their consecutive differences as channels, four stride-2 3x3 conv blocks (64 px -> 4 px), the
mean and max of the map over positions (what moved reads the same wherever it is), and an MLP; output: logits over the footage's action classes
(data_pipeline.actions: CoinRun's 6 movement classes, else one class per action).

Saved as a bundle like every model (config.json + model.safetensors, component "judge"), with its
held-out accuracy and majority baseline beside the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import Tensor, nn

from genie.errors import GenieError


@dataclass
class JudgeConfig:
    height: int = 64
    width: int = 64
    classes: list[str] = field(default_factory=list)  # class names (data_pipeline.actions)
    history: int = 1  # frames before t it sees
    channels: int = 32  # of the first conv block; doubles per block up to 4x
    hidden: int = 256


class InverseDynamics(nn.Module):
    """frames uint8 [B, history+2, H, W, 3] -> logits [B, num_classes]."""

    def __init__(self, config: JudgeConfig):
        super().__init__()
        if config.height % 16 or config.width % 16:
            raise GenieError(f"judge frames must be multiples of 16 px, got {config.height}x{config.width}")
        if len(config.classes) < 2:
            raise GenieError(f"a judge needs at least 2 action classes, got {config.classes}")
        self.config = config
        frames = config.history + 2
        c_in = 3 * frames + 3 * (frames - 1)  # the frames and their consecutive differences
        widths = [config.channels * m for m in (1, 2, 4, 4)]
        blocks, c = [], c_in
        for w in widths:
            blocks += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.GroupNorm(8, w), nn.GELU()]
            c = w
        self.convs = nn.Sequential(*blocks)
        # mean and max over positions: what moved reads the same wherever it is on screen
        self.head = nn.Sequential(nn.Linear(2 * c, config.hidden), nn.GELU(), nn.Linear(config.hidden, len(config.classes)))

    def forward(self, frames: Tensor) -> Tensor:
        x = frames.float() / 127.5 - 1.0  # [B, F, H, W, 3]
        x = torch.cat([x, x[:, 1:] - x[:, :-1]], dim=1)  # [B, 2F-1, H, W, 3]
        x = self.convs(rearrange(x, "b f h w c -> b (f c) h w"))  # [B, C, H/16, W/16]
        return self.head(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))


def windows(video: Tensor, history: int) -> Tensor:
    """Every transition's judge input: uint8 [B, T, H, W, 3] -> [B, T-1, history+2, H, W, 3];
    window t holds frames t-history .. t+1, frames before 0 repeating frame 0."""
    t = video.shape[1]
    idx = torch.arange(t - 1, device=video.device)[:, None] + torch.arange(-history, 2, device=video.device)
    return video[:, idx.clamp(min=0)]
