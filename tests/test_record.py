"""Recording footage: the synthetic game (known actions) and CoinRun, through `genie record`."""

import copy

import h5py
import numpy as np
import pytest

from data_pipeline.shards import find_shards, read_shard_info
from data_pipeline.synthetic import ACTION_NAMES, SyntheticGame
from genie.cli import main

COLOURS = np.array([(235, 40, 40), (250, 215, 30), (40, 100, 255)], dtype=np.uint8)  # set by actions 5, 6, 7


def run_cli(capfd, *argv):
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_record_synthetic_then_inspect(tmp_path, capfd):
    data = tmp_path / "data"
    code, out, err = run_cli(capfd, "record", "--env", "synthetic", "--episodes", "6", "--max-steps", "40",
                             "--out", str(data), "--frames-per-shard", "80")  # fmt: skip
    assert code == 0, err
    assert "recorded 6 episodes, 240 frames" in out and "frames/s" in out
    assert [p.name for p in find_shards(data)] == [f"synthetic-s0-0000{i}.h5" for i in range(3)]
    code, out, err = run_cli(capfd, "data", "inspect", str(data))
    assert code == 0, err
    assert "total: 3 shards, 6 episodes, 240 frames" in out and "64x64" in out and "true actions: yes" in out


def test_record_refuses_to_overwrite_existing_shards(tmp_path, capfd):
    argv = ["record", "--env", "synthetic", "--episodes", "2", "--max-steps", "10", "--out", str(tmp_path)]
    assert run_cli(capfd, *argv)[0] == 0
    shard = tmp_path / "synthetic-s0-00000.h5"
    before = shard.read_bytes()
    code, _, err = run_cli(capfd, *argv)
    assert code == 2 and "another --out" in err and err.count("\n") == 1
    assert shard.read_bytes() == before
    assert run_cli(capfd, *argv, "--seed", "1")[0] == 0  # another seed adds to the folder


def test_record_with_two_workers_writes_one_shard_set_each(tmp_path, capfd):
    code, out, err = run_cli(capfd, "record", "--env", "synthetic", "--episodes", "5", "--max-steps", "12",
                             "--workers", "2", "--out", str(tmp_path))  # fmt: skip
    assert code == 0, err
    names = [p.name for p in find_shards(tmp_path)]
    assert names == ["synthetic-s0-w0-00000.h5", "synthetic-s0-w1-00000.h5"]
    assert sum(len(read_shard_info(p).episodes) for p in find_shards(tmp_path)) == 5


def test_synthetic_game_is_deterministic_under_seed():
    actions = np.random.default_rng(0).integers(0, 8, (20, 4))
    runs = []
    for seed in (3, 3, 4):
        game = SyntheticGame(4, seed=seed)
        runs.append(np.stack([game.render()] + [game.step(a) for a in actions]))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    assert runs[0].shape == (21, 4, 64, 64, 3) and runs[0].dtype == np.uint8


@pytest.mark.parametrize("size", [64, 32])  # 4 px and 2 px cells
def test_every_action_is_identifiable_from_two_frames(size):
    game, rng = SyntheticGame(256, size=size, seed=size), np.random.default_rng(0)
    for a in rng.integers(0, 8, (6, 256)):  # random states: moved, bumped, flashing, any colour
        game.step(a)
    nxt = np.stack([copy.deepcopy(game).step(np.full(256, a)) for a in range(8)])  # [8 actions, B, H, W, 3]
    differ = (nxt[:, None] != nxt[None]).any((3, 4, 5))  # [8, 8, B]
    assert differ[~np.eye(8, dtype=bool)].all()  # in every game the 8 next frames differ pairwise
    same_colour = copy.deepcopy(game).step(5 + game.colour)  # e.g. red when already red
    assert (same_colour != nxt[0]).any((1, 2, 3)).all()  # ... still differs from noop
    assert ACTION_NAMES == ["noop", "left", "right", "up", "down", "red", "yellow", "blue"]


def test_synthetic_action_t_changes_frame_t_plus_1_and_nothing_before():
    actions = np.random.default_rng(1).integers(0, 8, 12)
    changed = actions.copy()
    changed[5] = (actions[5] + 1) % 8
    runs = []
    for acts in (actions, changed):
        game = SyntheticGame(1, seed=7)
        runs.append(np.stack([game.render()] + [game.step([a]) for a in acts])[:, 0])
    assert np.array_equal(runs[0][:6], runs[1][:6])  # frames 0..5 come before a_5
    assert not np.array_equal(runs[0][6], runs[1][6])  # a_5 shows in frame 6


def test_synthetic_background_scrolls_behind_fixed_walls_and_sprite():
    game = SyntheticGame(16, seed=2)
    c, noop = game.cell, np.zeros(16, dtype=int)
    frames = np.stack([game.render()] + [game.step(noop) for _ in range(game.period)])
    assert len({tuple(v) for v in game.velocity}) > 1 and (np.abs(game.velocity).sum(1) == 1).all()
    assert np.array_equal(frames[0], frames[-1])  # the texture wraps after one period
    f0, f1 = frames[0], frames[1]
    for b, (vy, vx) in enumerate(game.velocity):
        wall = game.walls[b].repeat(c, 0).repeat(c, 1)  # [H, W]
        fixed = wall.copy()
        y, x = game.pos[b] * c
        fixed[y : y + c, x : x + c] = True  # the sprite's cell (noop: it stays put)
        assert np.array_equal(f0[b][fixed], f1[b][fixed])  # walls and sprite do not move
        assert (f0[b] != f1[b]).any(-1)[~fixed].mean() > 0.3  # the background does
        # ... by exactly the velocity: frame 1 at (y, x) shows frame 0 at (y - vy, x - vx)
        moved = np.roll(f0[b], (vy, vx), axis=(0, 1))
        both = ~fixed & ~np.roll(fixed, (vy, vx), axis=(0, 1))
        assert both.sum() > 1000 and np.array_equal(f1[b][both], moved[both])


def test_synthetic_scroll_zero_keeps_the_background_still():
    still = SyntheticGame(4, seed=2, scroll=0)
    frames = np.stack([still.render()] + [still.step(np.zeros(4, dtype=int)) for _ in range(5)])
    assert (frames == frames[0]).all()
    assert np.array_equal(frames[0], SyntheticGame(4, seed=2).render())  # same episode, not moving


def test_recorded_actions_are_aligned_with_the_frame_they_change(tmp_path, capfd):
    run_cli(
        capfd, "record", "--env", "synthetic", "--episodes", "3", "--max-steps", "60", "--out", str(tmp_path)
    )
    (shard,) = find_shards(tmp_path)
    with h5py.File(shard) as f:
        frames, actions, episodes = f["frames"][:], f["actions"][:], f["episodes"][:]
    shown = (frames[:, None] == COLOURS[:, None, None]).all(-1).any((2, 3))  # [N, 3] colours in frame t
    assert (shown.sum(1) == 1).all()  # the sprite shows exactly one of them
    colour = shown.argmax(1)
    flash = (frames == 255).all(-1).sum((1, 2)) > 4  # more white than the 4 px nose: a colour action's flash
    for start, end in episodes:
        a, c, f = actions[start:end], colour[start:end], flash[start:end]
        assert a[-1] == -1 and ((a[:-1] >= 0) & (a[:-1] < 8)).all()
        set_colour = a[:-1] >= 5
        assert set_colour.any() and not f[0]
        assert np.array_equal(f[1:], set_colour)  # the sprite flashes exactly after actions 5-7 ...
        assert np.array_equal(c[1:][set_colour], a[:-1][set_colour] - 5)  # ... and takes their colour
        assert np.array_equal(c[1:][~set_colour], c[:-1][~set_colour])  # other actions keep it


def test_record_coinrun_short_episodes(tmp_path, capfd):
    pytest.importorskip("data_pipeline.coinrun").check_procgen()
    code, out, err = run_cli(capfd, "record", "--env", "coinrun", "--episodes", "2", "--max-steps", "30",
                             "--out", str(tmp_path), "--start-level", "5", "--num-levels", "10")  # fmt: skip
    assert code == 0, err
    assert "Gym has been unmaintained" not in out + err
    (shard,) = find_shards(tmp_path)
    info = read_shard_info(shard)
    assert len(info.episodes) == 2 and info.episode_lengths.max() <= 30 and info.frame_shape == (64, 64, 3)
    assert info.has_actions and len(info.action_names) == 15 and "RIGHT+UP" in info.action_names
    with h5py.File(shard) as f:
        actions, frames = f["actions"][:], f["frames"][:]
    for start, end in info.episodes:
        assert (
            actions[end - 1] == -1
            and ((actions[start : end - 1] >= 0) & (actions[start : end - 1] < 15)).all()
        )
    assert frames.std() > 10  # real images, not blank


def test_coinrun_frame_skip_stores_one_frame_in_k_of_the_same_play(tmp_path, capfd):
    """Held keys from the same level starts: frame k of a skip-3 recording is frame 3k of the game."""
    pytest.importorskip("data_pipeline.coinrun").check_procgen()
    common = ["record", "--env", "coinrun", "--episodes", "3", "--policy", "hold", "--start-level", "5",
              "--num-levels", "3"]
    assert run_cli(capfd, *common, "--max-steps", "31", "--out", str(tmp_path / "k1"))[0] == 0
    assert run_cli(capfd, *common, "--max-steps", "11", "--out", str(tmp_path / "k3"), "--frame-skip", "3")[0] == 0
    (one,), (three,) = find_shards(tmp_path / "k1"), find_shards(tmp_path / "k3")
    assert read_shard_info(three).source == "coinrun:hard:skip3:hold"
    with h5py.File(one) as f1, h5py.File(three) as f3:
        every, skipped = f1["frames"][:], f3["frames"][:]
    for (s1, _), (s3, e3) in zip(read_shard_info(one).episodes, read_shard_info(three).episodes):
        assert np.array_equal(skipped[s3:e3], every[s1 : s1 + 31 : 3])
