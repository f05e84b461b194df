"""Can the dynamics draw the next frame when it is handed the real past? Teacher-forced next frames.

python benchmarks/next_frame.py --world worlds/coinrun --data data/coinrun4-heldout
python benchmarks/next_frame.py --world B --data D --clips 128 --mbr 0.7 --append-results

Rollouts (genie eval) mix two failures: a dynamics that cannot draw a move, and one that drifts on
its own frames. This measures the first alone. Over clips of the held-out shards (genie eval's probe
split), every frame t >= 3 of a clip is predicted in one greedy round from the real tokens of the
frames before it and the latent action the LAM infers for t-1 -> t, and each way of filling frame
t's tokens is decoded (with the real tokens of the frames before as the decoder's context) and
scored in PSNR against the real frame t:
  copy       frame t-1's tokens (holding still)
  mode       the most likely code of every token (the shipped sampler's pick)
  wrong a    the same with a random other latent action: what the action is worth to the dynamics
  mbr        the code nearest the expected code vector (sample.mbr, at softmax temperature --mbr)
  mean       the expected code vector itself, decoded as is (not a token: what a pick of one code
             per token averages toward)
  tokenizer  frame t's own tokens (the ceiling: the tokenizer's round trip)
split by whether the view scrolled (lam_codes.change_measures: the best integer shift in -6..6 px);
beside each pick, the share of frame t's tokens it gets right, and for mode, the share of the tokens
that changed from t-1 that it leaves unchanged instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import report  # noqa: E402
from lam_codes import change_measures  # noqa: E402

from genie.eval.evaluate import sample_clips, split_shards  # noqa: E402
from genie.eval.metrics import psnr  # noqa: E402
from genie.models.tokenizer import float_to_frames  # noqa: E402
from genie.world import World  # noqa: E402

FIRST = 3  # frames predicted from at least this many real frames before them
PICKS = ("copy", "mode", "wrong a", "mbr", "mean", "tokenizer")


@torch.no_grad()
def next_frames(world: World, clips: np.ndarray, mbr: float, batch: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """uint8 clips [C,T,H,W,3] -> per predicted frame (C*(T-FIRST) of them): PSNR of each pick, the
    share of tokens each pick gets right, the share of changed tokens mode leaves as they were, the
    view's shift in px."""
    tok, dyn = world.tokenizer, world.dynamics
    codes = tok.vq.codes().float()
    keep = world.sample.tokenizer_context - 1  # decoder context frames
    out: dict[str, list] = {k: [] for k in ("shift", "stuck", *PICKS, *(f"{p} tokens" for p in PICKS))}
    generator = torch.Generator().manual_seed(seed)
    for i in range(0, len(clips), batch):
        video = clips[i : i + batch]
        frames = torch.from_numpy(video)
        tokens = tok.encode(frames).indices.flatten(2)  # [B,T,N]
        none = torch.full((len(video), 1), dyn.config.no_action, dtype=torch.int64)
        actions = torch.cat((none, torch.from_numpy(world.infer_actions(video))), 1)  # the action into each frame
        shifts = np.stack([change_measures(c, 16)[2] for c in video])  # [B,T-1]
        for t in range(FIRST, video.shape[1]):
            seq = tokens[:, : t + 1].clone()
            seq[:, t] = dyn.config.mask_id
            logits = dyn.step_logits(seq, actions[:, : t + 1], last=True)[:, 0].float()  # [B,N,V]
            wrong = actions[:, : t + 1].clone()
            wrong[:, t] = (wrong[:, t] + torch.randint(1, world.num_actions, (len(video),), generator=generator)) \
                % world.num_actions
            mean = torch.softmax(logits / mbr, -1) @ codes
            picks = {"copy": tokens[:, t - 1], "mode": logits.argmax(-1),
                     "wrong a": dyn.step_logits(seq, wrong, last=True)[:, 0].argmax(-1),
                     "mbr": (mean @ codes.T).argmax(-1), "tokenizer": tokens[:, t]}
            past = tok.vq.embed(tokens[:, t - keep : t])
            latents = {p: tok.vq.embed(v[:, None]) for p, v in picks.items()} | {"mean": tok.vq.proj_out(mean)[:, None]}
            for p, z in latents.items():
                pixels = float_to_frames(tok.decode_latents(torch.cat((past, z), 1))[:, -1])
                out[p].append(psnr(pixels, frames[:, t]).numpy())
                if p in picks:
                    out[f"{p} tokens"].append((picks[p] == tokens[:, t]).float().mean(-1).numpy())
            changed = tokens[:, t] != tokens[:, t - 1]
            out["stuck"].append(((picks["mode"] == tokens[:, t - 1]) & changed).sum(-1).numpy()
                                / changed.sum(-1).clamp_min(1).numpy())
            out["shift"].append(shifts[:, t - 1])
    return {k: np.concatenate(v) for k, v in out.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", required=True, help="world bundle")
    parser.add_argument("--data", required=True, help="held-out shards (as genie eval's --data)")
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--mbr", type=float, help="softmax temperature of the mbr pick (default: the world's "
                                                  "sample.mbr, or 1 where that is 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--append-results", action="store_true", help="add the rows to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = World.load(args.world, device="cpu", precision="fp32")
    mbr = args.mbr or world.sample.mbr or 1.0
    length = min(world.sample.context, 8)
    clips = sample_clips(args.data, length, args.clips, args.seed, shards=split_shards(args.data)[0])[0]
    r = next_frames(world, clips, mbr, seed=args.seed)
    rows = []
    print(f"{args.world} on {args.data}: {len(r['shift']):,} frames, each from >= {FIRST} real frames (mbr at {mbr:g})")
    print(f"{'frames':>18} {'count':>6} " + " ".join(f"{p:>14}" for p in PICKS) + f" {'mode: stuck':>11}")
    for what, keep in (("all", np.ones(len(r["shift"]), bool)), ("the view scrolled", r["shift"] != 0), ("it did not", r["shift"] == 0)):
        cells = [f"{r[p][keep].mean():6.2f} dB {r[p + ' tokens'][keep].mean():3.0%}" if p + " tokens" in r
                 else f"{r[p][keep].mean():6.2f} dB    " for p in PICKS]
        print(f"{what:>18} {keep.sum():6d} " + " ".join(f"{c:>14}" for c in cells) + f" {r['stuck'][keep].mean():11.0%}")
        rows.append((f"teacher-forced next frame, {what} ({keep.sum():,} frames): PSNR (tokens right)",
                     ", ".join(f"{p} {c.strip()}" for p, c in zip(PICKS, cells))
                     + f"; mode leaves {r['stuck'][keep].mean():.0%} of the changed tokens unchanged"))
    report("next_frame.py", rows, args.append_results)


if __name__ == "__main__":
    main()
