"""Shard format: round trip, atomic writes, validation of bad files, shard discovery."""

import h5py
import numpy as np
import pytest

from data_pipeline.shards import ShardSetWriter, ShardWriter, find_shards, read_shard_info
from genie.cli import main
from genie.errors import GenieError


def run_cli(capfd, *argv):
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def constant_episode(length: int, value: int, size: int = 8) -> np.ndarray:
    return np.full((length, size, size, 3), value, dtype=np.uint8)


def write_shard(path, lengths=(5, 7), actions=True) -> None:
    with ShardWriter(path, fps=10, source="test", action_names=["a", "b"]) as w:
        for i, n in enumerate(lengths):
            w.add_episode(constant_episode(n, 10 * (i + 1)), np.arange(n) % 2 if actions else None)


def test_round_trip_keeps_frames_episodes_actions_and_attrs(tmp_path):
    path = tmp_path / "a.h5"
    with ShardWriter(path, fps=12.5, source="unit", action_names=["x", "y"]) as w:
        w.add_episode(constant_episode(4, 1))  # no actions: stored as -1
        w.add_episode(constant_episode(3, 2), np.array([1, 0, -1]))
    info = read_shard_info(path)
    assert (info.num_frames, info.frame_shape, info.fps, info.source) == (7, (8, 8, 3), 12.5, "unit")
    assert info.episodes.tolist() == [[0, 4], [4, 7]] and info.has_actions and info.version == 1
    assert info.action_names == ["x", "y"] and info.nbytes == path.stat().st_size
    with h5py.File(path) as f:
        assert f["actions"][:].tolist() == [-1, -1, -1, -1, 1, 0, -1]
        assert f["frames"][4:7].max() == 2 and f["frames"].compression == "gzip"
        assert f["frames"].chunks[0] == 16


def test_interrupted_writer_leaves_no_shard_and_keeps_existing_one(tmp_path):
    good = tmp_path / "good.h5"
    write_shard(good)
    before = good.read_bytes()
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "new.h5", fps=10, source="test") as w:
            w.add_episode(constant_episode(5, 3))
            raise RuntimeError("crash while recording")
    with pytest.raises(GenieError, match="already exists"):
        ShardWriter(good, fps=10, source="test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.h5"]  # no new.h5, no temp file
    assert good.read_bytes() == before


def test_shard_set_rolls_over_without_splitting_episodes(tmp_path):
    with ShardSetWriter(tmp_path, "rec", fps=10, source="test", frames_per_shard=25) as w:
        for i in range(7):
            w.add_episode(constant_episode(10, i))
    infos = [read_shard_info(p) for p in find_shards(tmp_path)]
    assert [p.name for p in w.paths] == ["rec-00000.h5", "rec-00001.h5", "rec-00002.h5"]
    assert [i.num_frames for i in infos] == [30, 30, 10]
    assert all((i.episode_lengths == 10).all() for i in infos)
    with pytest.raises(GenieError, match="already has shards named rec"):
        ShardSetWriter(tmp_path, "rec", fps=10, source="test")


def test_find_shards_searches_folders_recursively_and_explains_empty_ones(tmp_path):
    write_shard(tmp_path / "b" / "2.h5")
    write_shard(tmp_path / "a.h5")
    assert find_shards(tmp_path) == [tmp_path / "a.h5", tmp_path / "b" / "2.h5"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenieError, match="no shards .* genie record"):
        find_shards(tmp_path / "empty")


def _bad_shards(tmp_path):
    good = tmp_path / "good.h5"
    write_shard(good, lengths=(300,))
    (tmp_path / "random.h5").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "truncated.h5").write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    def edited(name, edit):
        path = tmp_path / name
        write_shard(path)
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    edited("no_frames.h5", lambda f: f.__delitem__("frames"))
    edited("future.h5", lambda f: f.attrs.__setitem__("version", 99))
    edited("bad_episodes.h5", lambda f: f["episodes"].__setitem__((1, 1), 1000))

    def float_frames(f):
        del f["frames"]
        f["frames"] = np.zeros((12, 8, 8, 3), np.float32)

    edited("float_frames.h5", float_frames)
    return {
        "missing.h5": "does not exist",
        "random.h5": "not a readable HDF5",
        "truncated.h5": "not a readable HDF5",
        "no_frames.h5": "missing dataset 'frames'",
        "future.h5": "upgrade genie",
        "bad_episodes.h5": "episode ranges",
        "float_frames.h5": "must be uint8",
    }


def test_bad_shards_are_one_line_errors_naming_the_file(tmp_path, capfd):
    for name, problem in _bad_shards(tmp_path).items():
        code, out, err = run_cli(capfd, "data", "inspect", str(tmp_path / name))
        assert code == 2, name
        assert err.count("\n") == 1 and err.startswith("genie: error: "), err
        assert str(tmp_path / name) in err and problem in err and "Traceback" not in err
    assert read_shard_info(tmp_path / "good.h5").num_frames == 300  # nothing lost
