"""The LightningDataModule every training stage uses: random clips of T frames from shards."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from data_pipeline.dataset import ClipDataset, split_episodes
from data_pipeline.shards import find_shards
from genie.errors import GenieError


class ClipDataModule(L.LightningDataModule):
    """Train/val clips from a shard or folder of shards, split by episode (never within one).

    Batches are {"frames": uint8 [B, T, H, W, 3], "actions": int64 [B, T] (-1 unknown)}.
    train: every clip start (stride 1), shuffled, drop_last. val: clips every `val_stride`
    frames (default clip_len), evenly subsampled to at most `max_val_clips`, in order; an empty
    val set (a single episode) makes val_dataloader return [] so Lightning skips validation.
    After setup(): frame_shape (H, W, 3), train_dataset, val_dataset.

    On several processes (DDP, FSDP) every rank builds the same episode split and the same clip
    index, and Lightning wraps both loaders in a DistributedSampler: each epoch's shuffle of all
    training clips is seeded by the run's seed and the epoch, and rank r takes every world_size-th
    clip of it, so ranks get disjoint clips and the same number of batches (a rank that ran out
    early would stall the others). The shards are split by clip, not by episode: a clip is read
    by slicing its own rows whichever rank reads it, so whole episodes per rank would buy nothing
    and would give ranks unequal counts. batch_size is per rank. Validation clips are split the
    same way (unshuffled; the last few repeat to even the ranks) and the metrics are averaged.
    """

    def __init__(
        self,
        data: str,
        clip_len: int,
        batch_size: int,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        val_stride: int | None = None,
        max_val_clips: int | None = 256,
    ):
        super().__init__()
        self.data, self.clip_len, self.batch_size = data, clip_len, batch_size
        self.num_workers, self.val_fraction, self.seed = num_workers, val_fraction, seed
        self.val_stride, self.max_val_clips = val_stride or clip_len, max_val_clips
        self.frame_shape: tuple[int, int, int] | None = None
        self.train_dataset: ClipDataset | None = None
        self.val_dataset: Subset | ClipDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        shards = find_shards(self.data)
        train_eps, val_eps = split_episodes(shards, self.val_fraction, self.seed, min_len=self.clip_len)
        if not train_eps:
            ClipDataset(shards, self.clip_len)  # raises GenieError naming the longest episode
        self.train_dataset = ClipDataset(shards, self.clip_len, train_eps, stride=1)
        if len(self.train_dataset) < self.batch_size:
            raise GenieError(
                f"{self.data} has only {len(self.train_dataset)} training clips of {self.clip_len} frames, "
                f"fewer than batch_size {self.batch_size}; record more footage or lower the batch size"
            )
        self.frame_shape = self.train_dataset.frame_shape
        if val_eps:
            val = ClipDataset(shards, self.clip_len, val_eps, stride=self.val_stride)
            if self.max_val_clips is not None and len(val) > self.max_val_clips:
                keep = np.unique(np.linspace(0, len(val) - 1, self.max_val_clips).round().astype(int))
                val = Subset(val, keep.tolist())
            self.val_dataset = val

    def _loader(self, dataset, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=_worker_init if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_dataset is None else self._loader(self.val_dataset, train=False)


def _worker_init(worker_id: int) -> None:
    """A data-loading worker leaves Ctrl-C and SIGTERM to the main process: a signal sent to the whole
    process group (a closed terminal, the end of a session, `kill -- -PGID`) would otherwise kill the
    worker first, and the main process would die of the lost worker with a traceback instead of
    saving its checkpoint (StopOnSignal); the main process ends the workers itself. Then seeds the
    worker as Lightning does when the loader has no worker_init_fn (seed_everything(workers=True))."""
    import os
    import signal

    from lightning.fabric.utilities.seed import pl_worker_init_function

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id)
