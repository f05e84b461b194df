"""Stage 2: co-train the latent-action model and the MaskGIT dynamics on a frozen tokenizer.

Per batch of clips (uint8 [B,T,H,W,3]): the frozen tokenizer gives tokens [B,T,h,w]; the LAM
infers actions a[B,T-1] from pixels and is trained to reconstruct frames 1..T-1 from frames
0..T-2 plus a; the dynamics model learns masked-token prediction given tokens and those actions
(as ids, so no gradient flows from the dynamics into the LAM). Loss = LAM loss + dynamics CE.

With train.lam_steps = N the two train one after the other instead: steps 0..N-1 the LAM alone
(no tokenizer, no dynamics), then the LAM is frozen (eval mode, no gradient) and the dynamics
learns on the actions it infers, which no longer shift under it. With train.init the LAM and/or the
dynamics start from a world bundle's weights (genie.training.run.bundle_weights), and with
train.freeze_lam the bundle's LAM stays frozen from the first step.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from genie.config import from_dict
from genie.eval.metrics import psnr
from genie.models.dynamics import Dynamics, DynamicsConfig
from genie.models.lam import LAMConfig, LatentActionModel
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer, float_to_frames
from genie.pictures import frame_grid
from genie.training.common import StageModule, TrainConfig, make_optimizer
from genie.world import SampleConfig, World


class WorldModule(StageModule):
    """Sections arrive as plain dicts (saved in the checkpoint): lam, dynamics, train, sample, and
    the tokenizer's config. The tokenizer's weights are loaded by the caller (genie train world)
    and travel in the checkpoint, so a run resumes and exports without the tokenizer bundle."""

    def __init__(self, lam: dict, dynamics: dict, train: dict, sample: dict, tokenizer: dict,
                 sample_dir: str | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["sample_dir"])
        self.tokenizer_config = from_dict(TokenizerConfig, tokenizer, "tokenizer")
        self.lam_config = from_dict(LAMConfig, lam, "lam")
        self.dynamics_config = from_dict(DynamicsConfig, dynamics, "dynamics")
        self.train_config = from_dict(TrainConfig, train, "train")
        self.sample_config = from_dict(SampleConfig, sample, "sample")
        self.tokenizer = VideoTokenizer(self.tokenizer_config).requires_grad_(False).eval()
        self.lam = LatentActionModel(self.lam_config)
        self.dynamics = Dynamics(self.dynamics_config)
        self.model = torch.nn.ModuleDict({"lam": self.lam, "dynamics": self.dynamics})  # what trains
        self.sample_dir = Path(sample_dir) if sample_dir else None

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: no dead-code restarts, no dropout
        if self.lam_frozen:
            self.lam.eval()
        return self

    @property
    def lam_frozen(self) -> bool:
        """Whether the LAM no longer trains: train.freeze_lam, or the LAM phase of train.lam_steps is
        over (always False when co-training)."""
        steps = self.train_config.lam_steps
        if self.train_config.freeze_lam:
            return True
        return steps > 0 and self._trainer is not None and self.trainer.global_step >= steps

    def on_train_batch_start(self, batch, batch_idx):
        if self.lam_frozen and self.lam.training:  # the first step of the dynamics phase
            self.lam.eval().requires_grad_(False)

    def training_step(self, batch, batch_idx):
        frames = batch["frames"]
        steps = self.train_config.lam_steps
        if steps and self.trainer.global_step < steps:  # the LAM alone
            out = self.lam(frames)
            loss, lam_mse = self.lam.loss(frames, out)
            self._log_lam(lam_mse, out)
            self.log_dict({"train/loss": loss})
            self.log("loss", loss, prog_bar=True, logger=False)
            return loss
        with torch.no_grad():
            tokens = self.tokenizer.encode(frames).indices
        if self.lam_frozen:
            with torch.no_grad():
                actions = self.lam.infer_actions(frames)
            loss, dyn_acc = self.dynamics.loss(tokens, actions)
        else:
            out = self.lam(frames)
            lam_total, lam_mse = self.lam.loss(frames, out)
            dyn_loss, dyn_acc = self.dynamics.loss(tokens, out.actions)
            loss = lam_total + dyn_loss
            self._log_lam(lam_mse, out)
        self.log_dict({"train/loss": loss, "train/dyn_loss": loss if self.lam_frozen else dyn_loss,
                       "train/dyn_acc": dyn_acc})
        self.log("loss", loss, prog_bar=True, logger=False)
        return loss

    def _log_lam(self, lam_mse: torch.Tensor, out) -> None:
        self.log_dict({"train/lam_mse": lam_mse, "train/lam_psnr": 10 * torch.log10(4.0 / lam_mse.detach()),
                       "train/action_perplexity": out.vq.perplexity, "train/action_usage": out.vq.usage})

    def on_validation_epoch_start(self):
        self._action_counts = torch.zeros(self.lam_config.num_actions, device=self.device)
        self._example = None

    def validation_step(self, batch, batch_idx):
        frames = batch["frames"]
        tokens = self.tokenizer.encode(frames).indices
        out = self.lam(frames)
        lam_total, lam_mse = self.lam.loss(frames, out)
        g = torch.Generator(device=self.device).manual_seed(batch_idx)  # same masks every validation
        dyn_loss, dyn_acc = self.dynamics.loss(tokens, out.actions, generator=g)
        self._action_counts += torch.bincount(out.actions.flatten(), minlength=self.lam_config.num_actions)
        lam_psnr = psnr(float_to_frames(out.recon), frames[:, 1:]).clamp(max=100).mean()
        self.log_dict({"val/lam_mse": lam_mse, "val/lam_psnr": lam_psnr, "val/dyn_loss": dyn_loss,
                       "val/dyn_acc": dyn_acc}, batch_size=frames.shape[0], sync_dist=True)
        if batch_idx == 0:  # every rank rolls out its first clips (under FSDP all ranks must run the model)
            real, generated = self.rollout(frames[:2])
            self.log("val/rollout_psnr", psnr(generated[:, 1:], real[:, 1:]).clamp(max=100).mean(),
                     batch_size=real.shape[0], sync_dist=True)
            self._example = (real, generated)

    def on_validation_epoch_end(self):
        counts = self.trainer.strategy.reduce(self._action_counts, reduce_op="sum")
        self.log("val/action_usage", (counts > 0).float().mean())
        if self._example is not None and self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self.save_rollout_grid(*self._example)

    @torch.no_grad()
    def rollout(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate frames 1..T-1 from frame 0 with the LAM's actions inferred from the real clip."""
        world = World(self.tokenizer, self.lam, self.dynamics, self.sample_config, device=self.device)
        actions = self.lam.infer_actions(frames)
        generated = [torch.as_tensor(world.reset(frames[:, 0], seed=0), device=self.device)]
        for t in range(actions.shape[1]):
            generated.append(world.step_tensor(actions[:, t]))
        return frames, torch.stack(generated, dim=1)

    def save_rollout_grid(self, real: torch.Tensor, generated: torch.Tensor) -> None:
        rows = []
        for r, g in zip(real.cpu().numpy(), generated.cpu().numpy()):
            rows += [r, g]
        self.save_grid("rollout", frame_grid(rows), "val/rollouts", "real above generated (inferred actions)")

    def configure_optimizers(self):
        return make_optimizer(self.model, self.train_config, phase_starts=(self.train_config.lam_steps,))

    def tokens_per_sample(self, clip_len: int) -> int:
        gh, gw = self.tokenizer_config.grid
        return clip_len * gh * gw

    def export(self) -> tuple[dict, dict]:
        """-> (bundle components config, weights) for genie.bundle.save_bundle."""
        weights = {}
        for name, model in (("tokenizer", self.tokenizer), ("lam", self.lam), ("dynamics", self.dynamics)):
            weights.update({f"{name}.{k}": v for k, v in model.state_dict().items()})
        components = {"tokenizer": asdict(self.tokenizer_config), "lam": asdict(self.lam_config),
                      "dynamics": asdict(self.dynamics_config)}
        return components, weights

    def bundle_extras(self) -> dict:
        return {"sample": asdict(self.sample_config)}
