"""worlds/build_coinrun_gpu.sh, the one-run GPU build, end to end on the CPU with tiny settings: its
footage, its two time-capped runs, what it leaves in OUT (the bundle in parts that reassemble into a
World) and a rerun that resumes instead of starting over."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from genie.world import World

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~3 min on 2 cores: records CoinRun, trains a judge, a tokenizer and a world
@pytest.mark.skipif(not __import__("importlib").util.find_spec("procgen"), reason="procgen not installed")
def test_gpu_build_dry_run_leaves_a_playable_world_and_its_eval_in_out(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    env = {**os.environ, "WORK": str(work), "OUT": str(out), "EPISODES": "40", "HELDOUT_EPISODES": "12",
           "TOKENIZER_STEPS": "3", "WORLD_STEPS": "4", "LAM_STEPS": "2", "EVAL_CLIPS": "2",
           "CARRY": str(tmp_path / "carry"),  # none carried: the judge is trained from the footage
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = ["bash", str(ROOT / "worlds/build_coinrun_gpu.sh"), "train.batch_size=2", "train.num_workers=0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {"build.log", "eval.json", "eval-1round.json", "tokenizer-metrics.csv", "world-metrics.csv"} <= {
        p.name for p in out.iterdir()}
    parts = sorted(out.glob("world.tar.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    joined = tmp_path / "world.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as tar:
        tar.extractall(tmp_path / "world", filter="data")
    world = World.load(tmp_path / "world", device="cpu")
    config = json.loads((tmp_path / "world" / "config.json").read_text())
    assert config["training"]["step"] == 4
    assert len(list((tmp_path / "world" / "prompts").glob("*.png"))) == 8 and "keymap" in config
    assert world.reset(np.zeros((64, 64, 3), np.uint8), seed=0).shape == (1, 64, 64, 3)
    assert json.loads((out / "eval.json").read_text())["clips"] == 2
    evals = [json.loads((out / name).read_text()) for name in ("eval.json", "eval-1round.json")]
    assert [e["maskgit_steps"] for e in evals] == [config["sample"]["steps"], 1]
    assert len(list(out.iterdir())) <= 8  # what a device call returns

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "recording " not in again.stdout and "new run" not in again.stdout  # footage kept, both runs resumed
    assert again.stdout.count("resuming from") == 2
