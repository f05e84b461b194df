"""Player speed: frames/s of play.py's loop (World.step at batch 1 + drawing the frame), headless.

python benchmarks/bench_play.py                          # the default world, worlds/coinrun
python benchmarks/bench_play.py --world bundles/world --threads 1 --append-results
python benchmarks/bench_play.py --random-world --scale small   # configs/small with random weights

Each frame is what play.py does per key press: genie.play.player.Player.step (World.step with the
action as a device tensor, one host copy) and Player.draw (blit, nearest-neighbour upscale, HUD,
flip), in a pygame window on SDL's dummy driver. Timing starts once the context window is full.
Without worlds/coinrun (e.g. in a checkout that removed it), or with --random-world, the world is
configs/<scale>/ with random weights, and the row says so: speed does not depend on the weights.
On a GPU (or with --compile) the step is also timed with World(compile=True), the cached forwards
under torch.compile, and on a CPU that multiplies bf16 natively (genie.world.cpu_has_bf16: AVX512-BF16,
AMX) with World(precision="bf16"); the fastest is reported, with its name and every variant's rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_models import build_world, full_window, params  # noqa: E402
from common import count_flops, report, sync  # noqa: E402

from genie.bundle import bundle_prompts  # noqa: E402
from genie.play.player import DEFAULT_WORLD, Player  # noqa: E402
from genie.world import World, cpu_has_bf16, resolve_device  # noqa: E402

# name -> World(compile=..., precision=...)
VARIANTS = {"eager": (False, "auto"), "torch.compile": (True, "auto"), "bf16": (False, "bf16")}


def world_factory(world: str | None, scale: str, device: torch.device,
                  random_world: bool = False) -> tuple[Callable[..., World], str, Path | None]:
    """-> (make(compile=False, precision="auto"): a fresh copy of the world, its name for labels, its
    bundle or None).
    `world` None means worlds/coinrun, or configs/<scale>/ with random weights where it does not exist."""
    bundle = Path(world) if world else DEFAULT_WORLD
    if not random_world and (world or DEFAULT_WORLD.exists()):
        name = world or "worlds/coinrun"
        return ((lambda compile=False, precision="auto": World.load(bundle, device=str(device), compile=compile,
                                                                    precision=precision)), name, bundle)
    missing = "" if random_world else ", no worlds/coinrun"
    return ((lambda compile=False, precision="auto": build_world(scale, device, cached=True, compile=compile,
                                                                 precision=precision)),
            f"configs/{scale}, random weights{missing}", None)


def describe(world: World, name: str) -> str:
    """'worlds/coinrun (5.3M params, 4 MaskGIT steps, 8-frame context)'."""
    n = sum(params(m) for m in (world.tokenizer, world.lam, world.dynamics))
    return f"{name} ({n / 1e6:.1f}M params, {world.sample.steps} MaskGIT steps, {world.sample.context}-frame context)"


def prompt_for(world: World, bundle: Path | None) -> np.ndarray:
    """The bundle's first shipped prompt image, else a random frame: uint8 [1,H,W,3]."""
    shipped = bundle_prompts(bundle) if bundle is not None else []
    if shipped:
        return shipped[0][None]
    return np.random.default_rng(0).integers(0, 256, (1, *world.frame_shape), dtype=np.uint8)


def play_rate(world: World, prompt: np.ndarray, frames: int, scale: int = 6) -> tuple[float, float]:
    """Frames/s of play.py's per-frame work over `frames` frames once the context is full
    -> (frames/s, mean World.step seconds)."""
    import pygame as pg

    driver = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = "dummy"  # no window: the benchmark runs anywhere
    try:
        keymap = {"left": 0, "right": 0, "up": 0, "down": 0, "jump": 0, "noop": 0}
        player = Player(world, prompt, keymap, scale=scale)
        try:
            player.reset()
            actions = np.random.default_rng(0).integers(0, world.num_actions, world.sample.context + frames)
            for action in actions[: world.sample.context]:  # fill the window: the steady state of play
                player.step(int(action))
                player.draw()
            player.total_step_time = 0.0
            sync(world.device)
            start = time.perf_counter()
            for action in actions[world.sample.context :]:
                player.step(int(action))
                player.draw()
            sync(world.device)
            seconds = time.perf_counter() - start
        finally:
            player.close()
    finally:
        if driver is None:
            del os.environ["SDL_VIDEODRIVER"]
        else:
            os.environ["SDL_VIDEODRIVER"] = driver
        pg.quit()
    return frames / seconds, player.total_step_time / frames


def step_flops(world: World, context: int | None = None, cached: bool | None = None) -> int:
    """Counted FLOPs of one World.step at batch 1 with a full `context`-frame window (default: the
    world's own), with or without the KV cache (default: the world's mode)."""
    sample, was_cached = world.sample, world.cached
    world.cached = was_cached if cached is None else cached
    try:
        actions = full_window(world, 1, context or sample.context)
        return count_flops(world.step, actions)
    finally:
        world.sample, world.cached = sample, was_cached


def best_play_rate(make_world: Callable[..., World], bundle: Path | None, frames: int, compile: bool = False,
                   log=print) -> tuple[str, float, float, World, dict[str, str]]:
    """play_rate of the eager world and, on a GPU or with `compile`, of World(compile=True), and on a
    CPU with native bf16 of World(precision="bf16"); the fastest wins.
    -> (variant name, frames/s, step seconds, its world, {variant: result or error})."""
    world = make_world()
    cpu = world.device.type == "cpu"
    names = ["eager"] + (["torch.compile"] if not cpu or compile else []) + (["bf16"] if cpu and cpu_has_bf16() else [])
    best, tried = None, {}
    for variant in names:
        compiled, precision = VARIANTS[variant]
        try:
            candidate = make_world(compile=compiled, precision=precision) if variant != "eager" else world
            if compiled:  # compiling happens in the first steps: do them before timing
                candidate.reset(prompt_for(candidate, bundle), seed=0)
                for _ in range(3):
                    candidate.step(np.zeros(1, dtype=np.int64))
            rate, step = play_rate(candidate, prompt_for(candidate, bundle), frames)
        except Exception as err:  # a compile failure costs this variant only: report it, keep the others
            if variant == "eager":
                raise
            tried[variant] = f"failed ({type(err).__name__}: {str(err).splitlines()[0][:80]})"
            log(f"play: {variant}: {tried[variant]}")
            continue
        tried[variant] = f"{rate:,.1f} frames/s"
        if best is None or rate > best[1]:
            best = (variant, rate, step, candidate)
    return (*best, tried)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", help="world bundle (default: worlds/coinrun, else configs/<scale> random weights)")
    parser.add_argument("--random-world", action="store_true", help="configs/<scale>/ with random weights")
    parser.add_argument("--scale", default="small", help="configs/<scale>/ for a random-weight world")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=30, help="timed frames")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time World(compile=True) on a CPU "
                        "(always on a GPU; the first steps compile, a minute on a CPU)")
    parser.add_argument("--append-results", action="store_true", help="append rows to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    make_world, name, bundle = world_factory(args.world, args.scale, device, args.random_world)
    variant, rate, step, world, tried = best_play_rate(make_world, bundle, args.frames, args.compile)
    where = device.type if device.type != "cpu" else f"cpu, {torch.get_num_threads()} thread(s)"
    note = "" if len(tried) == 1 else f"; {variant} fastest of " + ", ".join(f"{k} {v}" for k, v in tried.items())
    rows = [(f"play.py loop, {describe(world, name)}, batch 1 ({where})",
             f"{rate:,.1f} frames/s (World.step {1000 * step:.1f} ms){note}")]
    report("bench_play.py", rows, args.append_results)


if __name__ == "__main__":
    main()
