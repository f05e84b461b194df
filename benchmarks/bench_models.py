"""Model speed: tokenizer and world training samples/s, World.step frames/s (cached vs uncached).

python benchmarks/bench_models.py --scale small               # print a markdown table
python benchmarks/bench_models.py --scale small --append-results
python benchmarks/bench_models.py --scale coinrun --device cuda  # on a GPU (bf16)

Weights are random (speed does not depend on them); sizes come from configs/<scale>/.
World.step is timed at a full context (the prompt fills the window), at batch 1, 8 and 64.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import ProgressRows, report, sync  # noqa: E402

from genie.config import build_sections, load_yaml  # noqa: E402
from genie.models.dynamics import Dynamics, DynamicsConfig  # noqa: E402
from genie.models.lam import LAMConfig, LatentActionModel  # noqa: E402
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer, frames_to_float  # noqa: E402
from genie.training.common import TrainConfig, make_optimizer  # noqa: E402
from genie.world import SampleConfig, World, resolve_device  # noqa: E402


@dataclass
class TrainBench:
    """One training step of a stage at a config scale, on random frames, ready to time and count."""

    name: str  # e.g. "tokenizer training, small"
    detail: str  # e.g. "1.0M params, batch 8x4 frames"
    step: Callable[[], None]  # forward, backward and optimizer step of one batch
    batch_size: int
    tokens_per_sample: int  # tokenizer tokens per clip


def _amp(device: torch.device):
    return torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def _train_step(loss_fn: Callable[[], Tensor], opt: torch.optim.Optimizer, device: torch.device):
    amp = _amp(device)

    def step() -> None:
        with amp:
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def tokenizer_sections(scale: str) -> dict:
    return build_sections(load_yaml(ROOT / f"configs/{scale}/tokenizer.yaml"),
                          {"model": TokenizerConfig, "train": TrainConfig}, [], scale)


def tokenizer_training(scale: str, device: torch.device, batch_size: int | None = None) -> TrainBench:
    """Stage 1 as TokenizerModule.training_step trains it: reconstruction MSE + VQ loss, AdamW.
    batch_size: the config's unless given."""
    s = tokenizer_sections(scale)
    model, cfg = VideoTokenizer(s["model"]).to(device), s["train"]
    cfg = replace(cfg, batch_size=batch_size or cfg.batch_size)
    opt = make_optimizer(model, cfg)["optimizer"]
    frames = torch.randint(0, 256, (cfg.batch_size, cfg.clip_len, s["model"].height, s["model"].width, 3),
                           dtype=torch.uint8, device=device)

    def loss() -> Tensor:
        recon, vq = model(frames)
        return (recon.float() - frames_to_float(frames)).pow(2).mean() + vq.loss

    gh, gw = s["model"].grid
    detail = f"{params(model) / 1e6:.1f}M params, batch {cfg.batch_size}x{cfg.clip_len} frames"
    return TrainBench(f"tokenizer training, {scale}", detail, _train_step(loss, opt, device), cfg.batch_size, cfg.clip_len * gh * gw)


def world_training(scale: str, device: torch.device, batch_size: int | None = None) -> TrainBench:
    """Stage 2 as WorldModule.training_step trains it: frozen tokenizer encode, LAM loss + dynamics
    masked-token cross-entropy, AdamW over the LAM and the dynamics. batch_size: the config's unless given."""
    world = build_world(scale, device, cached=True)
    cfg = world_sections(scale)["train"]
    cfg = replace(cfg, batch_size=batch_size or cfg.batch_size)
    lam, dynamics, tokenizer = world.lam.train(), world.dynamics.train(), world.tokenizer
    trained = torch.nn.ModuleDict({"lam": lam, "dynamics": dynamics})
    opt = make_optimizer(trained, cfg)["optimizer"]
    frames = torch.randint(0, 256, (cfg.batch_size, cfg.clip_len, *world.frame_shape), dtype=torch.uint8, device=device)

    def loss() -> Tensor:
        with torch.no_grad():
            tokens = tokenizer.encode(frames).indices
        out = lam(frames)
        lam_total, _ = lam.loss(frames, out)
        dyn_loss, _ = dynamics.loss(tokens, out.actions)
        return lam_total + dyn_loss

    gh, gw = tokenizer.config.grid
    detail = f"{params(trained) / 1e6:.1f}M params, batch {cfg.batch_size}x{cfg.clip_len} frames"
    return TrainBench(f"world training (LAM + dynamics), {scale}", detail, _train_step(loss, opt, device), cfg.batch_size, cfg.clip_len * gh * gw)


def training_rate(bench: TrainBench, device: torch.device, steps: int, warmup: int = 2) -> float:
    """Training samples/s over `steps` timed steps after `warmup` steps."""
    for _ in range(warmup):
        bench.step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        bench.step()
    sync(device)
    return steps * bench.batch_size / (time.perf_counter() - start)


def bench_training(bench: TrainBench, device: torch.device, steps: int, rows: list) -> None:
    rate = training_rate(bench, device, steps)
    rows.append((f"{bench.name} ({bench.detail}, {device.type})", f"{rate:.1f} samples/s, {rate * bench.tokens_per_sample:,.0f} tokens/s"))


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def world_sections(scale: str) -> dict:
    return build_sections(load_yaml(ROOT / f"configs/{scale}/world.yaml"),
                          {"lam": LAMConfig, "dynamics": DynamicsConfig, "train": TrainConfig, "sample": SampleConfig},
                          [], scale)


def build_world(scale: str, device: torch.device, cached: bool, compile: bool = False,
                precision: str = "auto") -> World:
    """A World of configs/<scale>/ with random weights (speed does not depend on the weights)."""
    torch.manual_seed(0)
    tok_cfg = tokenizer_sections(scale)["model"]
    s = world_sections(scale)
    lam_cfg = LAMConfig(**{**asdict(s["lam"]), "height": tok_cfg.height, "width": tok_cfg.width})
    dyn_cfg = DynamicsConfig(**{**asdict(s["dynamics"]), "vocab_size": tok_cfg.codebook_size,
                                "grid_h": tok_cfg.grid[0], "grid_w": tok_cfg.grid[1], "num_actions": lam_cfg.num_actions})
    return World(VideoTokenizer(tok_cfg), LatentActionModel(lam_cfg), Dynamics(dyn_cfg), s["sample"], device, cached,
                 compile, precision)


def full_window(world: World, batch: int, context: int) -> np.ndarray:
    """Reset `world` with a random prompt of context-1 frames and step once, so its context window
    is full and slides from here on (the steady state of a long rollout). Returns the actions [B]."""
    world.sample = replace(world.sample, context=context,
                           tokenizer_context=min(world.sample.tokenizer_context, context))
    prompt = np.random.default_rng(0).integers(0, 256, (batch, context - 1, *world.frame_shape), dtype=np.uint8)
    world.reset(prompt, seed=0)
    actions = np.zeros(batch, dtype=np.int64)
    world.step(actions)
    return actions


def world_step_rate(world: World, batch: int, context: int, steps: int, cached: bool = True) -> float:
    """World.step frames/s (batch * steps/s) at a full `context`-frame window, with or without the KV
    cache. The world's sample settings and cache mode are restored afterwards."""
    sample, was_cached = world.sample, world.cached
    world.cached = cached
    try:
        actions = full_window(world, batch, context)
        sync(world.device)
        start = time.perf_counter()
        for _ in range(steps):
            world.step(actions)
        sync(world.device)
        return steps * batch / (time.perf_counter() - start)
    finally:
        world.sample, world.cached = sample, was_cached


def bench_world_step(scale: str, device: torch.device, context: int, batches: list[int], steps: int, rows: list) -> None:
    world = build_world(scale, device, cached=True)
    for batch in batches:
        rates = {cached: world_step_rate(world, batch, context, steps, cached) for cached in (True, False)}
        label = (f"World.step, {scale}, {world.sample.steps} MaskGIT steps, {context}-frame context, batch {batch} "
                 f"({device.type})")
        rows.append((label, f"cached {rates[True]:,.1f} frames/s, uncached {rates[False]:,.1f} frames/s, "
                            f"ratio {rates[True] / rates[False]:.1f}x"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", help="configs/<scale>/ (tiny, small, coinrun)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--context", type=int, default=16, help="frames in the World's context window")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--append-results", action="store_true", help="append rows to benchmarks/RESULTS.md")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_grad_enabled(True)
    rows: list[tuple[str, str]] = ProgressRows()
    if not args.skip_training:
        bench_training(tokenizer_training(args.scale, device), device, args.train_steps, rows)
        bench_training(world_training(args.scale, device), device, args.train_steps, rows)
    bench_world_step(args.scale, device, args.context, [int(b) for b in args.batches.split(",")], args.steps, rows)
    report("bench_models.py", rows, args.append_results)


if __name__ == "__main__":
    main()
