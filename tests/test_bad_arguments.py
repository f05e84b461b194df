"""Bad values a user types: one line naming the value, exit 2, no traceback, nothing touched.

Command-line values are checked at parse time (genie/arguments.py), before any bundle or data
is read, so these cases need no trained world; the World API's own checks follow.
"""

import json

import cv2
import numpy as np
import pytest
import torch

from genie.cli import main as genie
from genie.errors import GenieError
from genie.play.player import main as play
from genie.world import SampleConfig


@pytest.fixture
def paths(tmp_path):
    """A plain file (to write "under"), a folder, and a placeholder bundle with a stored key map."""
    (tmp_path / "file.txt").write_text("not a folder\n")
    (tmp_path / "folder").mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"keymap": {"left": 1}}))
    return tmp_path


SAMPLE = ["sample", "{bundle}", "--prompt", "{file}", "--actions", "1", "--out", "{tmp}/x.gif"]
CASES = [
    # (argv, words the one line must hold)
    (SAMPLE + ["--steps", "0"], "--steps"),
    (SAMPLE + ["--steps", "-1"], "--steps"),
    (SAMPLE + ["--temperature", "-1"], "--temperature"),
    (SAMPLE + ["--temperature", "nan"], "--temperature"),
    (SAMPLE + ["--fps", "0"], "--fps"),
    (SAMPLE + ["--precision", "fp16"], "--precision"),
    (SAMPLE + ["--scale", "0"], "--scale"),
    (SAMPLE + ["--device", "xyz"], "--device"),
    (SAMPLE + ["--seed", str(2**70)], "--seed"),
    (SAMPLE + ["--seed", "abc"], "--seed"),
    (["sample", "{bundle}", "--prompt", "{file}", "--out", "{file}/x.gif"], "is a file"),
    (["sample", "{bundle}", "--prompt", "{file}", "--out", "{tmp}/folder"], "is a folder"),
    (["eval", "{bundle}", "--data", "{tmp}", "--clips", "0"], "--clips"),
    (["eval", "{bundle}", "--data", "{tmp}", "--json", "{file}/eval.json"], "--json"),
    (["eval", "{bundle}", "--data", "{tmp}", "--grid", "{file}/grid.png"], "--grid"),
    (["eval", "{bundle}", "--data", "{tmp}", "--horizon", "-3"], "--horizon"),
    (["keymap", "{bundle}", "--rollout-steps", "0"], "--rollout-steps"),
    (["keymap", "{bundle}", "--rollout-steps", "-2"], "--rollout-steps"),
    (["keymap", "{bundle}", "--out", "{file}/map.json"], "--out"),
    (["label", "{file}", "--world", "{bundle}", "--out", "{file}/x.csv"], "--out"),
    (["label", "{file}", "--world", "{bundle}", "--out", "{tmp}/x.csv", "--batch", "0"], "--batch"),
    (["record", "--env", "synthetic", "--episodes", "1", "--max-steps", "4", "--out", "{tmp}/d", "--size", "100000"],
     "--size"),
    (["record", "--env", "synthetic", "--episodes", "0", "--max-steps", "4", "--out", "{tmp}/d"], "--episodes"),
    (["record", "--env", "synthetic", "--episodes", "1", "--max-steps", "4", "--out", "{file}"], "--out"),
    (["ingest", "{file}", "--out", "{file}/data"], "--out"),
    (["ingest", "{file}", "--out", "{tmp}/d", "--fps", "0"], "--fps"),
    (["judge", "train", "{tmp}", "--out", "{tmp}/j", "--steps", "0"], "--steps"),
    (["judge", "train", "{tmp}", "--out", "{tmp}/j", "--val-fraction", "1.5"], "--val-fraction"),
]


def fill(argv, paths):
    names = {"tmp": str(paths), "file": str(paths / "file.txt"), "bundle": str(paths / "bundle")}
    return [a.format(**names) for a in argv]


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_command_line_values_are_one_line_and_touch_nothing(argv, words, paths, capsys):
    before = sorted(p.name for p in paths.rglob("*"))
    keymap = (paths / "bundle" / "config.json").read_text()
    assert genie(fill(argv, paths)) == 2
    assert words in one_line(capsys)
    assert sorted(p.name for p in paths.rglob("*")) == before  # nothing created or removed
    assert (paths / "bundle" / "config.json").read_text() == keymap  # the stored key map is untouched


@pytest.mark.parametrize("argv, words", [
    (["--scale", "500"], "--scale"),
    (["--shots", "{file}"], "--shots"),
    (["--fps", "0"], "--fps"),
    (["--steps", "0"], "--steps"),
    (["--record", "{tmp}/folder"], "--record"),
])
def test_bad_player_values_are_one_line(argv, words, paths, capsys):
    assert play(fill(argv, paths)) == 2
    assert words in one_line(capsys)


def test_player_without_a_display_says_so_instead_of_waiting(monkeypatch, paths, capsys):
    """With no window system SDL falls back to its offscreen driver by itself: nobody could press a key."""
    import pygame as pg

    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    pg.display.quit()  # start SDL afresh, as a new process would
    try:
        assert play(["--world", str(paths / "bundle")]) == 2
        assert "no display" in one_line(capsys)
    finally:
        pg.display.quit()


def tiny_world():
    from genie.models.dynamics import Dynamics, DynamicsConfig
    from genie.models.lam import LAMConfig, LatentActionModel
    from genie.models.tokenizer import TokenizerConfig, VideoTokenizer
    from genie.world import World

    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(height=16, width=16, patch_size=4, dim=16, encoder_depth=1, decoder_depth=1,
                                         heads=2, codebook_size=32, code_dim=8))
    lam = LatentActionModel(LAMConfig(height=16, width=16, patch_size=4, dim=16, encoder_depth=1, decoder_depth=1,
                                      heads=2, num_actions=4))
    dyn = Dynamics(DynamicsConfig(vocab_size=32, grid_h=4, grid_w=4, num_actions=4, dim=16, depth=1, heads=2))
    return World(tok, lam, dyn, SampleConfig(steps=2, context=4, tokenizer_context=2, lam_context=4))


@pytest.mark.parametrize("seed, words", [(2**70, "2**31 - 1"), ("abc", "'abc'"), (-1, "-1"), (1.5, "1.5"),
                                         ([0, "x"], "'x'")])
def test_world_seeds_out_of_range_are_clear_errors(seed, words):
    world = tiny_world()
    with pytest.raises(GenieError, match="seed") as err:
        world.reset(np.zeros((2, 16, 16, 3), np.uint8) if isinstance(seed, list) else np.zeros((16, 16, 3), np.uint8),
                    seed=seed)
    assert words in str(err.value)


def test_world_takes_an_image_path_as_its_prompt(tmp_path):
    world = tiny_world()
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    frames = world.reset(str(tmp_path / "frame.png"), seed=0)
    assert frames.shape == (1, 16, 16, 3)
    assert np.array_equal(world.reset(tmp_path / "frame.png", seed=0), frames)  # a Path the same
    with pytest.raises(GenieError, match="missing.png: prompt image not found"):
        world.reset(str(tmp_path / "missing.png"))


@pytest.mark.parametrize("field, value", [("steps", 0), ("steps", -1), ("temperature", -1.0),
                                          ("temperature", float("nan")), ("context", 1)])
def test_sampler_settings_out_of_range_are_refused(field, value):
    from genie.world import World

    w = tiny_world()
    with pytest.raises(GenieError, match=f"sample.{field}"):
        World(w.tokenizer, w.lam, w.dynamics, SampleConfig(**{field: value}))


def save_tiny_bundle(path, **dynamics_changes):
    from dataclasses import asdict

    from genie.bundle import save_bundle

    w = tiny_world()
    weights = {f"{name}.{k}": v for name, m in (("tokenizer", w.tokenizer), ("lam", w.lam), ("dynamics", w.dynamics))
               for k, v in m.state_dict().items()}
    components = {"tokenizer": asdict(w.tokenizer.config), "lam": asdict(w.lam.config),
                  "dynamics": {**asdict(w.dynamics.config), **dynamics_changes}}
    return save_bundle(path, {"components": components, "sample": asdict(w.sample)}, weights)


def test_a_bundle_whose_config_does_not_match_its_weights_is_one_line(tmp_path):
    from genie.world import World

    save_tiny_bundle(tmp_path / "bad", dim=32)  # the weights are dim 16
    with pytest.raises(GenieError, match="dynamics weights do not fit") as err:
        World.load(tmp_path / "bad", device="cpu")
    assert "\n" not in str(err.value)


def test_eval_on_footage_of_another_size_is_one_line(tmp_path, capsys):
    save_tiny_bundle(tmp_path / "world")  # a 16x16 world
    assert genie(["record", "--env", "synthetic", "--episodes", "2", "--max-steps", "12", "--size", "32",
                  "--out", str(tmp_path / "data")]) == 0
    capsys.readouterr()
    assert genie(["eval", str(tmp_path / "world"), "--data", str(tmp_path / "data"), "--device", "cpu"]) == 2
    assert "holds 32x32 frames" in one_line(capsys)
