"""Clip datasets over shards: every window of T frames inside an episode, read by h5py slicing."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from data_pipeline.shards import ShardInfo, read_shard_info
from genie.errors import GenieError

Episode = tuple[int, int]  # (shard index, episode index within that shard)


class ClipDataset(Dataset):
    """Map-style dataset of clips of `clip_len` consecutive frames.

    Clips start every `stride` frames inside each selected episode (default: all episodes of all
    shards) and never cross an episode boundary; episodes shorter than clip_len are skipped.
    Item i is {"frames": torch.uint8 [T, H, W, 3], "actions": torch.int64 [T] (-1 where unknown)}.

    Only the clip's rows are read. Each process opens its own h5py handles lazily (re-opened
    when os.getpid() changes), so DataLoader workers are safe with fork or spawn.
    """

    def __init__(
        self, shards: list[Path], clip_len: int, episodes: list[Episode] | None = None, stride: int = 1
    ):
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
        self.shards, self.clip_len, self.stride = [Path(p) for p in shards], clip_len, stride
        self.infos: list[ShardInfo] = [read_shard_info(p) for p in self.shards]
        shapes = {i.frame_shape for i in self.infos}
        if len(shapes) > 1:
            a, b = self.infos[0], next(i for i in self.infos if i.frame_shape != self.infos[0].frame_shape)
            raise GenieError(
                f"shards have different frame sizes: {a.path} is {a.frame_shape}, {b.path} is {b.frame_shape}; "
                "ingest or record them with the same --size"
            )
        self.frame_shape = self.infos[0].frame_shape
        if episodes is None:
            episodes = [(s, e) for s, info in enumerate(self.infos) for e in range(len(info.episodes))]
        self.episodes = list(episodes)
        shard_of, starts, episode_of, longest = [], [], [], 0
        for k, (s, e) in enumerate(self.episodes):
            start, end = self.infos[s].episodes[e]
            longest = max(longest, int(end - start))
            clip_starts = np.arange(start, end - clip_len + 1, stride, dtype=np.int64)
            shard_of.append(np.full(len(clip_starts), s, dtype=np.int64))
            episode_of.append(np.full(len(clip_starts), k, dtype=np.int64))
            starts.append(clip_starts)
        self._shard = np.concatenate(shard_of) if shard_of else np.zeros(0, np.int64)  # [M]
        self._start = np.concatenate(starts) if starts else np.zeros(0, np.int64)  # [M] first row
        self._episode = np.concatenate(episode_of) if episode_of else np.zeros(0, np.int64)  # [M]
        if len(self._start) == 0:
            where = self.shards[0].parent if len(self.shards) > 1 else self.shards[0]
            raise GenieError(
                f"no clips of {clip_len} frames in {where} ({len(self.episodes)} episodes, the longest has "
                f"{longest} frames); record longer episodes or use a shorter clip length"
            )
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._start)

    def episode_of(self, i: int) -> int:
        """Index into self.episodes of the episode clip i comes from."""
        return int(self._episode[i])

    def _file(self, s: int) -> h5py.File:
        if self._pid != os.getpid():  # a forked worker: never share the parent's handles
            self._files, self._pid = {}, os.getpid()
        if s not in self._files:
            self._files[s] = h5py.File(self.shards[s], "r")
        return self._files[s]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, row = int(self._shard[i]), int(self._start[i])
        rows = slice(row, row + self.clip_len)
        try:
            f = self._file(s)
            frames = f["frames"][rows]  # uint8 [T, H, W, 3]
            actions = f["actions"][rows].astype(np.int64) if "actions" in f else np.full(self.clip_len, -1)
        except OSError as err:
            raise GenieError(f"cannot read frames {rows.start}:{rows.stop} of {self.shards[s]} ({err}); "
                             "re-record or re-ingest it") from None  # fmt: skip
        return {"frames": torch.from_numpy(frames), "actions": torch.from_numpy(actions)}

    def close(self) -> None:
        """Close this process's file handles (they re-open on the next read)."""
        if self._pid == os.getpid():
            for f in self._files.values():
                f.close()
        self._files = {}

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: h5py may already be gone
            pass

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}}  # handles never travel to spawned workers


def split_episodes(
    shards: list[Path], val_fraction: float = 0.1, seed: int = 0, min_len: int = 1
) -> tuple[list[Episode], list[Episode]]:
    """Split the episodes of `shards` (those with >= min_len frames) into (train, val) lists of
    (shard index, episode index), deterministic in `seed`. With >= 2 episodes and val_fraction > 0,
    val gets round(val_fraction * E) episodes, at least 1 and at most E - 1."""
    episodes = [
        (s, e)
        for s, path in enumerate(shards)
        for e, length in enumerate(read_shard_info(path).episode_lengths)
        if length >= min_len
    ]
    n = len(episodes)
    n_val = int(np.clip(round(val_fraction * n), 1, n - 1)) if n >= 2 and val_fraction > 0 else 0
    order = np.random.default_rng(seed).permutation(n)
    val = sorted(episodes[i] for i in order[:n_val])
    train = sorted(episodes[i] for i in order[n_val:])
    return train, val
