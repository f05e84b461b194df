"""What every stage's training shares: TrainConfig, the optimizer, and the callbacks."""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from genie.errors import GenieError
from genie.files import atomic_file


@dataclass
class TrainConfig:
    max_steps: int = 10_000
    batch_size: int = 16
    clip_len: int = 8  # frames per training clip
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 500
    weight_decay: float = 0.05
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    precision: str = "auto"  # auto: bf16-mixed on CUDA, 32-true on CPU
    accelerator: str = "auto"
    devices: Any = "auto"  # processes per node: a count, a list of GPU ids, or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto, ddp, fsdp (see make_strategy), or any other Lightning strategy name
    num_workers: int = 2
    val_fraction: float = 0.1
    val_every: int = 500  # steps between validations
    val_batches: int = 8
    log_every: int = 10
    ckpt_every: int = 500  # steps between checkpoints (last.ckpt is always kept)
    seed: int = 0
    wandb: bool = True  # offline unless WANDB_MODE says otherwise
    wandb_project: str = "genie"
    progress_bar: bool = True
    compile: bool = False  # torch.compile the model (GPU)
    # world stage only: the first lam_steps steps train the LAM alone; then it is frozen and the
    # dynamics trains on its actions for the rest of max_steps (Jafar's and Jasmine's order), each
    # phase with its own warm-up and cosine decay. 0: both train together from the first step
    lam_steps: int = 0
    # stop after this many minutes of training (0: no limit), whatever max_steps says: a time box for
    # a leased GPU. The schedule still runs on max_steps, so size max_steps to fit and keep this as the
    # cap; a run stopped by it saves last.ckpt and exports like any other
    max_minutes: float = 0.0
    # start from a bundle's weights instead of at random, e.g. to train a shipped world further or on a
    # new LAM: the world stage takes the LAM and/or the dynamics (init_parts) of a world bundle, the
    # tokenizer stage the tokenizer of a tokenizer or world bundle. Their configs must match the
    # bundle's (training-only keys may differ). Read when a run starts, not on resume
    init: str = ""
    init_parts: list = field(default_factory=lambda: ["lam", "dynamics"])
    # world stage only: the LAM never trains; the dynamics learns on the actions of the LAM it starts
    # with (from init) from the first step
    freeze_lam: bool = False
    # tokenizer stage only: train the decoder of train.init's tokenizer alone (the encoder and codebook
    # frozen), so its tokens, and every world trained on them, stay exactly as they were; a
    # model.decoder_depth above the bundle's appends blocks that start as identities
    decoder_only: bool = False

    def __post_init__(self) -> None:
        """ValueError naming the first key outside its range, its value and the range allowed
        (genie.config.from_dict adds the file), so a bad value stops a run before it starts."""
        for key, (ok, allowed) in _TRAIN_RANGES.items():
            value = getattr(self, key)
            try:
                good = bool(ok(value))
            except TypeError:  # e.g. null in the YAML
                good = False
            if not good:
                raise ValueError(f"key '{key}' must be {allowed}, got {value!r}")
        if self.lam_steps and self.lam_steps >= self.max_steps:
            raise ValueError(f"key 'lam_steps' must be < max_steps ({self.max_steps}) so the dynamics trains, "
                             f"got {self.lam_steps}")
        if self.freeze_lam and (self.lam_steps or "lam" not in self.init_parts or not self.init):
            raise ValueError("key 'freeze_lam' needs a trained LAM to freeze: set train.init to a world bundle "
                             "with 'lam' in train.init_parts, and train.lam_steps 0")
        if self.decoder_only and not self.init:
            raise ValueError("key 'decoder_only' trains a trained tokenizer's decoder: set train.init to a "
                             "tokenizer or world bundle")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


_TRAIN_RANGES = {  # TrainConfig key -> (test, the range allowed, as the error says it)
    "max_steps": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "clip_len": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: _finite(v) and v > 0, "a number > 0"),
    "min_lr_ratio": (lambda v: _finite(v) and 0 <= v <= 1, "from 0 to 1"),
    "warmup_steps": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: _finite(v) and v >= 0, ">= 0"),
    "betas": (lambda v: len(v) == 2 and all(_finite(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "grad_clip": (lambda v: _finite(v) and v >= 0, ">= 0 (0: no clipping)"),
    "num_nodes": (lambda v: v >= 1, ">= 1"),
    "num_workers": (lambda v: v >= 0, ">= 0"),
    "val_fraction": (lambda v: _finite(v) and 0 <= v < 1, "in [0, 1)"),
    "val_every": (lambda v: v >= 1, ">= 1"),
    "val_batches": (lambda v: v >= 1, ">= 1"),
    "log_every": (lambda v: v >= 1, ">= 1"),
    "ckpt_every": (lambda v: v >= 1, ">= 1"),
    "seed": (lambda v: 0 <= v < 2**32, "from 0 to 2**32 - 1"),
    "lam_steps": (lambda v: v >= 0, ">= 0"),
    "max_minutes": (lambda v: _finite(v) and v >= 0, ">= 0 (0: no limit)"),
    "init_parts": (lambda v: isinstance(v, list) and len(v) > 0 and set(v) <= {"lam", "dynamics"},
                   "a list of lam, dynamics"),
}


def resolve_precision(cfg: TrainConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16-mixed" if torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda") else "32-true"


_DECAYED = (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def make_optimizer(model: nn.Module, cfg: TrainConfig, phase_starts: tuple[int, ...] = ()):
    """AdamW with weight decay on the weights of linear, conv and embedding layers only (not on
    biases, norms, positional tables or codebooks), linear warm-up then cosine decay (per step).
    Layers are told by type, not by p.ndim: under FSDP the parameters are flat 1-D shards.
    Each step in phase_starts begins a new phase: warm-up and decay start again there and end at
    the next phase's start (or max_steps). Parameters left without a gradient are not touched."""
    decay, no_decay = [], []
    for layer in model.modules():
        for name, p in layer.named_parameters(recurse=False):
            if p.requires_grad:
                (decay if isinstance(layer, _DECAYED) and name == "weight" else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # foreach, not fused: Lightning refuses gradient clipping with a fused optimizer under mixed
    # precision (it unscales gradients inside its step), and clipping is on by default
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), foreach=True)

    bounds = [0, *sorted(s for s in phase_starts if 0 < s < cfg.max_steps), cfg.max_steps]

    def schedule(step: int) -> float:
        start, end = next((a, b) for a, b in zip(bounds, bounds[1:]) if step < b or b == cfg.max_steps)
        step, span, warmup = step - start, end - start, cfg.warmup_steps
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, span - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def make_strategy(cfg: TrainConfig):
    """The Lightning strategy for cfg.strategy. batch_size is per process in all of them, so the
    global batch is batch_size * devices * num_nodes.

    "fsdp": Lightning's FSDPStrategy. Every ST block is its own FSDP unit (its parameters,
    gradients and optimizer state sharded across ranks); each VQ layer is a replicated unit,
    because dead-code restarts write its codebook in place, which a sharded unit would discard.
    Checkpoints hold the full state dict, so they resume (and export) at any world size.
    Lightning runs FSDP on CUDA only. Anything else ("auto", "ddp", "ddp_spawn", ...) is
    Lightning's own strategy by that name.
    """
    if cfg.strategy != "fsdp":
        return cfg.strategy
    if cfg.accelerator not in ("auto", "gpu", "cuda") or not torch.cuda.is_available():
        raise GenieError("train.strategy=fsdp needs CUDA GPUs (Lightning's FSDP does not run on CPU); "
                         "use train.strategy=ddp here")
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import ShardingStrategy
    from torch.distributed.fsdp.wrap import CustomPolicy

    from genie.nn.st_transformer import STBlock
    from genie.nn.vq import VectorQuantizer

    def unit(module: nn.Module) -> bool | dict:
        if isinstance(module, VectorQuantizer):
            return {"sharding_strategy": ShardingStrategy.NO_SHARD}
        return isinstance(module, STBlock)

    return FSDPStrategy(auto_wrap_policy=CustomPolicy(unit), state_dict_type="full")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary name and renames it, so a run killed mid-save
    still has its previous last.ckpt intact."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:  # interrupted mid-save: no half file left behind
            torch.save(checkpoint, tmp)


class StopOnSignal(L.Callback):
    """Ctrl-C (SIGINT) and SIGTERM stop a run with a checkpoint of where it got to.

    A signal during a training step lets that step finish; then `last` is saved and the run ends
    with KeyboardInterrupt. A signal at any other moment (loading data, validating, writing
    samples) ends it at once and saves the same checkpoint. A second signal while waiting for the
    step stops at once, keeping the previous checkpoint. SIGTERM thus behaves like Ctrl-C (one
    line, exit 130 from `genie train`). Use as a context manager around building and fitting the
    Trainer, and as one of its callbacks. Handlers are installed only in the main thread, and are
    taken off again when the Trainer runs on several processes (under DDP and FSDP Lightning's
    own handling stays: a checkpoint there needs every rank at once).

    After an interrupt: `signal` (the signal's name or None), `saved_step` (None if not saved).
    """

    def __init__(self, last: Path):
        self.last = Path(last)
        self.signal: str | None = None
        self.saved_step: int | None = None
        self._pending = self._in_step = self._saving = False
        self._previous: dict = {}

    def __enter__(self) -> StopOnSignal:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def setup(self, trainer, module, stage: str) -> None:
        if trainer.world_size > 1:
            self.__exit__()

    def _handle(self, signum, frame) -> None:
        if self._saving:
            return
        first = self.signal is None
        self.signal = signal.Signals(signum).name
        if self._in_step and first:
            self._pending = True  # on_train_batch_end stops once the step is whole
            return
        raise KeyboardInterrupt

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._in_step = True

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._in_step = False
        if self._pending:
            raise KeyboardInterrupt

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        if self.signal is None or self._in_step or trainer.world_size != 1:
            return  # not ours, or mid-step (the weights may be half updated): keep the last checkpoint
        self._saving = True
        try:
            trainer.save_checkpoint(self.last, weights_only=False)
            self.saved_step = trainer.global_step
        except Exception:  # e.g. interrupted before the model was set up: there is nothing to save
            pass
        finally:
            self._saving = False


class Throughput(L.Callback):
    """Logs samples/s and tokens/s of the whole run (all ranks together: rank 0's wall clock times
    its batch size times the world size) every `every` steps, with no device sync."""

    def __init__(self, every: int, tokens_per_sample: int):
        self.every, self.tokens_per_sample = every, tokens_per_sample
        self.t0, self.samples = None, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.samples += batch["frames"].shape[0] * trainer.world_size
        if self.t0 is None:
            self.t0, self.samples = time.perf_counter(), 0  # the first step includes warm-up
            return
        if trainer.global_step % self.every == 0:
            dt = time.perf_counter() - self.t0
            rate = self.samples / max(dt, 1e-9)
            module.log_dict({"perf/samples_per_s": rate, "perf/tokens_per_s": rate * self.tokens_per_sample})
            self.t0, self.samples = time.perf_counter(), 0


class StageModule(L.LightningModule):
    """What `genie train` and `genie export` ask of a stage's LightningModule (TokenizerModule,
    WorldModule), beside Lightning's own hooks: its bundle (export, bundle_extras), its
    throughput unit (tokens_per_sample) and where its pictures go (save_grid)."""

    sample_dir: Path | None = None

    def export(self) -> tuple[dict, dict]:
        """-> (the bundle's components config, weights named component.param) for save_bundle."""
        raise NotImplementedError

    def bundle_extras(self) -> dict:
        """Top-level bundle config entries beside the components (e.g. the sampler's settings)."""
        return {}

    def tokens_per_sample(self, clip_len: int) -> int:
        """Tokens one training clip of clip_len frames stands for (the Throughput callback's unit)."""
        raise NotImplementedError

    def save_grid(self, name: str, grid: np.ndarray, key: str, caption: str) -> None:
        """A picture of this validation: samples/NAME-stepN.png and NAME-latest.png in the run folder,
        and under KEY in wandb when it logs there."""
        from lightning.pytorch.loggers import WandbLogger

        from genie.pictures import save_png

        step = self.trainer.global_step
        if self.sample_dir is not None:
            save_png(self.sample_dir / f"{name}-step{step:07d}.png", grid)
            save_png(self.sample_dir / f"{name}-latest.png", grid)
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key, [grid], step=step, caption=[caption])
