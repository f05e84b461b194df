"""The video tokenizer: it learns, it trains through `genie train`, resumes, and exports exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data_pipeline.dataset import ClipDataset
from data_pipeline.shards import find_shards
from genie.bundle import load_tokenizer, read_bundle
from genie.cli import main
from genie.config import load_yaml
from genie.errors import GenieError
from genie.eval.metrics import mean_psnr
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer, float_to_frames
from genie.training.common import make_optimizer
from genie.training.tokenizer_module import TokenizerModule

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "tokenizer.yaml")
FAST = ["train.wandb=false", "train.progress_bar=false"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["record", "--env", "synthetic", "--episodes", "12", "--max-steps", "40", "--out", str(out)]) == 0
    return out


def train(args: list[str]) -> int:
    return main(["train", "tokenizer", "--config", TINY, *args, *FAST])


def test_tiny_tokenizer_overfits_a_few_clips(synth):
    torch.manual_seed(0)
    clips = ClipDataset(find_shards(synth), clip_len=4, stride=16)
    frames = torch.stack([clips[i]["frames"] for i in range(4)])  # [4, 4, 64, 64, 3]
    raw = load_yaml(TINY)
    module = TokenizerModule(model=raw["model"], train={**raw["train"], "max_steps": 300})
    model = module.model
    opt = make_optimizer(model, module.train_config)
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    for _ in range(300):
        loss = module.training_step({"frames": frames}, 0)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        recon, _ = model.eval()(frames)
    assert mean_psnr(float_to_frames(recon), frames) >= 25.0


def test_tokens_of_a_frame_depend_only_on_frames_up_to_it():
    torch.manual_seed(0)
    model = VideoTokenizer(TokenizerConfig(patch_size=8, dim=32, encoder_depth=1, decoder_depth=1, heads=2)).eval()
    video = torch.randint(0, 256, (1, 4, 64, 64, 3), dtype=torch.uint8)
    changed = video.clone()
    changed[:, 2:] = 255 - changed[:, 2:]
    with torch.no_grad():
        a, b = model(video), model(changed)
    assert torch.equal(a[1].indices[:, :2], b[1].indices[:, :2])
    assert torch.equal(a[0][:, :2], b[0][:, :2])


def test_train_then_export_loads_bit_exact(synth, tmp_path):
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    assert train(["--data", str(synth), "--out", str(run), "train.max_steps=6", "train.val_every=3"]) == 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "samples" / "recon-latest.png").is_file()
    assert list((run / "logs").glob("version_0/metrics.csv"))
    assert main(["export", str(run), "--out", str(bundle)]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "one.safetensors")]) == 0

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    trained = TokenizerModule(**{k: ckpt["hyper_parameters"][k] for k in ("model", "train")})
    trained.load_state_dict(ckpt["state_dict"])
    video = ClipDataset(find_shards(synth), clip_len=4)[0]["frames"][None]
    with torch.no_grad():
        expected, vq = trained.model.eval()(video)
        for path in (bundle, tmp_path / "one.safetensors"):
            loaded = load_tokenizer(path)
            for key, value in trained.model.state_dict().items():
                assert torch.equal(loaded.state_dict()[key], value), key
            got, got_vq = loaded(video)
            assert torch.equal(got, expected) and torch.equal(got_vq.indices, vq.indices)


def test_bundle_of_another_format_version_is_refused(synth, tmp_path):
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    assert train(["--data", str(synth), "--out", str(run), "train.max_steps=2"]) == 0
    assert main(["export", str(run), "--out", str(bundle)]) == 0
    config = json.loads((bundle / "config.json").read_text())
    config["format_version"] = 99
    (bundle / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenieError, match="format version 99"):
        read_bundle(bundle)


def test_resume_continues_at_the_checkpointed_step(synth, tmp_path):
    run = tmp_path / "run"
    assert train(["--data", str(synth), "--out", str(run), "train.max_steps=4", "train.ckpt_every=2"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    # the run exists: starting again without --resume refuses rather than overwrite it
    assert train(["--data", str(synth), "--out", str(run)]) == 2
    assert train(["--data", str(synth), "--out", str(run), "--resume", "train.max_steps=7"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 7
    assert train(["--data", str(synth), "--out", str(run), "--resume", "model.dim=8"]) == 2


def test_killed_run_resumes_from_its_last_checkpoint(synth, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "genie", "train", "tokenizer", "--config", TINY, "--data", str(synth),
           "--out", str(run), "train.max_steps=400", "train.ckpt_every=5", "train.val_every=1000", *FAST]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (last.exists() and _step(last) >= 10):
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = _step(last)  # whatever the kill interrupted, last.ckpt is whole
    assert 10 <= killed_at < 400
    target = killed_at + 5
    result = subprocess.run([*cmd, "--resume", f"train.max_steps={target}"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _step(last) == target
    versions = sorted((run / "logs").glob("version_*/metrics.csv"))
    resumed_steps = _logged_steps(versions[-1])
    assert resumed_steps and min(resumed_steps) > killed_at  # it went on, it did not start over


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


def _logged_steps(csv: Path) -> list[int]:
    import csv as csvlib

    with open(csv) as f:
        return [int(row["step"]) for row in csvlib.DictReader(f) if row.get("step")]


def test_unknown_config_key_is_one_clear_error(synth, tmp_path, capsys):
    assert train(["--data", str(synth), "--out", str(tmp_path / "r"), "model.dimm=64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'dimm'" in err[0] and "tokenizer.yaml" in err[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  dim: 64\n  heads_: 4\n")
    assert main(["train", "tokenizer", "--config", str(bad), "--data", str(synth), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "heads_" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()  # nothing half-written


def test_wandb_logs_offline_by_default(synth, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run = tmp_path / "run"
    args = ["train", "tokenizer", "--config", TINY, "--data", str(synth), "--out", str(run),
            "train.max_steps=2", "train.progress_bar=false"]
    assert main(args) == 0
    assert list((run / "wandb").glob("offline-run-*"))


def test_model_frames_must_match_the_data(synth, tmp_path, capsys):
    assert train(["--data", str(synth), "--out", str(tmp_path / "r"), "model.height=32", "model.width=32"]) == 2
    assert "expects (32, 32, 3)" in capsys.readouterr().err


def test_a_deeper_decoder_loads_a_shallower_one_and_reconstructs_as_it_did():
    torch.manual_seed(0)
    config = TokenizerConfig(height=16, width=16, patch_size=4, dim=32, encoder_depth=1, decoder_depth=1, heads=2,
                             codebook_size=16, code_dim=8)
    shallow = VideoTokenizer(config).eval()
    deep = VideoTokenizer(TokenizerConfig(**{**config.__dict__, "decoder_depth": 3})).eval()
    deep.load_weights(shallow.state_dict())
    frames = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(deep(frames)[0], shallow(frames)[0])
    assert deep.decoder.blocks[2].mlp[2].weight.abs().sum() == 0  # identity now, a block that learns later
    with pytest.raises(ValueError, match="another tokenizer"):
        VideoTokenizer(TokenizerConfig(**{**config.__dict__, "dim": 16})).load_weights(shallow.state_dict())
    with pytest.raises(ValueError, match="another tokenizer"):
        shallow.load_weights(deep.state_dict())


def test_reconstruction_is_uint8_in_range():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])
    assert float_to_frames(x).tolist() == [0, 0, 128, 255, 255]
    assert np.array_equal(float_to_frames(torch.zeros(2, 2)).numpy(), np.full((2, 2), 128, np.uint8))
