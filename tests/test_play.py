"""The pygame player (headless, real events) and its key map: recording, keys, reset, modes, errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_pipeline.synthetic import SyntheticGame
from genie.cli import main as genie
from genie.play.keymap import KEYS, keymap_from_labels, keymap_from_motion, measure_motion, store_keymap
from genie.play.player import main as play
from genie.play.sample import save_animation
from genie.world import World, cpu_has_bf16

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.wandb=false", "train.progress_bar=false"]
KEYMAP = {"left": 1, "right": 2, "up": 3, "down": 4, "jump": 3, "noop": 6}
PLAYER_PRECISION = "bf16" if cpu_has_bf16() else "fp32"  # the player's "auto" on a CPU


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread is as fast, and far steadier on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny trained world (raw.bundle, no key map; world.bundle, key map KEYMAP), its data, a prompt."""
    d = tmp_path_factory.mktemp("play")
    assert genie(["record", "--env", "synthetic", "--episodes", "4", "--max-steps", "24", "--out", str(d / "data")]) == 0
    assert genie(["train", "tokenizer", "--config", str(ROOT / "configs/tiny/tokenizer.yaml"), "--data",
                  str(d / "data"), "--out", str(d / "tok"), "train.max_steps=2", "train.val_every=100", *FAST]) == 0
    assert genie(["export", str(d / "tok"), "--out", str(d / "tok.bundle")]) == 0
    assert genie(["train", "world", "--config", str(ROOT / "configs/tiny/world.yaml"), "--data", str(d / "data"),
                  "--tokenizer", str(d / "tok.bundle"), "--out", str(d / "run"), "train.max_steps=2",
                  "train.val_every=100", *FAST]) == 0
    assert genie(["export", str(d / "run"), "--out", str(d / "raw.bundle")]) == 0
    shutil.copytree(d / "raw.bundle", d / "world.bundle")
    store_keymap(d / "world.bundle", KEYMAP, {"method": "test"})
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)  # not the world's size
    cv2.imwrite(str(d / "prompt.png"), image)
    return d


def gif_frames(path) -> list[np.ndarray]:
    ok, anim = cv2.imreadanimation(str(path))
    assert ok
    return list(anim.frames)


def run(made, tmp_path, keys, *extra, bundle="world.bundle", name="out.gif") -> list[np.ndarray]:
    out = tmp_path / name
    argv = ["--world", str(made / bundle), "--prompt", str(made / "prompt.png"), "--scale", "1", "--device", "cpu",
            "--record", str(out), *extra]
    assert play(argv + (["--keys", keys] if keys else [])) == 0
    return gif_frames(out)


def reference(made, tmp_path, actions, seed=0) -> list[np.ndarray]:
    """The same rollout straight from World.reset/step at the player's precision, written by the same GIF writer."""
    world = World.load(made / "world.bundle", device="cpu", precision=PLAYER_PRECISION)
    image = cv2.cvtColor(cv2.imread(str(made / "prompt.png")), cv2.COLOR_BGR2RGB)
    frames = [world.reset(image[None, None], seed=seed)[0]]
    frames += [world.step(np.array([a]))[0] for a in actions]
    save_animation(tmp_path / "ref.gif", frames, 15.0)
    return gif_frames(tmp_path / "ref.gif")


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_headless_run_records_the_prompt_and_one_frame_per_step(made, tmp_path, capsys):
    frames = run(made, tmp_path, "1,2,f12,3,noop,1", "--max-steps", "3", "--shots", str(tmp_path / "shots"), "--scale", "2")
    assert f"ms, {PLAYER_PRECISION})" in capsys.readouterr().out  # auto: bf16 where the CPU multiplies it natively
    assert len(frames) == 1 + 3 and frames[0].shape == (128, 128, 3)  # the 4th step key is never played
    shots = list((tmp_path / "shots").glob("*.png"))
    assert len(shots) == 1 and cv2.imread(str(shots[0])).shape == (128, 128, 3)
    assert play(["--world", str(made / "world.bundle"), "--keys", "1,2", "--device", "cpu",
                 "--record", str(tmp_path / "out.mp4")]) == 0
    video = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64 * 6


def test_keys_play_the_latent_actions_world_step_plays(made, tmp_path):
    # '2' is latent action 1; left, noop and space come from the bundle's key map
    played = run(made, tmp_path, "2,left,noop,space,8", "--seed", "5")
    assert same(played, reference(made, tmp_path, [1, KEYMAP["left"], KEYMAP["noop"], KEYMAP["jump"], 7], seed=5))
    assert not same(played, run(made, tmp_path, "3,3,3,3,3", "--seed", "5", name="other.gif"))


def test_r_resets_to_the_prompt_and_replays_the_same_future(made, tmp_path):
    frames = run(made, tmp_path, "1,2,r,1,2")
    assert len(frames) == 6
    assert same(frames[3:], frames[:3]) and not np.array_equal(frames[0], frames[2])


def test_real_time_mode_steps_every_tick_held_key_or_noop(made, tmp_path):
    idle = run(made, tmp_path, None, "--realtime", "--max-steps", "3")  # nothing held: the no-op action
    assert same(idle, run(made, tmp_path, "noop,noop,noop", name="step.gif"))
    held = run(made, tmp_path, "2,noop,left", "--realtime", name="held.gif")
    assert same(held, reference(made, tmp_path, [1, KEYMAP["noop"], KEYMAP["left"]]))


def test_keymap_is_computed_stored_in_the_bundle_and_read_back(made, tmp_path, capsys):
    bundle = tmp_path / "mine.bundle"
    shutil.copytree(made / "raw.bundle", bundle)
    assert play(["--world", str(bundle), "--keys", "1", "--device", "cpu"]) == 0
    assert "computed one from the model" in capsys.readouterr().out
    assert genie(["keymap", str(bundle), "--rollout-steps", "2", "--device", "cpu"]) == 0
    stored = json.loads((bundle / "config.json").read_text())["keymap"]
    assert set(stored) == set(KEYS) and all(0 <= a < 8 for a in stored.values())
    assert play(["--world", str(bundle), "--keys", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "computed one" not in out and "keys " + "  ".join(f"{k}={stored[k]}" for k in KEYS) in out


def test_keymap_from_labeled_shards_for_a_one_file_bundle(made, tmp_path, capsys):
    one = tmp_path / "world.safetensors"
    assert genie(["export", str(made / "run"), "--out", str(one)]) == 0
    assert genie(["keymap", str(one), "--data", str(made / "data"), "--device", "cpu"]) == 0
    assert "keymap (labels)" in capsys.readouterr().out  # noop, left, right, up, down: all named in the shards
    side = json.loads((tmp_path / "world.keymap.json").read_text())
    assert set(side) == set(KEYS)
    assert play(["--world", str(one), "--keys", "left", "--device", "cpu"]) == 0
    assert "computed one" not in capsys.readouterr().out


def test_keymap_file_overrides_the_bundles(made, tmp_path):
    (tmp_path / "km.json").write_text(json.dumps({"left": 7}))
    played = run(made, tmp_path, "left,right", "--keymap", str(tmp_path / "km.json"))
    assert same(played, reference(made, tmp_path, [7, KEYMAP["right"]]))


@pytest.mark.parametrize("kind", ["video", "shard"])
def test_prompt_from_a_video_or_a_shard(made, tmp_path, kind):
    if kind == "video":
        prompt = tmp_path / "clip.mp4"
        writer = cv2.VideoWriter(str(prompt), cv2.VideoWriter_fourcc(*"mp4v"), 10, (80, 48))
        for i in range(6):
            writer.write(np.full((48, 80, 3), 40 * i, np.uint8))
        writer.release()
    else:
        prompt = made / "data"
    assert play(["--world", str(made / "world.bundle"), "--prompt", str(prompt), "--keys", "1", "--device", "cpu",
                 "--record", str(tmp_path / "o.gif")]) == 0
    assert len(gif_frames(tmp_path / "o.gif")) == 2


def test_genie_play_is_the_same_player(made, tmp_path):
    assert genie(["play", "--world", str(made / "world.bundle"), "--prompt", str(made / "prompt.png"), "--keys", "2",
                  "--scale", "1", "--device", "cpu", "--record", str(tmp_path / "g.gif")]) == 0
    assert same(gif_frames(tmp_path / "g.gif"), reference(made, tmp_path, [1]))


def test_play_py_is_the_entry_point_and_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "play.py"), "--world", str(tmp_path), "--record", "out.avi"],
                          env={"SDL_VIDEODRIVER": "dummy", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and ".gif or .mp4" in proc.stderr, proc.stderr


@pytest.mark.skipif(not (ROOT / "worlds" / "coinrun" / "config.json").is_file(), reason="no shipped world")
def test_play_py_without_a_world_plays_the_shipped_one(tmp_path):
    """`make play` runs `play.py` with no --world: it must find worlds/coinrun from any working folder."""
    proc = subprocess.run([sys.executable, str(ROOT / "play.py"), "--keys", "right,jump", "--device", "cpu",
                           "--threads", "1", "--record", str(tmp_path / "shipped.gif")],
                          env={"SDL_VIDEODRIVER": "dummy", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(gif_frames(tmp_path / "shipped.gif")) == 3


@pytest.mark.parametrize("case, message", [
    ("missing bundle", "no such bundle"),
    ("no default world", "--world"),
    ("other version", "format version 99"),
    ("unreadable prompt", "cannot read image"),
    ("unknown key", "unknown key '9'"),
    ("keymap out of range", "0..7"),
    ("bad record", ".gif or .mp4"),
])
def test_bad_inputs_exit_2_with_one_line(made, tmp_path, capsys, monkeypatch, case, message):
    bundle, args = made / "world.bundle", ["--keys", "1"]
    if case == "missing bundle":
        bundle = tmp_path / "nothing"
    elif case == "other version":
        bundle = tmp_path / "old.bundle"
        shutil.copytree(made / "world.bundle", bundle)
        config = json.loads((bundle / "config.json").read_text())
        (bundle / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    elif case == "unreadable prompt":
        (tmp_path / "broken.png").write_text("not an image")
        args += ["--prompt", str(tmp_path / "broken.png")]
    elif case == "unknown key":
        args = ["--keys", "1,9"]
    elif case == "keymap out of range":
        (tmp_path / "km.json").write_text(json.dumps({"left": 8}))
        args += ["--keymap", str(tmp_path / "km.json")]
    elif case == "bad record":
        args += ["--record", str(tmp_path / "out.avi")]
    world = [] if case == "no default world" else ["--world", str(bundle)]
    monkeypatch.setattr("genie.play.player.DEFAULT_WORLD", tmp_path / "worlds" / "coinrun")
    assert play([*world, *args, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("play: error:") and message in err, err


# ---------------------------------------------------------------------- the key map's measurements
def synthetic_rollouts(starts=4, steps=4) -> np.ndarray:
    """The synthetic game (actions 0 noop, 1 left, 2 right, 3 up, 4 down, 5-7 red/yellow/blue) held from
    shared starts, its background scrolling: uint8 [starts, 8, steps+1, 64, 64, 3]."""
    out = np.zeros((starts, 8, steps + 1, 64, 64, 3), np.uint8)
    for p in range(starts):
        for a in range(8):
            game = SyntheticGame(1, seed=100 + p)
            out[p, a] = [game.render()[0], *(game.step(np.array([a]))[0] for _ in range(steps))]
    return out


def camera_rollouts(steps=4) -> np.ndarray:
    """A view that follows the player (a sprite fixed at the centre) over a random scene, like CoinRun:
    actions 1-4 move the view 2 px a frame left, right, up, down; 0 and 5-7 keep it still."""
    scene = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    moves = [(0, 0), (-2, 0), (2, 0), (0, -2), (0, 2), (0, 0), (0, 0), (0, 0)]
    out = np.zeros((1, 8, steps + 1, 64, 64, 3), np.uint8)
    for a, (dx, dy) in enumerate(moves):
        for t in range(steps + 1):
            out[0, a, t] = scene[48 + dy * t : 112 + dy * t, 48 + dx * t : 112 + dx * t]
            out[0, a, t, 28:36, 28:36] = (255, 0, 0)
    return out


@pytest.mark.parametrize("rollouts", [synthetic_rollouts, camera_rollouts])
def test_motion_keymap_finds_the_moves(rollouts):
    keymap, info = keymap_from_motion(*measure_motion(rollouts()))
    assert keymap == {"left": 1, "right": 2, "up": 3, "down": 4, "jump": 3, "noop": 0} and not info["weak"]


def test_motion_keymap_calls_a_near_still_best_match_weak():
    """No latent moves up: up still plays its best match, one that barely moves (0.03 px/frame, as
    the up latent of the CoinRun world shipped on 2026-12-05 did), and is reported weak; the others are not."""
    motion = np.array([[0.4, 0.0], [0.0, 0.0], [-2.4, 1.5], [-0.9, 1.2], [0.8, 0.0], [3.0, -2.3], [-0.9, -0.4], [0.0, -0.03]])
    change = np.array([0.4, 0.0, 1.4, 1.3, 0.3, 0.9, 0.5, 0.01])
    keymap, info = keymap_from_motion(motion, change)
    assert keymap == {"left": 2, "right": 5, "up": 7, "down": 3, "jump": 7, "noop": 1}
    assert info["weak"] == ["up"]


def test_label_keymap_picks_co_occurrence_above_the_base_rate():
    names = ["NOOP", "LEFT", "RIGHT", "UP"]
    # latent 0 is everywhere (the most frequent code for every true action); 5 means LEFT, 6 RIGHT, 2 UP
    latent = np.array([0] * 40 + [5] * 10 + [0] * 12 + [6] * 10 + [0] * 12 + [2] * 9 + [0] * 12 + [3] * 2)
    true = np.array([0] * 40 + [1] * 10 + [1] * 12 + [2] * 10 + [2] * 12 + [3] * 9 + [3] * 12 + [-1] * 2)
    keymap, info = keymap_from_labels(latent, true, names, num_actions=8)
    assert keymap == {"left": 5, "right": 6, "up": 2, "jump": 2, "noop": 0}  # no "down" in these names
    assert info["matched"]["jump"] == "UP"
