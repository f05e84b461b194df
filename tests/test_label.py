"""`genie label`: latent actions of videos, GIFs, frame folders and shards, as a CSV."""

import csv
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_pipeline.ingest import to_frame
from data_pipeline.synthetic import ACTION_NAMES
from genie.bundle import save_bundle
from genie.cli import main
from genie.label import label_stream
from genie.models.dynamics import Dynamics, DynamicsConfig
from genie.models.lam import LAMConfig, LatentActionModel
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer
from genie.world import SampleConfig, World

torch.set_num_threads(1)


def tiny_world() -> World:
    """Random weights (as in tests/test_world.py), but every action code sits on a real transition of
    the synthetic game, so the LAM picks several different actions (a random codebook picks one)."""
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(patch_size=8, dim=32, encoder_depth=1, decoder_depth=1, heads=2,
                                         codebook_size=64, code_dim=8))
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, num_actions=4))
    dyn = Dynamics(DynamicsConfig(vocab_size=64, grid_h=8, grid_w=8, num_actions=4, dim=32, depth=2, heads=2))
    world = World(tok, lam, dyn, SampleConfig(steps=2, context=6, tokenizer_context=3, lam_context=4), device="cpu")
    from data_pipeline.synthetic import SyntheticGame

    game = SyntheticGame(num_games=1, seed=1)
    video = np.stack([game.reset()[0]] + [game.step(np.array([a]))[0] for a in (1, 7, 3, 0, 5, 2, 4, 6)])
    inputs = []
    hook = world.lam.vq.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    with torch.no_grad():
        world.lam.encode(torch.from_numpy(video[None]))
        z = F.normalize(world.lam.vq.proj_in(inputs[0].reshape(-1, 32)), dim=-1)  # [8 transitions, code_dim]
        world.lam.vq.codebook.copy_(z[[0, 2, 4, 6]])
    hook.remove()
    return world


def save_world(world: World, path: Path) -> Path:
    components = {"tokenizer": asdict(world.tokenizer.config), "lam": asdict(world.lam.config),
                  "dynamics": asdict(world.dynamics.config)}
    weights = {f"{name}.{k}": v for name in components for k, v in getattr(world, name).state_dict().items()}
    return save_bundle(path, {"components": components, "sample": asdict(world.sample)}, weights)


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """A world bundle and one input of every kind, as real files."""
    d = tmp_path_factory.mktemp("label")
    save_world(tiny_world(), d / "world")
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (20, 96, 128, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 15, (128, 96))
    for frame in video:
        writer.write(frame)
    writer.release()
    anim = cv2.Animation()
    anim.frames, anim.durations = list(video[:7]), [100] * 7
    assert cv2.imwriteanimation(str(d / "clip.gif"), anim)
    (d / "frames").mkdir()
    for i in range(9):
        cv2.imwrite(str(d / "frames" / f"{i}.png"), cv2.resize(video[i], (80, 80)))
    assert main(["record", "--env", "synthetic", "--episodes", "3", "--max-steps", "14", "--out", str(d / "data")]) == 0
    return d


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def decoded(d: Path) -> dict[str, list[np.ndarray]]:
    """Every input's episodes as the files hold them (RGB, native size): source -> [episode frames]."""
    cap, frames = cv2.VideoCapture(str(d / "clip.mp4")), []
    while (read := cap.read())[0]:
        frames.append(read[1][..., ::-1])
    ok, anim = cv2.imreadanimation(str(d / "clip.gif"))
    (shard,) = (d / "data").rglob("*.h5")
    with h5py.File(shard, "r") as f:
        episodes = [f["frames"][a:b] for a, b in f["episodes"][()]]
    return {str(d / "clip.mp4"): [np.stack(frames)],
            str(d / "clip.gif"): [np.stack([f[..., ::-1] for f in anim.frames])],
            str(d / "frames"): [np.stack([cv2.imread(str(d / "frames" / f"{i}.png"))[..., ::-1] for i in range(9)])],
            str(shard): episodes}


def test_one_row_per_transition_with_the_worlds_own_labels(footage, tmp_path):
    out = tmp_path / "labels.csv"
    inputs = [footage / "clip.mp4", footage / "clip.gif", footage / "frames", footage / "data"]
    assert main(["label", *map(str, inputs), "--world", str(footage / "world"), "--out", str(out),
                 "--batch", "2"]) == 0  # 2 LAM windows of 4 frames per forward: a 20-frame video streams
    rows = read_csv(out)
    assert list(rows[0]) == ["source", "episode", "t", "latent_action", "confidence"]
    world = World.load(footage / "world", device="auto")  # where `genie label` ran (bf16 on a GPU)
    tolerance = 1e-4 if world.device.type == "cpu" else 1e-2  # bf16 rounds by batch shape
    seen = set()
    for source, episodes in decoded(footage).items():
        for e, frames in enumerate(episodes):
            mine = [r for r in rows if r["source"] == source and int(r["episode"]) == e]
            assert [int(r["t"]) for r in mine] == list(range(len(frames) - 1)), (source, e)
            actions, confidence = world.infer_actions(frames, return_confidence=True)  # any size: World converts
            assert [int(r["latent_action"]) for r in mine] == actions.tolist(), (source, e)
            np.testing.assert_allclose([float(r["confidence"]) for r in mine], confidence, atol=tolerance)
            seen |= set(actions.tolist())
    assert len(rows) == 19 + 6 + 8 + 3 * 13 and len(seen) > 1


def test_map_labels_rows_with_the_shards_action_names(footage, tmp_path):
    out = tmp_path / "labels.csv"
    data = footage / "data"
    assert main(["label", str(footage / "clip.mp4"), str(data), "--world", str(footage / "world"), "--out", str(out),
                 "--map", str(data)]) == 0
    rows = read_csv(out)
    assert list(rows[0])[-1] == "real_action" and all(r["real_action"] in ACTION_NAMES for r in rows)
    # the map is the most frequent true action of each latent action on the --map footage
    (shard,) = data.rglob("*.h5")
    with h5py.File(shard, "r") as f:
        true = np.concatenate([f["actions"][a : b - 1] for a, b in f["episodes"][()]])
    mine = [r for r in rows if r["source"] == str(shard)]
    latent = np.array([int(r["latent_action"]) for r in mine])
    for a in np.unique(latent):
        most = np.bincount(true[latent == a], minlength=8).argmax()
        assert {r["real_action"] for r, la in zip(mine, latent) if la == a} == {ACTION_NAMES[most]}
    video_rows = [r for r in rows if r["source"].endswith("clip.mp4")]
    names = {int(r["latent_action"]): r["real_action"] for r in mine}
    assert all(r["real_action"] == names[int(r["latent_action"])] for r in video_rows if int(r["latent_action"]) in names)


def test_confidence_is_the_softmax_of_the_code_similarities(footage):
    world = World.load(footage / "world", device="cpu")
    video = decoded(footage)[str(footage / "clip.gif")][0]
    actions, confidence = world.infer_actions(np.stack([video, video[::-1]]), return_confidence=True)
    assert actions.shape == confidence.shape == (2, 6) and confidence.dtype == np.float32
    assert np.array_equal(actions, world.infer_actions(np.stack([video, video[::-1]])))
    frames = torch.from_numpy(np.stack([to_frame(f, 64) for f in video])[None])  # the one image rule
    with torch.no_grad():
        similarity = world.lam.encode(frames[:, :4]).similarity  # the first LAM window: transitions 0..2
    expected = torch.softmax(similarity / 0.1, dim=-1).amax(-1)[0].numpy()
    np.testing.assert_allclose(confidence[0, :3], expected, atol=1e-5)
    assert (confidence >= 1 / world.num_actions).all() and (confidence <= 1).all()


@pytest.mark.parametrize("length", [2, 3, 4, 5, 8, 13, 14, 31])
def test_streaming_reads_a_bounded_window_and_agrees_with_the_whole_video(length):
    world = tiny_world()  # lam_context 4: windows of 4 frames starting every 3
    video = np.random.default_rng(length).integers(0, 256, (length, 64, 64, 3), dtype=np.uint8)
    pulled = []

    def frames():
        for i, frame in enumerate(video):
            pulled.append(i)
            yield frame[None]

    outputs = []
    for actions, confidence in label_stream(world, frames(), batch=2):
        outputs.append((len(pulled), actions, confidence))
    assert outputs[0][0] <= 2 * 3 + 1 + 1  # at most 2 windows (7 frames) read ahead of the first labels
    expected, expected_conf = world.infer_actions(video, return_confidence=True)
    assert np.array_equal(np.concatenate([o[1] for o in outputs]), expected)
    np.testing.assert_allclose(np.concatenate([o[2] for o in outputs]), expected_conf, atol=1e-5)


def one_line_error(capsys, *names) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genie: error:") and "Traceback" not in err, err
    assert all(n in err for n in names), err
    return err


def test_bad_inputs_exit_2_with_one_line_naming_the_file(footage, tmp_path, capsys):
    world, out = str(footage / "world"), tmp_path / "labels.csv"

    def label(*args):
        return main(["label", *map(str, args), "--out", str(out)])

    assert label(tmp_path / "missing.mp4", "--world", world) == 2
    one_line_error(capsys, "missing.mp4", "does not exist")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 100)
    assert label(tmp_path / "broken.mp4", "--world", world) == 2
    one_line_error(capsys, "broken.mp4")
    (tmp_path / "notes.txt").write_text("hello")
    assert label(tmp_path / "notes.txt", "--world", world) == 2
    one_line_error(capsys, "notes.txt")
    (tmp_path / "single").mkdir()
    shutil.copy(footage / "frames" / "0.png", tmp_path / "single" / "0.png")
    assert label(tmp_path / "single", "--world", world) == 2
    one_line_error(capsys, "single", "too short")
    assert label(footage / "clip.gif", "--world", tmp_path / "no-bundle") == 2
    one_line_error(capsys, "no-bundle")
    old = tmp_path / "old-bundle"
    shutil.copytree(footage / "world", old)
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "format_version": 0}))
    assert label(footage / "clip.gif", "--world", old) == 2
    one_line_error(capsys, "old-bundle", "version 0")
    assert main(["ingest", str(footage / "frames"), "--out", str(tmp_path / "unlabeled")]) == 0
    capsys.readouterr()
    assert label(footage / "clip.gif", "--world", world, "--map", tmp_path / "unlabeled") == 2
    one_line_error(capsys, "unlabeled", "no true actions")
    assert not out.exists() and not list(tmp_path.glob(".labels.csv.tmp*"))  # nothing half-written
