"""Quality rows for RESULTS.md: `genie eval` of a bundle on held-out footage, one row per figure.

python benchmarks/bench_quality.py bundles/tok --data data/coinrun-heldout --note "small tokenizer, 3000 steps"
python benchmarks/bench_quality.py bundles/world --data data/coinrun-heldout --append-results

Runs genie.evaluate.evaluate (the same code and defaults as `genie eval`) and reports tokenizer
PSNR/SSIM, and for a world bundle next-frame PSNR, delta-t PSNR at t=4, LAM usage and the action
probe beside its majority baseline. --json also keeps the whole result.
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

from genie.evaluate import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True, help="held-out shards")
    parser.add_argument("--note", default="", help="what the bundle is (goes into each row)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--steps", type=int, help="MaskGIT steps (default: the bundle's)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default: the bundle's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the whole result here")
    parser.add_argument("--append-results", action="store_true")
    args = parser.parse_args()
    r = evaluate(args.bundle, args.data, max_clips=args.clips, horizon=args.horizon, steps=args.steps,
                 temperature=args.temperature, device=args.device)
    what = f"{args.note or Path(args.bundle).name} on {args.data} ({r['clips']} clips)"
    rows = [(f"tokenizer PSNR / SSIM, {what}", f"{r['tokenizer']['psnr']:.2f} dB / {r['tokenizer']['ssim']:.3f}")]
    if "horizon" in r:
        rows += [
            (f"next-frame PSNR (inferred actions), {what}",
             f"{r['next_frame_psnr']:.2f} dB (prompt frame held still: {r['psnr_copy'][0]:.2f} dB)"),
            (f"PSNR t = 1..{r['horizon']} (inferred actions), {what}", " ".join(f"{v:.1f}" for v in r["psnr_inferred"])),
            (f"delta-t PSNR t = 1..{r['horizon']}, {what}", " ".join(f"{d:+.2f}" for d in r["delta_psnr"])),
            (f"delta-t PSNR @ t=4 ({r['maskgit_steps']} MaskGIT steps, temperature {r['temperature']}), {what}",
             f"{r['delta_psnr_at_4']:+.2f} dB" if r["delta_psnr_at_4"] is not None else "n/a"),
            (f"LAM usage / perplexity, {what}", f"{r['lam']['usage']:.0%} / {r['lam']['perplexity']:.2f}"),
        ]
        if "accuracy" in r.get("probe", {}):
            p = r["probe"]
            rows.append((f"action probe, raw actions, {what}",
                         f"{p['accuracy']:.1%} vs majority {p['majority_baseline']:.1%}"))
        if "accuracy" in r.get("probe_movement", {}):
            p = r["probe_movement"]
            rows.append((f"action probe, {len(p['classes'])} movement classes, {what}",
                         f"{p['accuracy']:.1%} vs majority {p['majority_baseline']:.1%}"))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    report("bench_quality.py", rows, args.append_results)


if __name__ == "__main__":
    main()
