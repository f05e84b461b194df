"""Stage 1: train the VideoTokenizer (reconstruction MSE + VQ losses).

With train.decoder_only (and train.init naming a trained tokenizer) the encoder and codebook stay
frozen and the decoder alone learns to rebuild frames from the tokens the encoder gives, with the
reconstruction MSE as its loss: the tokens do not change, so a world trained on the tokenizer it
started from takes the new decoder as it is (`genie export RUN --world WORLD`). A model.decoder_depth
above the bundle's grows the decoder (VideoTokenizer.load_weights).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from genie.config import from_dict
from genie.eval.metrics import psnr, ssim
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer, float_to_frames, frames_to_float
from genie.pictures import frame_grid
from genie.training.common import StageModule, TrainConfig, make_optimizer


class TokenizerModule(StageModule):
    """Wraps VideoTokenizer for training; batches are {"frames": uint8 [B,T,H,W,3], ...}.

    `model` and `train` are the config sections as plain dicts (saved in the checkpoint).
    Reconstruction grids (originals above reconstructions) go to `sample_dir` and to wandb.
    """

    def __init__(self, model: dict, train: dict, sample_dir: str | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["sample_dir"])
        self.model_config = from_dict(TokenizerConfig, model, "model")
        self.train_config = from_dict(TrainConfig, train, "train")
        self.model = VideoTokenizer(self.model_config)
        if self.train_config.decoder_only:
            for p in self.model.encoder_parameters():
                p.requires_grad_(False)
            self.train(self.training)  # Lightning may never call train(): the frozen parts start in eval mode
        self.sample_dir = Path(sample_dir) if sample_dir else None
        self._val_counts = None
        self._val_example = None

    @property
    def tokenizer(self) -> VideoTokenizer:
        """The model (the name train.init loads weights into)."""
        return self.model

    def train(self, mode: bool = True):
        super().train(mode)
        if self.train_config.decoder_only:  # no dead-code restarts: the codebook must not move
            self.model.encoder.eval()
            self.model.vq.eval()
        return self

    def forward(self, frames):
        return self.model(frames)

    def training_step(self, batch, batch_idx):
        frames = batch["frames"]
        if self.train_config.decoder_only:
            with torch.no_grad():
                vq = self.model.encode(frames)
            recon = self.model.decode(vq.indices)  # the codes' vectors as the decoder reads them at play time
            loss = mse = F.mse_loss(recon.float(), frames_to_float(frames))
            mse = mse.detach()
        else:
            recon, vq = self.model(frames)
            loss, mse = self.model.loss(frames, recon, vq)
        self.log_dict(
            {
                "train/loss": loss,
                "train/mse": mse,
                "train/vq_loss": vq.loss,
                "train/psnr": 10 * torch.log10(4.0 / mse),  # pixel range [-1,1] spans 2
                "train/perplexity": vq.perplexity,
                "train/usage": vq.usage,
            },
            prog_bar=False,
        )
        self.log("loss", loss, prog_bar=True, logger=False)
        return loss

    def on_validation_epoch_start(self):
        self._val_counts = torch.zeros(self.model_config.codebook_size, device=self.device)
        self._val_example = None

    def validation_step(self, batch, batch_idx):
        frames = batch["frames"]
        recon, vq = self.model(frames)
        out = float_to_frames(recon)
        frame_psnr = psnr(out, frames).clamp(max=100.0)
        frame_ssim = ssim(out, frames)
        self._val_counts += torch.bincount(vq.indices.flatten(), minlength=self._val_counts.numel())
        b = frames.shape[0]
        self.log_dict(
            {
                "val/mse": F.mse_loss(recon.float(), frames_to_float(frames)),
                "val/psnr": frame_psnr.mean(),
                "val/ssim": frame_ssim.mean(),
            },
            batch_size=b,
            sync_dist=True,
        )
        if batch_idx == 0:
            self._val_example = (frames[:4].cpu(), out[:4].cpu())

    def on_validation_epoch_end(self):
        counts = self.trainer.strategy.reduce(self._val_counts, reduce_op="sum")
        self.log("val/codebook_usage", (counts > 0).float().mean(), sync_dist=False)
        if self._val_example is not None and self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self.save_recon_grid(*self._val_example)

    def save_recon_grid(self, frames: torch.Tensor, recon: torch.Tensor) -> None:
        rows = []
        for original, rebuilt in zip(frames.numpy(), recon.numpy()):
            rows += [original, rebuilt]
        self.save_grid("recon", frame_grid(rows), "val/reconstructions", "originals above reconstructions")

    def configure_optimizers(self):
        return make_optimizer(self.model, self.train_config)

    def export(self) -> tuple[dict, dict]:
        """-> (bundle components config, weights) for genie.bundle.save_bundle."""
        weights = {f"tokenizer.{k}": v for k, v in self.model.state_dict().items()}
        return {"tokenizer": asdict(self.model_config)}, weights

    def tokens_per_sample(self, clip_len: int) -> int:
        gh, gw = self.model_config.grid
        return clip_len * gh * gw

    def bundle_extras(self) -> dict:
        return {}
