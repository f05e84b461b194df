"""LatentActionModel: discrete actions learned from pixels alone (Genie's LAM).

video x[0..T-1] uint8 -> patchify, plus one learned "action token" per frame -> ST encoder
    (causal) -> action token of frame t+1 minus that of frame t -> VQ with a tiny codebook
    (num_actions codes) -> a_t, one action per transition t -> t+1
decoder: ST decoder over frames 0..T-2 with a_t added to every patch of frame t
    -> predicts frame t+1 (pixels)

The decoder never sees frame t+1, so everything it needs to know about the change from t to t+1
must pass through the num_actions-way bottleneck. The action token attends to every patch, so a
small moving sprite is not averaged away by a large static (or scrolling) background; taking the
difference of consecutive tokens removes what all frames share, so at initialisation the
quantizer's inputs already differ by transition instead of collapsing onto one code. After training only the encoder and quantizer
are used (World.infer_actions); the action ids index the dynamics model's action embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genie.nn import STTransformer, VectorQuantizer, VQOutput
from genie.tokenizer import frames_to_float, patchify, unpatchify


@dataclass
class LAMConfig:
    height: int = 64
    width: int = 64
    patch_size: int = 8
    dim: int = 128
    encoder_depth: int = 3
    decoder_depth: int = 3
    heads: int = 4
    mlp_ratio: float = 4.0
    num_actions: int = 8
    code_dim: int = 16
    beta: float = 0.25
    restart_every: int = 50

    @property
    def grid(self) -> tuple[int, int]:
        return self.height // self.patch_size, self.width // self.patch_size


@dataclass
class LAMOutput:
    recon: Tensor  # [B,T-1,H,W,3] float, predicted frames 1..T-1 in about [-1,1]
    actions: Tensor  # [B,T-1] int64 latent action of each transition
    vq: VQOutput


class LatentActionModel(nn.Module):
    """See the module docstring. Frames are uint8 [B,T,H,W,3] with T >= 2."""

    def __init__(self, config: LAMConfig):
        super().__init__()
        c = self.config = config
        if c.height % c.patch_size or c.width % c.patch_size:
            raise ValueError(f"frame {c.height}x{c.width} is not divisible by patch_size {c.patch_size}")
        gh, gw = c.grid
        patch_dim = c.patch_size * c.patch_size * 3
        self.enc_embed = nn.Linear(patch_dim, c.dim)
        self.enc_pos = nn.Parameter(torch.randn(gh * gw, c.dim) * 0.02)
        self.action_token = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.encoder = STTransformer(c.dim, c.encoder_depth, c.heads, c.mlp_ratio, causal=True)
        self.vq = VectorQuantizer(c.dim, c.num_actions, c.code_dim, c.beta, restart_every=c.restart_every)
        self.dec_embed = nn.Linear(patch_dim, c.dim)
        self.dec_pos = nn.Parameter(torch.randn(gh * gw, c.dim) * 0.02)
        self.decoder = STTransformer(c.dim, c.decoder_depth, c.heads, c.mlp_ratio, causal=True)
        self.head = nn.Linear(c.dim, patch_dim)

    def encode(self, frames: Tensor) -> VQOutput:
        """frames uint8 [B,T,H,W,3] -> VQOutput over the T-1 transitions (indices [B,T-1])."""
        x = self.enc_embed(patchify(frames_to_float(frames), self.config.patch_size)) + self.enc_pos
        token = self.action_token.expand(*x.shape[:2], 1, -1)  # [B,T,1,D]
        h = self.encoder(torch.cat((token, x), dim=2))[:, :, 0]  # [B,T,D] action tokens; t+1 saw frames <= t+1
        return self.vq(h[:, 1:] - h[:, :-1])  # what changed from t to t+1 -> one code per transition

    def infer_actions(self, frames: Tensor) -> Tensor:
        """frames uint8 [B,T,H,W,3] -> latent actions int64 [B,T-1]."""
        return self.encode(frames).indices

    def forward(self, frames: Tensor) -> LAMOutput:
        vq = self.encode(frames)
        past = patchify(frames_to_float(frames[:, :-1]), self.config.patch_size)  # frames 0..T-2
        x = self.dec_embed(past) + self.dec_pos + vq.quantized[:, :, None, :]  # a_t on frame t
        recon = unpatchify(self.head(self.decoder(x)), self.config.patch_size, self.config.grid[0])
        return LAMOutput(recon, vq.indices, vq)

    def action_embeddings(self) -> Tensor:
        """The quantized vector of every latent action [num_actions, dim] (for inspection)."""
        return self.vq.embed(torch.arange(self.config.num_actions, device=self.vq.codebook.device))


def lam_loss(frames: Tensor, out: LAMOutput) -> tuple[Tensor, Tensor]:
    """-> (total loss, reconstruction MSE) for frames uint8 [B,T,H,W,3]."""
    mse = (out.recon.float() - frames_to_float(frames[:, 1:])).pow(2).mean()
    return mse + out.vq.loss, mse

