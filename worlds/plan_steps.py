"""How many training steps fit a time box on this machine: times a few training steps of a config
scale's tokenizer and world (benchmarks/bench_models.py: random frames, the precision training
uses) and prints the max_steps that fill the minutes given, for worlds/build_coinrun_gpu.sh.

    python worlds/plan_steps.py --scale sprint --tokenizer-minutes 2.3 --world-minutes 2.8
    -> TOKENIZER_STEPS WORLD_STEPS LAM_STEPS   (one line, for `read`), the rates on stderr

The timed step leaves out data loading, validation and checkpoints, so only --fill (default 0.8)
of the time box is planned; the run's train.max_minutes stays the cap. The world is timed
co-training (LAM + dynamics); a LAM-first run's dynamics phase is a little cheaper, so it ends early
rather than late. LAM_STEPS is the config's train.lam_steps, or a third of the world's steps when
that is fewer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_models import tokenizer_training, training_rate, world_sections, world_training  # noqa: E402

from genie.world import resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="sprint", help="configs/<scale>/ (its tokenizer.yaml and world.yaml)")
    parser.add_argument("--tokenizer-minutes", type=float, required=True)
    parser.add_argument("--world-minutes", type=float, required=True)
    parser.add_argument("--fill", type=float, default=0.8, help="share of each time box to plan steps for")
    parser.add_argument("--timed-steps", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_grad_enabled(True)
    steps = []
    for bench, minutes in ((tokenizer_training(args.scale, device), args.tokenizer_minutes),
                           (world_training(args.scale, device), args.world_minutes)):
        rate = training_rate(bench, device, args.timed_steps, warmup=3) / bench.batch_size  # steps/s
        steps.append(max(1, int(rate * minutes * 60 * args.fill)))
        print(f"{bench.name} ({bench.detail}, {device.type}): {rate:.2f} steps/s -> {steps[-1]} steps "
              f"in {minutes:g} min", file=sys.stderr)
        del bench
        if device.type == "cuda":
            torch.cuda.empty_cache()
    lam_steps = min(world_sections(args.scale)["train"].lam_steps, steps[1] // 3)
    print(steps[0], max(steps[1], lam_steps + 1), lam_steps)


if __name__ == "__main__":
    main()
