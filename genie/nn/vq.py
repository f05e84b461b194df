"""Vector quantizer with l2-normalised codes, straight-through gradients and dead-code restarts.

Inputs are projected to a small code dimension and l2-normalised, so the nearest code is the one
with the highest cosine similarity (Yu et al., "Vector-quantized image modeling with improved
VQGAN"). Codes that go unused for a while are restarted on random recent inputs, which keeps the
codebook alive (essential for the tiny action codebook of the LAM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class VQOutput:
    quantized: Tensor  # [..., dim] straight-through quantized input, projected back to dim
    indices: Tensor  # [...] int64 code ids
    loss: Tensor  # scalar: codebook + beta * commitment
    perplexity: Tensor  # scalar: exp(entropy) of this batch's code histogram
    usage: Tensor  # scalar: fraction of codes used at least once in this batch
    similarity: Tensor  # [..., K] cosine similarity of each input to every code (indices = argmax)


class VectorQuantizer(nn.Module):
    """Quantize x [..., dim] to one of `codebook_size` codes.

    Args:
        dim: width of the input and of the returned quantized vectors.
        codebook_size: number of codes K.
        code_dim: width of the codes (small, e.g. 8-32); inputs are projected to it.
        beta: weight of the commitment loss ||z - sg(e)||^2.
        restart_every: in training, a code that no input picked for this many forward calls
            is dead and restarted on a random latent of the current batch (0: never).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        code_dim: int = 32,
        beta: float = 0.25,
        restart_every: int = 100,
    ):
        super().__init__()
        self.codebook_size, self.beta, self.restart_every = codebook_size, beta, restart_every
        self.proj_in = nn.Linear(dim, code_dim)
        self.proj_out = nn.Linear(code_dim, dim)
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim))
        self.register_buffer("idle", torch.zeros(codebook_size))  # training calls since last picked

    def codes(self) -> Tensor:
        """The l2-normalised codebook [K, code_dim]."""
        return F.normalize(self.codebook, dim=-1)

    def embed(self, indices: Tensor) -> Tensor:
        """Code ids [...] -> quantized vectors [..., dim] (the decoder's input)."""
        return self.proj_out(F.embedding(indices, self.codes()))

    def forward(self, x: Tensor) -> VQOutput:
        z = F.normalize(self.proj_in(x), dim=-1)  # [..., c]
        flat = z.reshape(-1, z.shape[-1]).float()
        codes = self.codes().float()
        similarity = flat @ codes.t()  # [M, K]
        indices = similarity.argmax(dim=-1)  # nearest code = highest cosine similarity
        e = codes[indices]
        loss = F.mse_loss(e, flat.detach()) + self.beta * F.mse_loss(flat, e.detach())
        quantized = flat + (e - flat).detach()  # straight-through estimator

        counts = torch.bincount(indices, minlength=self.codebook_size).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        usage = (counts > 0).float().mean()
        if self.training:
            self._track_usage(counts, flat.detach())

        quantized = self.proj_out(quantized.to(x.dtype).reshape(z.shape))
        return VQOutput(quantized, indices.reshape(z.shape[:-1]), loss, perplexity, usage,
                        similarity.reshape(*z.shape[:-1], self.codebook_size))

    @torch.compiler.disable  # eager: it edits the codebook in place (.data), outside autograd's view
    @torch.no_grad()
    def _track_usage(self, counts: Tensor, latents: Tensor) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        self.idle.add_(1).mul_(counts == 0)
        if self.restart_every:
            self.restart_dead_codes(latents)

    @torch.no_grad()
    def restart_dead_codes(self, latents: Tensor) -> None:
        """Move dead codes (idle for restart_every calls) onto random rows of `latents` [M, code_dim].

        No host sync: every code is given a candidate and only dead ones take it.
        Under torch.distributed, rank 0 picks the replacements and broadcasts them, so every
        rank keeps the same codebook.
        """
        dead = self.idle >= self.restart_every
        picks = torch.randint(0, latents.shape[0], (self.codebook_size,), device=latents.device)
        noise = 0.01 * torch.randn_like(latents[picks])
        replacement = F.normalize(latents[picks] + noise, dim=-1).to(self.codebook.dtype)
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(replacement, src=0)
        self.codebook.data.copy_(torch.where(dead[:, None], replacement, self.codebook.data))
        self.idle.masked_fill_(dead, 0)
