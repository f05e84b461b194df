"""Quality rows for RESULTS.md: `genie eval` of a bundle on held-out footage, one row per figure.

python benchmarks/bench_quality.py bundles/tok --data data/coinrun-heldout --note "small tokenizer, 3000 steps"
python benchmarks/bench_quality.py worlds/coinrun --data data/coinrun-heldout --judge judges/coinrun --append-results

Runs genie.eval.evaluate.evaluate (the same code and defaults as `genie eval`) and reports tokenizer
PSNR/SSIM, and for a world bundle what a player sees: the gain over holding the prompt still
(t = 1..16 and its minimum), detail kept at t = 8/16/30, whether the view moves when the real
one does, key following read by the judge beside
the real game's, the probes beside the judge and the majority baseline, delta-t PSNR at t = 4
and LAM usage. --json also keeps the whole result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import report  # noqa: E402

from genie.eval.evaluate import evaluate, format_motion  # noqa: E402
from genie.eval.evaluate import format_shares as shares  # noqa: E402


def quality_rows(r: dict, what: str) -> list[tuple[str, str]]:
    """(metric, value) rows of a genie eval result `r`; `what` names the bundle and data."""
    rows = [(f"tokenizer PSNR / SSIM, {what}", f"{r['tokenizer']['psnr']:.2f} dB / {r['tokenizer']['ssim']:.3f}")]
    if "horizon" not in r:
        return rows
    hs = r["hold_still"]
    rows += [
        (f"next-frame PSNR (inferred actions), {what}",
         f"{r['next_frame_psnr']:.2f} dB (real prompt frame held still: {r['psnr_copy'][0]:.2f} dB)"),
        (f"gain over holding the world's prompt still, t = 1..{len(hs['gain'])}, {what}",
         " ".join(f"{g:+.1f}" for g in hs["gain"]) + f" (min {hs['min_gain']:+.2f} dB)"),
        (f"detail kept (generated / real) at t = {', '.join(r['detail'])}, {what}",
         " / ".join(f"{v:.2f}" for v in r["detail"].values())),
    ]
    if "motion" in r:
        rows.append((f"view motion, t = 1..{len(hs['gain'])} (real / generated), {what}", format_motion(r["motion"])))
    rows += [
        (f"delta-t PSNR @ t=4 ({r['maskgit_steps']} MaskGIT steps, temperature {r['temperature']}), {what}",
         f"{r['delta_psnr_at_4']:+.2f} dB" if r["delta_psnr_at_4"] is not None else "n/a"),
        (f"LAM usage / perplexity, {what}", f"{r['lam']['usage']:.0%} / {r['lam']['perplexity']:.2f}"),
    ]
    for key, name in (("probe", "raw actions"), ("probe_classes", "classes"), ("probe_horizontal", "horizontal")):
        p = r.get(key, {})
        if "accuracy" in p:
            share = f"; {p['share_of_judge']:.0%} of the judge's" if "share_of_judge" in p else ""
            rows.append((f"action probe, {name}, {what}",
                         f"{p['accuracy']:.1%} vs majority {p['majority_baseline']:.1%}{share}"))
    if "judge" in r:
        j = r["judge"]
        rows.append((f"judge (history {j['history']}) on the probe's held-out transitions, {what}",
                     f"{j['accuracy']:.1%} (classes), {j['accuracy_horizontal']:.1%} (horizontal)"))
    k = r.get("key_following")
    if k:
        real = f"; real game {shares(k['real']['share'])}" if "share" in k["real"] else ""
        for name in ("probe", "keymap"):
            if name in k:
                of_real = f", {k[name]['of_real']:.0%} of the real game's" if "of_real" in k[name] else ""
                rows.append((f"key following ({name} latents held {k['steps']} steps, left / right / none), {what}",
                             f"{shares(k[name]['share'])}{of_real}{real}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True, help="held-out shards")
    parser.add_argument("--judge", help="judge bundle (genie judge train): judge rows and key following")
    parser.add_argument("--note", default="", help="what the bundle is (goes into each row)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--steps", type=int, help="MaskGIT steps (default: the bundle's)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: the bundle's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the whole result here")
    parser.add_argument("--append-results", action="store_true")
    args = parser.parse_args()
    r = evaluate(args.bundle, args.data, max_clips=args.clips, horizon=args.horizon, steps=args.steps,
                 temperature=args.temperature, device=args.device, judge=args.judge)
    what = f"{args.note or Path(args.bundle).name} on {args.data} ({r['clips']} clips)"
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    report("bench_quality.py", quality_rows(r, what), args.append_results)


if __name__ == "__main__":
    main()
