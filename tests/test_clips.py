"""Clip datasets: clips stay inside episodes, reads are sliced, splits are by episode."""

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_pipeline.dataset import ClipDataset, split_episodes
from data_pipeline.shards import ShardWriter
from genie.errors import GenieError
from genie.training.data import ClipDataModule


def make_shard(path, lengths, first_colour=0, actions=True):
    """One episode per length, each of a distinct constant colour (first_colour, +1, ...)."""
    with ShardWriter(path, fps=10, source="test") as w:
        for i, n in enumerate(lengths):
            acts = np.arange(n) % 8 if actions else None
            w.add_episode(np.full((n, 8, 8, 3), first_colour + i, np.uint8), acts)
    return path


def test_clips_never_cross_episodes_and_skip_short_ones(tmp_path):
    shards = [make_shard(tmp_path / "a.h5", [5, 8, 3]), make_shard(tmp_path / "b.h5", [4], first_colour=10)]
    ds = ClipDataset(shards, clip_len=4)
    assert len(ds) == 2 + 5 + 0 + 1
    colours = []
    for i in range(len(ds)):
        item = ds[i]
        assert item["frames"].shape == (4, 8, 8, 3) and item["frames"].dtype == torch.uint8
        assert item["actions"].dtype == torch.int64 and item["actions"].shape == (4,)
        assert len(item["frames"].unique()) == 1  # one episode's colour only
        colours.append(int(item["frames"][0, 0, 0, 0]))
    assert sorted(set(colours)) == [0, 1, 10]
    assert len(ClipDataset(shards, clip_len=4, stride=2)) == 1 + 3 + 1


def test_clips_of_shards_without_actions_have_minus_one(tmp_path):
    ds = ClipDataset([make_shard(tmp_path / "a.h5", [6], actions=False)], clip_len=3)
    assert ds[1]["actions"].tolist() == [-1, -1, -1]


def test_only_selected_episodes_are_used(tmp_path):
    shards = [make_shard(tmp_path / "a.h5", [5, 6, 7])]
    ds = ClipDataset(shards, clip_len=5, episodes=[(0, 2)])
    assert len(ds) == 3 and {int(ds[i]["frames"][0, 0, 0, 0]) for i in range(3)} == {2}


def test_all_episodes_too_short_names_data_and_longest(tmp_path):
    shards = [make_shard(tmp_path / "a.h5", [3, 6])]
    with pytest.raises(GenieError, match=r"a\.h5.*longest has 6 frames"):
        ClipDataset(shards, clip_len=10)


def test_reads_only_the_clip_rows(tmp_path, monkeypatch):
    ds = ClipDataset([make_shard(tmp_path / "a.h5", [50])], clip_len=4)
    seen = []
    original = h5py.Dataset.__getitem__

    def spy(self, key, *args, **kwargs):
        seen.append((self.name, key))
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ds[17]
    assert seen == [("/frames", slice(17, 21)), ("/actions", slice(17, 21))]


def test_split_is_by_episode_deterministic_and_disjoint(tmp_path):
    shards = [make_shard(tmp_path / "a.h5", [5] * 6), make_shard(tmp_path / "b.h5", [5] * 4)]
    train, val = split_episodes(shards, val_fraction=0.2, seed=1)
    assert (train, val) == split_episodes(shards, val_fraction=0.2, seed=1)
    assert len(val) == 2 and not set(train) & set(val) and len(set(train) | set(val)) == 10
    assert any(split_episodes(shards, 0.2, seed=s)[1] != val for s in range(2, 6))
    assert len(split_episodes(shards[1:], val_fraction=0.01)[1]) == 1  # at least one in val
    assert split_episodes([make_shard(tmp_path / "c.h5", [5])], 0.5) == ([(0, 0)], [])


def test_dataloader_with_two_workers(tmp_path):
    shards = [make_shard(tmp_path / "a.h5", [20, 20])]
    ds = ClipDataset(shards, clip_len=4)
    ds[0]  # open a handle in the parent first: forked workers must not reuse it
    loader = DataLoader(ds, batch_size=8, num_workers=2, shuffle=True)
    batches = list(loader)
    assert sum(len(b["frames"]) for b in batches) == len(ds) == 34
    assert batches[0]["frames"].shape == (8, 4, 8, 8, 3)


def test_datamodule_splits_and_subsamples_validation(tmp_path):
    make_shard(tmp_path / "a.h5", [40] * 10)
    dm = ClipDataModule(str(tmp_path), clip_len=4, batch_size=4, val_fraction=0.2, max_val_clips=5)
    dm.setup("fit")
    assert dm.frame_shape == (8, 8, 3)
    assert len(dm.train_dataset) == 8 * 37 and len(dm.val_dataset) == 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (4, 4, 8, 8, 3) and batch["actions"].shape == (4, 4)
    assert len(list(dm.val_dataloader())) == 2  # 5 clips in order, batches of 4
    with pytest.raises(GenieError, match="fewer than batch_size"):
        ClipDataModule(str(tmp_path), clip_len=4, batch_size=10_000).setup("fit")
