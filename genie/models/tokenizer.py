"""VideoTokenizer: an ST-ViViT VQ-VAE that turns frames into a grid of discrete tokens and back.

frames uint8 [B,T,H,W,3] -> patchify -> ST encoder (causal in time) -> VQ -> tokens [B,T,h,w]
tokens -> code embeddings -> ST decoder (causal in time) -> unpatchify -> frames

Causal in time: frame t's tokens depend on frames <= t only, and decoding frame t needs the
tokens of frames <= t only, so the World can decode one new frame at a time with a KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from genie.nn import KVCache, STTransformer, VectorQuantizer, VQOutput


@dataclass
class TokenizerConfig:
    height: int = 64
    width: int = 64
    patch_size: int = 4
    dim: int = 256
    encoder_depth: int = 4
    decoder_depth: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    codebook_size: int = 1024
    code_dim: int = 32
    beta: float = 0.25  # commitment weight
    restart_every: int = 100  # a code unused for this many training steps is restarted

    @property
    def grid(self) -> tuple[int, int]:
        return self.height // self.patch_size, self.width // self.patch_size


def patchify(x: Tensor, p: int) -> Tensor:
    """[B,T,H,W,C] -> [B,T,(H/p)*(W/p),p*p*C]"""
    return rearrange(x, "b t (h p1) (w p2) c -> b t (h w) (p1 p2 c)", p1=p, p2=p)


def unpatchify(x: Tensor, p: int, h: int) -> Tensor:
    """[B,T,h*w,p*p*C] -> [B,T,h*p,w*p,C]"""
    return rearrange(x, "b t (h w) (p1 p2 c) -> b t (h p1) (w p2) c", h=h, p1=p, p2=p)


def check_patches(height: int, width: int, patch_size: int) -> None:
    if height % patch_size or width % patch_size:
        raise ValueError(f"frame {height}x{width} is not divisible by patch_size {patch_size}")


def frames_to_float(frames: Tensor) -> Tensor:
    """uint8 frames in [0,255] -> float32 in [-1,1] (the models' pixel range)."""
    return frames.float().div(127.5).sub(1.0)


def float_to_frames(x: Tensor) -> Tensor:
    """float pixels in [-1,1] -> uint8 frames (rounded, clamped)."""
    return x.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


class VideoTokenizer(nn.Module):
    """ST-ViViT VQ-VAE. See the module docstring for the data flow."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        c = self.config = config
        check_patches(c.height, c.width, c.patch_size)
        gh, gw = c.grid
        patch_dim = c.patch_size * c.patch_size * 3
        self.embed = nn.Linear(patch_dim, c.dim)
        self.enc_pos = nn.Parameter(torch.randn(gh * gw, c.dim) * 0.02)
        self.encoder = STTransformer(c.dim, c.encoder_depth, c.heads, c.mlp_ratio, causal=True)
        self.vq = VectorQuantizer(
            c.dim, c.codebook_size, c.code_dim, c.beta, restart_every=c.restart_every
        )
        self.dec_pos = nn.Parameter(torch.randn(gh * gw, c.dim) * 0.02)
        self.decoder = STTransformer(c.dim, c.decoder_depth, c.heads, c.mlp_ratio, causal=True)
        self.head = nn.Linear(c.dim, patch_dim)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encoder_parameters(self) -> list[nn.Parameter]:
        """What decides the tokens: the patch embedding, the encoder, the VQ's input projection and
        codebook. Frozen (and the VQ in eval mode, so no dead code restarts), a decoder trained
        further reads exactly the tokens it read before."""
        return [*self.embed.parameters(), self.enc_pos, *self.encoder.parameters(),
                *self.vq.proj_in.parameters(), self.vq.codebook]

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """load_state_dict, which also takes the weights of a tokenizer whose decoder has fewer blocks
        (else alike): the blocks it lacks are appended as identities (STBlock.make_identity), so this
        one reconstructs exactly as that one did until its decoder trains further. ValueError if the
        weights do not fit that way."""
        have = len({k.split(".")[2] for k in state if k.startswith("decoder.blocks.")})
        added = tuple(f"decoder.blocks.{i}." for i in range(have, self.config.decoder_depth))
        ours = set(self.state_dict())
        missing, unexpected = sorted(ours - set(state)), sorted(set(state) - ours)
        if unexpected or any(not k.startswith(added) for k in missing):
            raise ValueError(f"weights of another tokenizer (missing {missing[:2]}, unexpected {unexpected[:2]})")
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as err:  # a shape differs
            raise ValueError(f"weights of another tokenizer ({str(err).splitlines()[-1].strip()})") from None
        for block in self.decoder.blocks[have:]:
            block.make_identity()

    def encode(self, frames: Tensor) -> VQOutput:
        """frames uint8 [B,T,H,W,3] -> VQOutput: indices [B,T,h,w] int64, quantized [B,T,h*w,D]."""
        x = self.embed(patchify(frames_to_float(frames), self.config.patch_size)) + self.enc_pos
        vq = self.vq(self.encoder(x))
        vq.indices = rearrange(vq.indices, "b t (h w) -> b t h w", h=self.config.grid[0])
        return vq

    def decode_latents(self, z: Tensor, cache: KVCache | None = None, update_cache: bool = False) -> Tensor:
        """Quantized vectors [B,T,N,D] -> pixels float [B,T,H,W,3] in about [-1,1]."""
        x = self.decoder(z + self.dec_pos, cache=cache, update_cache=update_cache)
        return unpatchify(self.head(x), self.config.patch_size, self.config.grid[0])

    def decode(self, indices: Tensor, cache: KVCache | None = None, update_cache: bool = False) -> Tensor:
        """Token ids [B,T,h,w] -> pixels float [B,T,H,W,3] in about [-1,1].

        With a decoder cache (`self.decoder.new_cache(window)`), `indices` are the frames that
        follow the cached ones, so a rollout decodes one new frame per call.
        """
        z = self.vq.embed(rearrange(indices, "b t h w -> b t (h w)"))
        return self.decode_latents(z, cache, update_cache)

    def forward(self, frames: Tensor) -> tuple[Tensor, VQOutput]:
        """frames uint8 [B,T,H,W,3] -> (reconstruction float [B,T,H,W,3] in [-1,1], VQOutput)."""
        vq = self.encode(frames)
        return self.decode_latents(vq.quantized), vq

    def loss(self, frames: Tensor, recon: Tensor, vq: VQOutput) -> tuple[Tensor, Tensor]:
        """-> (total loss, plain reconstruction MSE) of forward(frames) = (recon, vq): pixel MSE + VQ losses."""
        mse = F.mse_loss(recon.float(), frames_to_float(frames))
        return mse + vq.loss, mse.detach()
