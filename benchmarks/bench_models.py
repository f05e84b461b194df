"""Model speed: tokenizer training samples/s and World.step frames/s (cached vs uncached).

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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import report  # noqa: E402

from genie.config import build_sections, load_yaml  # noqa: E402
from genie.dynamics import Dynamics, DynamicsConfig  # noqa: E402
from genie.lam import LAMConfig, LatentActionModel  # noqa: E402
from genie.tokenizer import TokenizerConfig, VideoTokenizer, frames_to_float  # noqa: E402
from genie.training.common import TrainConfig, make_optimizer  # noqa: E402
from genie.world import SampleConfig, World, resolve_device  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_tokenizer_training(scale: str, device: torch.device, steps: int, rows: list) -> None:
    s = build_sections(load_yaml(ROOT / f"configs/{scale}/tokenizer.yaml"),
                       {"model": TokenizerConfig, "train": TrainConfig}, [], scale)
    model, cfg = VideoTokenizer(s["model"]).to(device), s["train"]
    opt = make_optimizer(model, cfg)["optimizer"]
    frames = torch.randint(0, 256, (cfg.batch_size, cfg.clip_len, s["model"].height, s["model"].width, 3),
                           dtype=torch.uint8, device=device)
    amp = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with amp:
            recon, vq = model(frames)
            loss = (recon.float() - frames_to_float(frames)).pow(2).mean() + vq.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    rate = steps * cfg.batch_size / (time.perf_counter() - start)
    gh, gw = s["model"].grid
    rows.append((f"tokenizer training, {scale} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, "
                 f"batch {cfg.batch_size}x{cfg.clip_len} frames, {device.type})",
                 f"{rate:.1f} samples/s, {rate * cfg.clip_len * gh * gw:,.0f} tokens/s"))


def build_world(scale: str, device: torch.device, cached: bool) -> World:
    torch.manual_seed(0)
    tok_cfg = build_sections(load_yaml(ROOT / f"configs/{scale}/tokenizer.yaml"),
                             {"model": TokenizerConfig, "train": TrainConfig}, [], scale)["model"]
    s = build_sections(load_yaml(ROOT / f"configs/{scale}/world.yaml"),
                       {"lam": LAMConfig, "dynamics": DynamicsConfig, "train": TrainConfig, "sample": SampleConfig},
                       [], scale)
    lam_cfg = LAMConfig(**{**asdict(s["lam"]), "height": tok_cfg.height, "width": tok_cfg.width})
    dyn_cfg = DynamicsConfig(**{**asdict(s["dynamics"]), "vocab_size": tok_cfg.codebook_size,
                                "grid_h": tok_cfg.grid[0], "grid_w": tok_cfg.grid[1], "num_actions": lam_cfg.num_actions})
    return World(VideoTokenizer(tok_cfg), LatentActionModel(lam_cfg), Dynamics(dyn_cfg), s["sample"], device, cached)


def bench_world_step(scale: str, device: torch.device, context: int, batches: list[int], steps: int, rows: list) -> None:
    for batch in batches:
        rates = {}
        for cached in (True, False):
            world = build_world(scale, device, cached)
            world.sample.context = context
            world.sample.tokenizer_context = min(world.sample.tokenizer_context, context)
            prompt = np.random.default_rng(0).integers(0, 256, (batch, context - 1, *world.frame_shape), dtype=np.uint8)
            world.reset(prompt, seed=0)
            actions = np.zeros(batch, dtype=np.int64)
            world.step(actions)  # warm-up; the window is now full and slides from here on
            start = time.perf_counter()
            for _ in range(steps):
                world.step(actions)
            rates[cached] = steps * batch / (time.perf_counter() - start)
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
    rows: list[tuple[str, str]] = []
    if not args.skip_training:
        bench_tokenizer_training(args.scale, device, args.train_steps, rows)
    bench_world_step(args.scale, device, args.context, [int(b) for b in args.batches.split(",")], args.steps, rows)
    report("bench_models.py", rows, args.append_results)


if __name__ == "__main__":
    main()
