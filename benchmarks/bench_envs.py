"""Vector-env speed: sub-env steps/s of WorldVectorEnv (one batched World.step per step) against num_envs.

python benchmarks/bench_envs.py --world bundles/world                      # print a markdown table
python benchmarks/bench_envs.py --world bundles/world --append-results     # and add the rows to RESULTS.md
python benchmarks/bench_envs.py --scale small --num-envs 1..64             # configs/small, random weights
python benchmarks/bench_envs.py --world bundles/world --device cuda --num-envs 1,16,256,1024
python benchmarks/bench_envs.py --world /tmp/tiny --label "tiny throwaway bundle"   # rows say so

--scale builds the world from configs/<scale>/ with random weights, as bench_models.py does (speed
does not depend on the weights). Each size is timed after `context` warm-up steps, so the World's KV-cache window is full and
sliding (the steady state of a long episode); no episode ends inside the timing. Frames come from
the bundle's own weights; prompts are random frames unless --prompts is given. --sb3 times the
Stable-Baselines3 adapter (envs.sb3.SB3VecEnv) over the same vector env as well. A size stops the
sweep once one measurement takes longer than --max-seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import report  # noqa: E402

from envs.vector_env import WorldVectorEnv  # noqa: E402
from genie.world import World, resolve_device  # noqa: E402


def sizes(text: str) -> list[int]:
    """'1,2,4' or '1..256' (powers of two) -> [1, 2, 4, ...]."""
    if ".." in text:
        low, high = (int(x) for x in text.split(".."))
        return [2**k for k in range(int(np.log2(low)), int(np.log2(high)) + 1)]
    return [int(x) for x in text.split(",")]


def time_steps(step, actions: np.ndarray, warmup: int, steps: int) -> float:
    """Seconds per step after `warmup` steps."""
    for _ in range(warmup):
        step(actions)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(actions)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def vector_env_rates(world: World, num_envs: int, prompts, steps: int, warmup: int | None = None,
                     sb3: bool = False) -> dict[str, float]:
    """Sub-env steps/s of WorldVectorEnv (and the SB3 adapter with `sb3`) at `num_envs`, timed over
    `steps` steps after `warmup` (default: the world's context, so the KV-cache window is full)."""
    warmup = world.sample.context if warmup is None else warmup
    vec = WorldVectorEnv(num_envs, world, prompts=prompts)
    vec.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, world.num_actions, num_envs)
    rates = {"WorldVectorEnv": num_envs / time_steps(vec.step, actions, warmup, steps)}
    if sb3:
        from envs.sb3 import SB3VecEnv

        adapter = SB3VecEnv(vec)
        adapter.reset()
        rates["SB3VecEnv"] = num_envs / time_steps(adapter.step, actions, warmup, steps)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--world", help="world bundle")
    source.add_argument("--scale", help="configs/<scale>/ with random weights (tiny, small, coinrun)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-envs", default="1..256", help="sizes: '1..256' (powers of two) or '1,8,64'")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per size")
    parser.add_argument("--prompts", help="prompt images or a dataset (default: random frames)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); on a busy "
                        "machine 1 can be far faster than all cores, whose threads then wait on each other")
    parser.add_argument("--sb3", action="store_true", help="also time the Stable-Baselines3 adapter")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop the sweep after a slower size")
    parser.add_argument("--label", help="a note for every row, e.g. 'tiny throwaway bundle'")
    parser.add_argument("--append-results", action="store_true", help="append rows to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.world:
        world, what = World.load(args.world, device=args.device), Path(args.world).name
    else:
        from bench_models import build_world

        world, what = build_world(args.scale, resolve_device(args.device), cached=True), f"{args.scale} (random weights)"
    params = sum(p.numel() for m in (world.tokenizer, world.lam, world.dynamics) for p in m.parameters()) / 1e6
    name = (f"{what} ({params:.1f}M params, {world.sample.steps} MaskGIT steps, "
            f"{world.sample.context}-frame context{', ' + args.label if args.label else ''})")
    rng = np.random.default_rng(0)
    prompts = args.prompts or list(rng.integers(0, 256, (8, *world.frame_shape), dtype=np.uint8))
    rows = []
    for n in sizes(args.num_envs):
        start = time.perf_counter()
        rates = vector_env_rates(world, n, prompts, args.steps, sb3=args.sb3)
        elapsed = time.perf_counter() - start
        value = ", ".join(f"{kind} {rate:,.1f} env steps/s" for kind, rate in rates.items())
        where = world.device.type if world.device.type != "cpu" else f"cpu, {torch.get_num_threads()} thread(s)"
        rows.append((f"vector env, {name}, num_envs {n} ({where})", value))
        print(f"num_envs {n:>5}: {value}", flush=True)
        if elapsed > args.max_seconds:
            print(f"stopping the sweep: num_envs {n} took {elapsed:.0f} s (> --max-seconds {args.max_seconds:g})")
            break
    report("bench_envs.py", rows, args.append_results)


if __name__ == "__main__":
    main()
