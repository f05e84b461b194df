"""The judge (a supervised inverse-dynamics model) and the player's measurements of `genie eval`:
the hold-still gain, detail kept, view motion, and key following read by the judge."""

import json

import cv2
import numpy as np
import pytest
import torch

from data_pipeline.actions import action_classes
from data_pipeline.shards import read_episodes
from genie.cli import main
from genie.eval.action_map import direction_latents
from genie.eval.evaluate import rollout_metrics
from genie.eval.judge import Judge
from genie.eval.metrics import view_shift

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Synthetic footage, its held-key footage, and a judge trained on it (~1 min on 2 cores)."""
    root = tmp_path_factory.mktemp("synthetic")
    assert main(["record", "--env", "synthetic", "--episodes", "64", "--max-steps", "48", "--seed", "1",
                 "--out", str(root / "train")]) == 0
    assert main(["record", "--env", "synthetic", "--episodes", "12", "--max-steps", "12", "--policy", "hold",
                 "--seed", "2", "--out", str(root / "hold")]) == 0
    assert main(["judge", "train", str(root / "train"), "--out", str(root / "judge"), "--steps", "250",
                 "--batch", "48", "--history", "0", "--val-fraction", "0.2"]) == 0
    return root


def test_judge_reads_the_synthetic_games_actions(synthetic, capsys):
    judge = Judge.load(synthetic / "judge", device="cpu")
    info = judge.info
    print(f"judge {info['accuracy']:.1%} vs majority {info['majority_baseline']:.1%}")
    assert judge.classes == ["noop", "left", "right", "up", "down", "red", "yellow", "blue"]
    # every action is identifiable from two frames: a small CNN reads nearly all (measured 96.6% after 300 steps)
    assert info["accuracy"] >= 0.8 and info["majority_baseline"] < 0.2
    assert main(["judge", "eval", str(synthetic / "judge"), "--data", str(synthetic / "train")]) == 0
    assert "judge accuracy on" in capsys.readouterr().out


def test_judge_reads_held_keys_of_real_footage_as_held(synthetic):
    judge = Judge.load(synthetic / "judge", device="cpu")
    episodes = list(read_episodes(synthetic / "hold"))
    classes = action_classes(episodes[0].info.action_names)
    hits = []
    for ep in episodes:
        held = classes.horizontal[classes.classify(ep.actions[:1])[0]]
        read = classes.horizontal[judge.read(ep.frames[None])[0]]
        hits.append((read == held).mean())
    assert {int(classes.horizontal[classes.classify(e.actions[:1])[0]]) for e in episodes} == {-1, 0, 1}
    assert np.mean(hits) >= 0.8


def test_a_judge_for_other_classes_or_frame_size_is_refused(synthetic, tmp_path, capsys):
    judge = Judge.load(synthetic / "judge", device="cpu")
    with pytest.raises(Exception, match="trained on classes"):
        judge.check(["LEFT", "NOOP"], (64, 64, 3), "footage")
    with pytest.raises(Exception, match="reads 64x64 frames"):
        judge.check(judge.classes, (32, 32, 3), "footage")
    other = tmp_path / "small"
    assert main(["record", "--env", "synthetic", "--episodes", "4", "--max-steps", "8", "--size", "32",
                 "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["judge", "eval", str(synthetic / "judge"), "--data", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reads 64x64 frames" in err and str(other) in err


def test_judge_train_refuses_bad_flags_and_an_out_that_is_not_a_judge(synthetic, tmp_path, capsys):
    assert main(["judge", "train", str(synthetic / "train"), "--out", str(tmp_path / "j"), "--steps", "0"]) == 2
    keep = tmp_path / "dataset"
    keep.mkdir()
    (keep / "precious.txt").write_text("do not replace me")
    assert main(["judge", "train", str(synthetic / "train"), "--out", str(keep), "--steps", "1"]) == 2
    assert "is not a judge" in capsys.readouterr().err
    assert (keep / "precious.txt").read_text() == "do not replace me"


@pytest.mark.slow  # ~45-90 s (records CoinRun, trains a judge): out of the default run to keep CI under 15 minutes
@pytest.mark.skipif(not __import__("importlib").util.find_spec("procgen"), reason="procgen not installed")
def test_judge_reads_coinrun_movement_classes_above_the_majority(tmp_path):
    data = tmp_path / "coinrun"
    assert main(["record", "--env", "coinrun", "--episodes", "80", "--max-steps", "100", "--policy", "uniform",
                 "--seed", "3", "--out", str(data)]) == 0
    assert main(["judge", "train", str(data), "--out", str(tmp_path / "judge"), "--steps", "400",
                 "--batch", "64", "--history", "0", "--val-fraction", "0.2"]) == 0
    info = Judge.load(tmp_path / "judge", device="cpu").info
    print(f"coinrun judge {info['accuracy']:.1%} vs majority {info['majority_baseline']:.1%}")
    # measured 58.1% vs 50.7% at batch 32; the full-size judge reaches ~70% (benchmarks/RESULTS.md)
    assert info["accuracy"] >= info["majority_baseline"] + 0.04


# ---------------------------------------------------------------------- eval's rollout measurements
class ReplayWorld:
    """A stand-in world that returns given frames: the real future (a perfect world) or flat ones."""

    num_actions = 4

    def __init__(self, future: np.ndarray):
        self.future = future  # uint8 [B, horizon, H, W, 3]

    def reconstruct(self, clip):
        return clip

    def infer_actions(self, clip):
        return np.zeros((clip.shape[0], clip.shape[1] - 1), np.int64)

    def reset(self, prompt, seed=None):
        self.t = 0
        return prompt[:, -1]

    def step(self, actions):
        self.t += 1
        return self.future[: len(actions), self.t - 1]


def real_clips(root, length=31):
    eps = [e.frames[:length] for e in read_episodes(root / "train") if len(e.frames) >= length]
    return np.stack(eps[:6])


def test_a_world_that_returns_the_real_future_beats_holding_still_and_keeps_detail(synthetic):
    clips = real_clips(synthetic)
    r = rollout_metrics(ReplayWorld(clips[:, 1:]), clips, 1, 30, seed=0, batch_size=8)
    assert r["hold_still"]["min_gain"] > 0 and len(r["hold_still"]["gain"]) == 16
    assert all(abs(v - 1) < 1e-6 for v in r["detail"].values()) and list(r["detail"]) == ["8", "16", "30"]


def test_view_shift_reads_how_far_the_content_moved_and_nothing_where_no_shift_explains_it():
    rng = np.random.default_rng(0)
    scene = blobs(rng, 96, 96)
    frames = np.stack([scene[16:80, 16:80], scene[18:82, 13:77], rng.integers(0, 256, (64, 64, 3), np.uint8)])
    shift = view_shift(frames[None])  # content 3 px right and 2 px up, then a frame of noise
    assert shift.shape == (1, 2, 2)
    np.testing.assert_allclose(shift[0, 0], [3, -2], atol=0.3)
    np.testing.assert_array_equal(shift[0, 1], [0, 0])


def blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """uint8 [h, w, 3]: smooth blobs with edges, like a level's tiles."""
    noise = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2) * 4 - 384, 0, 255).astype(np.uint8)


def panning_clips(step: int = 3, n: int = 4, length: int = 31) -> np.ndarray:
    """uint8 [n, length, 64, 64, 3]: a camera over a scene of blobs, panning `step` px a frame for
    8 frames, then still for 8, and so on."""
    rng = np.random.default_rng(1)
    clips = []
    for _ in range(n):
        scene = blobs(rng, 64, 64 + 3 * length)
        x = np.cumsum([0] + [step * ((t // 8) % 2 == 0) for t in range(length - 1)]) + (3 * length if step < 0 else 0)
        clips.append([scene[:, s : s + 64] for s in x])
    return np.asarray(clips)


def test_a_world_that_follows_the_real_view_follows_its_moves_and_one_that_holds_still_follows_none():
    clips = panning_clips()
    real = rollout_metrics(ReplayWorld(clips[:, 1:]), clips, 1, 30, seed=0, batch_size=8)["motion"]
    assert real["moves"] == 4 * 8 and real["still"] == 4 * 8  # t = 1..16: 8 frames panning, 8 still
    assert real["followed"] == 1 and real["still_kept"] == 1 and real["generated_px"] == real["real_px"] > 1
    held = np.ascontiguousarray(np.broadcast_to(clips[:, :1], clips[:, 1:].shape))
    frozen = rollout_metrics(ReplayWorld(held), clips, 1, 30, seed=0, batch_size=8)["motion"]
    assert frozen["followed"] == 0 and frozen["still_kept"] == 1 and frozen["generated_px"] < 0.01
    wrong_way = rollout_metrics(ReplayWorld(panning_clips(step=-3)[:, 1:]), clips, 1, 30, seed=0, batch_size=8)
    assert wrong_way["motion"]["followed"] == 0 and wrong_way["motion"]["generated_px"] > 1


def test_a_world_that_melts_into_flat_frames_loses_detail_and_the_hold_still_gain(synthetic):
    clips = real_clips(synthetic)
    flat = np.broadcast_to(clips[:, 1:].mean(axis=(2, 3), keepdims=True).astype(np.uint8), clips[:, 1:].shape)
    r = rollout_metrics(ReplayWorld(np.ascontiguousarray(flat)), clips, 1, 30, seed=0, batch_size=8)
    assert max(r["detail"].values()) < 0.3
    assert r["hold_still"]["min_gain"] < 0


def test_direction_latents_pick_the_latent_most_often_seen_with_each_direction():
    # counts [latent, (left, none, right)]: latent 0 is used most but mostly with "none"
    counts = [[50, 400, 50], [90, 10, 0], [0, 5, 95], [2, 0, 0]]
    assert direction_latents({"counts": counts}) == {"left": 1, "none": 0, "right": 2}  # latent 3: too rare


def test_eval_reports_hold_still_detail_judge_and_key_following(synthetic, tmp_path, capsys):
    """End to end through `genie eval --judge` on a briefly trained synthetic world."""
    data = tmp_path / "heldout"
    assert main(["record", "--env", "synthetic", "--episodes", "6", "--max-steps", "40", "--seed", "5",
                 "--out", str(data)]) == 0
    assert main(["record", "--env", "synthetic", "--episodes", "6", "--max-steps", "10", "--policy", "hold",
                 "--seed", "6", "--out", str(data)]) == 0
    quiet = ["train.wandb=false", "train.progress_bar=false"]
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    assert main(["train", "tokenizer", "--config", str(root / "configs/tiny/tokenizer.yaml"), "--data",
                 str(synthetic / "train"), "--out", str(tmp_path / "tok"), "train.max_steps=2", *quiet]) == 0
    assert main(["export", str(tmp_path / "tok"), "--out", str(tmp_path / "tok.b")]) == 0
    assert main(["train", "world", "--config", str(root / "configs/tiny/world.yaml"), "--data", str(synthetic / "train"),
                 "--tokenizer", str(tmp_path / "tok.b"), "--out", str(tmp_path / "w"), "train.max_steps=2",
                 *quiet]) == 0
    assert main(["export", str(tmp_path / "w"), "--out", str(tmp_path / "w.b")]) == 0
    capsys.readouterr()
    out = tmp_path / "eval.json"
    assert main(["eval", str(tmp_path / "w.b"), "--data", str(data), "--judge", str(synthetic / "judge"),
                 "--clips", "4", "--key-starts", "2", "--steps", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    for row in ("gain over holding still", "detail kept", "judge on the same transitions",
                "key following, probe's latents", "key following, real game (held keys)"):
        assert row in table
    r = json.loads(out.read_text())
    k = r["key_following"]
    assert set(k["probe"]["share"]) == {"left", "right", "none"} and k["real"]["mean"] >= 0.8
    assert 0 < r["judge"]["accuracy"] <= 1 and "share_of_judge" in r["probe_classes"]
    assert r["clips"] == 4  # clips come from the ordinary footage only (held-key episodes are 10 frames)
    assert torch.isfinite(torch.tensor(r["hold_still"]["gain"])).all()
