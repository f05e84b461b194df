"""Latent-action quality: train a LAM alone, probe it against the true actions.

python benchmarks/bench_lam.py patch_size=4 --steps 800                 # synthetic game, a markdown table
python benchmarks/bench_lam.py patch_size=8 --steps 800 --append-results
python benchmarks/bench_lam.py patch_size=16 --data DATA --heldout HELDOUT --judge JUDGE --steps 2000

With --data (recorded shards, e.g. CoinRun) the LAM (configs/small/world.yaml's `lam:` section plus
the overrides) trains on clips of that footage and is scored with genie eval's probes on the
held-out shards' uniform episodes: raw actions, movement classes and horizontal moves, beside the
majority class and, with --judge, the judge on the same held-out transitions (the probe's target).

The synthetic game has 8 known actions and a uniform sticky random policy, so a LAM with 8 codes
could in principle recover them all. The LAM (configs/tiny/world.yaml's `lam:` section plus the
key=value overrides) trains on 256 recorded episodes with its own loss (LatentActionModel.loss) and is
scored every --eval-every steps with genie eval's lookup probe on 64 held-out games (each latent
action -> the true action it co-occurs with most, fit on half of the episodes, scored on the other
half), beside the majority-class baseline. This is the LAM half of `genie train world`, without
the dynamics model, so design changes to the LAM can be compared in minutes on a CPU.
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

from data_pipeline.policy import StickyRandomPolicy  # noqa: E402
from data_pipeline.synthetic import ACTION_NAMES, SyntheticGame  # noqa: E402
from genie.config import build_sections, load_yaml, parse_overrides  # noqa: E402
from genie.eval.action_map import lookup_probe  # noqa: E402
from genie.eval.evaluate import probe_metrics, split_shards  # noqa: E402
from genie.models.lam import LAMConfig, LatentActionModel  # noqa: E402
from genie.world import resolve_device  # noqa: E402


def footage(games: int, frames: int, seed: int, sticky: float, scroll: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """-> frames uint8 [games, frames, 64, 64, 3], true actions int64 [games, frames] (-1 last)."""
    rng = np.random.default_rng(seed)
    game = SyntheticGame(games, seed=seed, scroll=scroll)
    policy = StickyRandomPolicy(games, np.full(8, 1 / 8), sticky, rng)
    video = np.empty((games, frames, 64, 64, 3), np.uint8)
    actions = np.full((games, frames), -1, np.int64)
    video[:, 0] = game.render()
    for t in range(frames - 1):
        actions[:, t] = policy()
        video[:, t + 1] = game.step(actions[:, t])
    return video, actions


@torch.no_grad()
def probe(lam: LatentActionModel, video: np.ndarray, actions: np.ndarray, clip: int) -> tuple[dict, np.ndarray]:
    """Lookup probe over held-out games, in windows of `clip` frames overlapping by one (as
    World.infer_actions reads video); also returns the confusion matrix [latent action, true
    action] of all held-out transitions."""
    lam.eval()
    games, length = actions.shape
    latent, true = [], []
    for s in range(0, length - clip + 1, clip - 1):
        frames = torch.from_numpy(video[:, s : s + clip]).to(lam.enc_pos.device)
        latent.append(lam.infer_actions(frames).cpu().numpy())
        true.append(actions[:, s : s + clip - 1])
    lam.train()
    latent, true = np.concatenate(latent, 1), np.concatenate(true, 1)
    episodes = np.repeat(np.arange(games)[:, None], latent.shape[1], 1)
    result = lookup_probe(latent.flatten(), true.flatten(), episodes.flatten(), lam.config.num_actions)
    confusion = np.zeros((lam.config.num_actions, len(ACTION_NAMES)), np.int64)
    known = true.flatten() >= 0
    np.add.at(confusion, (latent.flatten()[known], true.flatten()[known]), 1)
    return result, confusion


class LAMReader:
    """The LAM as genie eval's probes read a world: infer_actions over a whole episode, in windows
    of `clip` frames overlapping by one (as World.infer_actions reads video)."""

    def __init__(self, lam: LatentActionModel, clip: int, batch: int = 64):
        self.lam, self.clip, self.batch, self.num_actions = lam, clip, batch, lam.config.num_actions

    @torch.no_grad()
    def infer_actions(self, frames: np.ndarray) -> np.ndarray:
        starts = list(range(0, len(frames) - 1, self.clip - 1))
        windows = [frames[s : s + self.clip] for s in starts]
        short = len(windows[-1])
        out = []
        for i in range(0, len(windows), self.batch):
            group = [w for w in windows[i : i + self.batch] if len(w) == self.clip]
            if group:
                out += list(self.lam.infer_actions(torch.from_numpy(np.stack(group)).to(self.lam.enc_pos.device)).cpu().numpy())
        if short != self.clip:
            out.append(self.lam.infer_actions(torch.from_numpy(windows[-1][None]).to(self.lam.enc_pos.device))[0].cpu().numpy())
        return np.concatenate(out)[: len(frames) - 1]


def shard_probe(lam: LatentActionModel, shards: list[Path], clip: int, judge, max_transitions: int) -> tuple[dict, str]:
    """genie eval's probes of the LAM on held-out shards -> (metrics, one summary line)."""
    lam.eval()
    m = probe_metrics(LAMReader(lam, clip), shards, max_transitions, judge)
    lam.train()
    parts = []
    for key, name in (("probe_classes", "classes"), ("probe_horizontal", "horizontal")):
        r = m.get(key, m["probe"])
        part = f"{name} {r['accuracy']:.1%} (maj {r['majority_baseline']:.1%}"
        if "share_of_judge" in r:
            part += f", {r['share_of_judge']:.0%} of judge"
        parts.append(part + ")")
    return m, "; ".join(parts)


def shard_clips(data: str, max_frames: int) -> list[np.ndarray]:
    """The training footage's episodes (frames uint8 [T,H,W,3] each), up to max_frames in all."""
    from data_pipeline.shards import read_episodes

    return [ep.frames for ep in read_episodes(data, max_frames)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="LAMConfig key=value, e.g. patch_size=4 dim=96")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--clip-len", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--scroll", type=int, default=1, help="background scroll in px per frame (0: still)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="train on these recorded shards instead of the synthetic game")
    parser.add_argument("--heldout", help="with --data: probe on these shards' uniform episodes")
    parser.add_argument("--judge", help="with --data: a judge bundle scored on the same held-out transitions")
    parser.add_argument("--max-frames", type=int, default=150_000, help="with --data: frames read for training")
    parser.add_argument("--probe-transitions", type=int, default=10_000)
    parser.add_argument("--config", help="world config whose lam: section is the base "
                        "(default configs/tiny/world.yaml, or configs/small/world.yaml with --data)")
    parser.add_argument("--save", help="with --data: write the trained LAM's state_dict here (torch.save)")
    parser.add_argument("--append-results", action="store_true")
    args = parser.parse_args()
    if args.data and not args.heldout:
        parser.error("--data needs --heldout")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    base = args.config or ROOT / ("configs/small/world.yaml" if args.data else "configs/tiny/world.yaml")
    raw = {"lam": load_yaml(base)["lam"]}
    pairs = parse_overrides([f"lam.{o}" for o in args.overrides])
    config: LAMConfig = build_sections(raw, {"lam": LAMConfig}, pairs, "bench_lam")["lam"]
    print(config)
    if args.data:
        return train_on_shards(args, config)

    train_video, _ = footage(256, 64, seed=1, sticky=2.0, scroll=args.scroll)
    test_video, test_actions = footage(64, 32, seed=2, sticky=2.0, scroll=args.scroll)
    device = resolve_device(args.device)
    lam = LatentActionModel(config).to(device)
    optimizer = torch.optim.AdamW(lam.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    start, best = time.perf_counter(), None
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        games = rng.integers(0, len(train_video), args.batch_size)
        starts = rng.integers(0, train_video.shape[1] - args.clip_len + 1, args.batch_size)
        clip = torch.from_numpy(np.stack([train_video[g, s : s + args.clip_len] for g, s in zip(games, starts)]))
        clip = clip.to(device, non_blocking=True)
        loss, mse = lam.loss(clip, out := lam(clip))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lam.parameters(), 1.0)
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            result, confusion = probe(lam, test_video, test_actions, args.clip_len)
            print(f"step {step:5d}  {time.perf_counter() - start:6.0f} s  loss {loss.item():.4f}  "
                  f"perplexity {out.vq.perplexity.item():.2f}  probe {result['accuracy']:.1%} "
                  f"(majority {result['majority_baseline']:.1%})  codes {confusion.sum(1).tolist()}", flush=True)
            best = result
    seconds = time.perf_counter() - start
    print("held-out transitions by latent action (rows) and true action (columns):")
    print("latent " + " ".join(f"{name:>11}" for name in ACTION_NAMES))
    for code, row in enumerate(confusion):
        print(f"{code:6d} " + " ".join(f"{n:11d}" for n in row))
    summary = " ".join(args.overrides) or "tiny defaults"
    if args.scroll != 1:
        summary += f", background scroll {args.scroll} px"
    params = sum(p.numel() for p in lam.parameters()) / 1e6
    report("bench_lam.py", [(
        f"LAM probe on the synthetic game, LAM alone ({summary}; {params:.2f}M params), {args.steps} steps "
        f"of batch {args.batch_size}x{args.clip_len} frames",
        f"{best['accuracy']:.1%} vs majority {best['majority_baseline']:.1%} ({seconds:.0f} s)",
    )], args.append_results)


def train_on_shards(args, config: LAMConfig) -> None:
    from genie.eval.judge import Judge

    episodes = [e for e in shard_clips(args.data, args.max_frames) if len(e) >= args.clip_len]
    lengths = np.array([len(e) for e in episodes])
    print(f"{len(episodes)} training episodes, {lengths.sum():,} frames", flush=True)
    probe_shards = split_shards(args.heldout)[0]
    device = resolve_device(args.device)
    judge = Judge.load(args.judge, device=str(device)) if args.judge else None
    lam = LatentActionModel(config).to(device)
    optimizer = torch.optim.AdamW(lam.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    weights = (lengths - args.clip_len + 1) / (lengths - args.clip_len + 1).sum()  # every clip equally likely
    start, line = time.perf_counter(), ""
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        eps = rng.choice(len(episodes), args.batch_size, p=weights)
        starts = [rng.integers(0, lengths[e] - args.clip_len + 1) for e in eps]
        clip = torch.from_numpy(np.stack([episodes[e][s : s + args.clip_len] for e, s in zip(eps, starts)]))
        loss, mse = lam.loss(clip.to(device), out := lam(clip.to(device)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lam.parameters(), 1.0)
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            metrics, line = shard_probe(lam, probe_shards, args.clip_len, judge, args.probe_transitions)
            print(f"step {step:5d}  {time.perf_counter() - start:6.0f} s  loss {loss.item():.4f}  mse {mse.item():.5f}  "
                  f"perplexity {out.vq.perplexity.item():.2f}  {line}", flush=True)
    seconds = time.perf_counter() - start
    classes = metrics.get("probe_classes", {})
    if "counts" in classes:
        print("held-out transitions by latent action (rows) and class (columns):")
        print("latent " + " ".join(f"{name:>9}" for name in classes["classes"]))
        for code, row in enumerate(classes["counts"]):
            print(f"{code:6d} " + " ".join(f"{n:9d}" for n in row))
    if args.save:
        torch.save({"config": vars(config), "state_dict": lam.state_dict()}, args.save)
    params = sum(p.numel() for p in lam.parameters()) / 1e6
    summary = " ".join([f"lam of {args.config or 'configs/small/world.yaml'}", *args.overrides])
    report("bench_lam.py", [(
        f"LAM probe on {args.heldout} (trained on {args.data}), LAM alone ({summary}; {params:.2f}M params), "
        f"{args.steps} steps of batch {args.batch_size}x{args.clip_len} frames, seed {args.seed}",
        f"{line} ({seconds:.0f} s)",
    )], args.append_results)


if __name__ == "__main__":
    main()
