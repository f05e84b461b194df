"""The world that ships in worlds/coinrun (what `make play` opens) loads from the checkout, steps,
and its tokenizer still reconstructs the held-out CoinRun frames shipped beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genie.bundle import bundle_prompts
from genie.errors import GenieError
from genie.eval.metrics import mean_psnr
from genie.play.keymap import KEYS
from genie.world import World

WORLD = Path(__file__).resolve().parents[1] / "worlds" / "coinrun"
MAX_BYTES = 50 * 2**20  # the budget for the whole folder, in git without LFS


@pytest.fixture(scope="module")
def world():
    return World.load(WORLD, device="cpu")


def test_bundle_is_small_and_plain():
    files = [p for p in WORLD.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    for p in files:  # real bytes, not Git LFS pointers
        assert not p.read_bytes()[:40].startswith(b"version https://git-lfs"), p
    config = json.loads((WORLD / "config.json").read_text())
    assert set(config["keymap"]) == set(KEYS)
    assert (WORLD / "README.md").is_file()  # the model card


def test_steps_from_a_shipped_prompt(world):
    prompts = bundle_prompts(WORLD)
    assert len(prompts) >= 4 and prompts[0].shape == (*world.frame_shape[:2], 3)
    first = world.reset(prompts[0][None], seed=0)
    assert first.shape == (1, *world.frame_shape) and first.dtype == np.uint8
    config = json.loads((WORLD / "config.json").read_text())
    frames = [world.step(np.array([config["keymap"][key]])) for key in ("right", "right", "jump")]
    assert all(f.shape == (1, *world.frame_shape) and f.dtype == np.uint8 for f in frames)
    assert frames[-1].std() > 5  # a picture, not a flat colour


def test_reconstructs_shipped_frames(world):
    frames = np.stack(bundle_prompts(WORLD))[:, None]  # [N, 1, H, W, 3]
    recon = world.reconstruct(frames)
    assert recon.shape == frames.shape
    score = mean_psnr(torch.from_numpy(recon), torch.from_numpy(frames))
    assert score > 30.0, f"shipped tokenizer reconstructs held-out frames at {score:.1f} dB"  # 31.0 (2026-12-05)


def test_bf16_on_the_cpu_draws_the_same_world(world):
    """World(precision="bf16") on a CPU: the prompt's reconstruction and a rollout from it stay
    close to the fp32 world's (sampled tokens may differ where two were nearly tied)."""
    assert world.precision == "fp32"  # auto on a CPU
    fast = World.load(WORLD, device="cpu", precision="bf16")
    assert fast.precision == "bf16" and next(fast.dynamics.parameters()).dtype == torch.bfloat16  # its own weights
    prompt = bundle_prompts(WORLD)[0]
    a, b = world.reset(prompt, seed=0), fast.reset(prompt, seed=0)
    assert mean_psnr(torch.from_numpy(b), torch.from_numpy(a)) > 35
    keys = [1, 1, 2, 0]
    a = np.concatenate([world.step(np.array([k])) for k in keys])
    b = np.concatenate([fast.step(np.array([k])) for k in keys])
    assert b.dtype == np.uint8 and mean_psnr(torch.from_numpy(b), torch.from_numpy(a)) > 20
    with pytest.raises(GenieError, match="precision 'fp16'"):
        World.load(WORLD, device="cpu", precision="fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_runs_on_cuda_in_bf16_like_on_cpu(world):
    """On a GPU the world runs under bf16 autocast: its reconstructions stay close to the CPU's
    fp32 ones, and a rollout from a shipped prompt is a picture."""
    gpu = World.load(WORLD, device="cuda")
    frames = np.stack(bundle_prompts(WORLD))[:, None]
    recon_gpu, recon_cpu = gpu.reconstruct(frames), world.reconstruct(frames)
    assert mean_psnr(torch.from_numpy(recon_gpu), torch.from_numpy(recon_cpu)) > 30.0
    assert mean_psnr(torch.from_numpy(recon_gpu), torch.from_numpy(frames)) > 24.0
    gpu.reset(frames[:4, 0], seed=0)
    rollout = np.stack([gpu.step(np.full(4, t % gpu.num_actions)) for t in range(6)])
    assert rollout.shape == (6, 4, *gpu.frame_shape) and rollout.std() > 5
