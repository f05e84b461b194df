"""What a world's latent actions hold: per latent action and true action class, how much moved.

python benchmarks/lam_codes.py --world worlds/coinrun --data data/coinrun4-heldout
python benchmarks/lam_codes.py --world B --data D --centre 16 --min-count 30 --transitions 20000

Over the held-out shards' episodes (genie eval's probe transitions: its first split), every
transition t -> t+1 gets the world's latent action (World.infer_actions), its true action class
(data_pipeline.actions), and three measures of what changed: the mean pixel change (max over
channels, 0..1), the same in the centre `--centre` px square (where a camera that follows the
agent keeps it), and the horizontal shift of the view, the integer shift in -6..6 px that best maps
frame t onto t+1 (0: no scroll). One row per (latent, class) pair with at least --min-count
transitions. A code whose transitions of several classes share one kind of change (e.g. no scroll
but a change at the agent) shows what the LAM cannot tell apart. Then, per class, how many of its
transitions do not scroll, and how many of those follow a transition of the same class that did not
scroll either (a key held against a wall or the level's edge: only the agent's sprite moves).
With --judge, the lookup probe (genie eval's: fit on half the episodes, scored on the others) and
the judge on the same held-out transitions, over all of them and split by whether the view scrolled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_pipeline.actions import action_classes  # noqa: E402
from data_pipeline.shards import read_episodes, read_shard_info  # noqa: E402
from genie.eval.action_map import fit_half, lookup_probe  # noqa: E402
from genie.eval.evaluate import split_shards  # noqa: E402
from genie.world import World  # noqa: E402

MAX_SHIFT = 6


def change_measures(frames: np.ndarray, centre: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [T,H,W,3] -> (mean change [T-1], centre change [T-1], horizontal shift in px [T-1])."""
    f = frames.astype(np.float32) / 255
    d = np.abs(f[1:] - f[:-1]).max(-1)  # [T-1,H,W]
    h, w = d.shape[1:]
    top, left = (h - centre) // 2, (w - centre) // 2
    inner = slice(MAX_SHIFT, w - MAX_SHIFT)  # columns that stay in view under every shift tried
    errs = [np.abs(np.roll(f[:-1], s, axis=2)[:, :, inner] - f[1:, :, inner]).mean((1, 2, 3))
            for s in range(-MAX_SHIFT, MAX_SHIFT + 1)]
    shift = np.argmin(np.stack(errs), axis=0) - MAX_SHIFT
    return d.mean((1, 2)), d[:, top : top + centre, left : left + centre].mean((1, 2)), shift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", required=True, help="world bundle")
    parser.add_argument("--data", required=True, help="held-out shards with true actions (as genie eval's --data)")
    parser.add_argument("--transitions", type=int, default=8000)
    parser.add_argument("--centre", type=int, default=16, help="side of the centre square in px")
    parser.add_argument("--min-count", type=int, default=60)
    parser.add_argument("--judge", help="a judge bundle: probe and judge accuracy, split by scroll")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = World.load(args.world, device="cpu")
    shards = split_shards(args.data)[0]
    info = read_shard_info(shards[0])
    classes = action_classes(info.action_names, str(info.path))
    parts: dict[str, list[np.ndarray]] = {"latent": [], "cls": [], "change": [], "centre": [], "shift": [],
                                          "stuck": [], "episode": [], "judged": []}
    judge = None
    if args.judge:
        from genie.eval.judge import Judge

        judge = Judge.load(args.judge, device="cpu")
    count = 0
    for ep in read_episodes(None, shards=shards):
        if count >= args.transitions:
            break
        if len(ep.frames) < 2:
            continue
        change, centre, shift = change_measures(ep.frames, args.centre)
        cls = classes.classify(ep.actions[:-1])
        stuck = np.zeros(len(cls), bool)  # no scroll, after a transition of the same class without one
        stuck[1:] = (shift[1:] == 0) & (shift[:-1] == 0) & (cls[1:] == cls[:-1])
        judged = judge.read(ep.frames[None])[0] if judge else np.full(len(cls), -1)
        episode = np.full(len(cls), len(parts["episode"]))
        for key, value in zip(parts, (world.infer_actions(ep.frames), cls, change, centre, shift, stuck, episode,
                                      judged)):
            parts[key].append(value)
        count += len(ep.frames) - 1
    latent, cls, change, centre, shift, stuck, episode, judged = (np.concatenate(v) for v in parts.values())
    print(f"{args.world} on {args.data}: {len(latent):,} transitions")
    print(f"{'latent':>6} {'class':>11} {'count':>6} {'change':>7} {'centre':>7} {'shift px':>8} {'scrolls':>7}")
    for code in range(world.num_actions):
        for c, name in enumerate(classes.names):
            m = (latent == code) & (cls == c)
            if m.sum() >= args.min_count:
                print(f"{code:6d} {name:>11} {m.sum():6d} {change[m].mean():7.4f} {centre[m].mean():7.4f} "
                      f"{shift[m].mean():+8.2f} {np.mean(shift[m] != 0):7.0%}")
    print(f"{'class':>11} {'count':>6} {'no scroll':>9} {'held, stuck':>11}")
    for c, name in enumerate(classes.names):
        m = cls == c
        print(f"{name:>11} {m.sum():6d} {np.mean(shift[m] == 0):9.0%} {np.mean(stuck[m]):11.0%}")
    if judge is None:
        return
    n = len(classes.names)
    test = ~fit_half(episode) & (cls >= 0)
    print(f"{'transitions':>20} {'count':>6} {'probe':>6} {'majority':>8} {'judge':>6}")
    for what, keep in (("all", np.ones_like(stuck)), ("the view scrolled", shift != 0), ("it did not", shift == 0)):
        probe = lookup_probe(latent, np.where(keep, cls, -1), episode, world.num_actions, n)
        judge_acc = np.mean(judged[test & keep] == cls[test & keep])
        print(f"{what:>20} {(test & keep).sum():6d} {probe['accuracy']:6.1%} {probe['majority_baseline']:8.1%} "
              f"{judge_acc:6.1%}")


if __name__ == "__main__":
    main()
