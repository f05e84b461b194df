"""The recipe loop: train a world recipe on CoinRun at a fixed compute budget, judge it as a player would.

    python benchmarks/bench_world.py --config configs/small/world.yaml --data data/coinrun-train \
        --tokenizer worlds/coinrun --heldout data/coinrun-heldout --judge judges/coinrun \
        --budget-flops 2e15 --seeds 2 --out ../lab/recipes/baseline --name baseline [section.key=value ...]

For each seed (train.seed = 0, 1, ...): train `genie train world` with the overrides for the
number of steps that the budget buys, export, run `genie eval` (all of it: hold-still gain, detail
kept, key following read by the judge, probes beside the judge) on held-out levels, and append one
row per seed to RESULTS.md with --append-results. Recipes are compared at equal compute: the budget
is counted training FLOPs (genie.training.scale.measure_models: dynamics + LAM forward and backward and the
frozen tokenizer's encoding, per clip, times the batch; with train.lam_steps the LAM phase's steps
are counted at the LAM's cost), not wall time, so a change that makes each step dearer gets fewer steps. The row also says the wall time each seed took here.

Rerunning the same command resumes: a seed whose eval.json exists is read back, a seed killed
during training continues from its last checkpoint (checkpoints every train.ckpt_every steps).
Decide world changes with this loop on CoinRun over >= 2 seeds, never on one number: a world that
melts can win delta-t PSNR; it cannot win the hold-still gain, detail or key following.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_quality import shares  # noqa: E402
from common import report  # noqa: E402

from genie.bundle import load_tokenizer  # noqa: E402
from genie.errors import GenieError  # noqa: E402
from genie.eval.evaluate import evaluate  # noqa: E402
from genie.training.run import export_run, resolve_config  # noqa: E402
from genie.training.scale import measure_models, steps_for_budget, train_resumable  # noqa: E402


def plan(config: str, overrides: list[str], tokenizer: str, budget: float, out: Path) -> dict:
    """Steps the budget buys for this recipe, and what one step costs."""
    tokenizer_cfg = load_tokenizer(tokenizer).config
    # the budget sets max_steps (so the config's own may be below train.lam_steps)
    sections = resolve_config("world", config, [*overrides, "train.max_steps=1000000000"], out, resume=False,
                              tokenizer_cfg=tokenizer_cfg)
    m = measure_models(sections, tokenizer_cfg)
    try:
        steps = steps_for_budget(sections["train"], m, budget)
    except ValueError as err:
        raise GenieError(f"--budget-flops: {err}") from None
    return {"steps": steps, "flops_per_step": budget / steps, "params_total": m["params_total"]}


def run_seed(args, overrides: list[str], seed: int, steps: int) -> tuple[dict, float]:
    """Train, export and evaluate one seed (resumably) -> (eval result, training seconds)."""
    folder = Path(args.out) / f"seed{seed}"
    result_file, timing_file = folder / "eval.json", folder / "train_seconds.json"
    if result_file.is_file():
        return json.loads(result_file.read_text()), json.loads(timing_file.read_text())["seconds"]
    folder.mkdir(parents=True, exist_ok=True)
    seconds = json.loads(timing_file.read_text())["seconds"] if timing_file.is_file() else 0.0
    start = time.perf_counter()
    seed_overrides = [*overrides, f"train.seed={seed}", f"train.max_steps={steps}", "train.wandb=false",
                      "train.progress_bar=false"]
    train_resumable("world", args.config, args.data, folder / "run", seed_overrides, tokenizer=args.tokenizer)
    seconds += time.perf_counter() - start
    timing_file.write_text(json.dumps({"seconds": seconds}) + "\n")
    export_run(str(folder / "run"), str(folder / "bundle"), overrides=args.sample, force=True)  # a rerun replaces it
    # the same held-out clips and sampling seeds for every recipe and training seed
    result = evaluate(str(folder / "bundle"), args.heldout, max_clips=args.clips, judge=args.judge, seed=0)
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result, seconds


def summary(r: dict) -> str:
    """One RESULTS.md value: every figure a player would care about, in one line."""
    parts = [f"hold-still gain min {r['hold_still']['min_gain']:+.2f} dB",
             "detail " + "/".join(f"{v:.2f}" for v in r["detail"].values()) + f" @ t={','.join(r['detail'])}"]
    if r.get("motion", {}).get("followed") is not None:
        parts.append(f"moves followed {r['motion']['followed']:.0%}")
    k = r.get("key_following", {})
    if "probe" in k:
        parts.append(f"keys L/R/none {shares(k['probe']['share'])}"
                     + (f" ({k['probe']['of_real']:.0%} of real)" if "of_real" in k["probe"] else ""))
    for key, name in (("probe_classes", "probe"), ("probe_horizontal", "horizontal")):
        p = r.get(key, {})
        if "accuracy" in p:
            parts.append(f"{name} {p['accuracy']:.1%} (maj {p['majority_baseline']:.1%}"
                         + (f", {p['share_of_judge']:.0%} of judge)" if "share_of_judge" in p else ")"))
    parts += [f"dtPSNR@4 {r['delta_psnr_at_4']:+.2f} dB", f"tokenizer {r['tokenizer']['psnr']:.1f} dB"]
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="world config, e.g. configs/small/world.yaml")
    parser.add_argument("--data", required=True, help="CoinRun training footage")
    parser.add_argument("--tokenizer", required=True, help="tokenizer bundle (a world bundle's tokenizer works)")
    parser.add_argument("--heldout", required=True, help="held-out levels, with held-key footage for key following")
    parser.add_argument("--judge", required=True, help="judge bundle (genie judge train)")
    parser.add_argument("--budget-flops", type=float, required=True, help="counted training FLOPs per seed")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="train.seed of the first seed (seeds first-seed .. first-seed + seeds - 1)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--out", required=True, help="folder for the runs, bundles and eval.json of each seed")
    parser.add_argument("--name", default="", help="the recipe's name in RESULTS.md")
    parser.add_argument("--threads", type=int, help="torch threads (give each job its own)")
    parser.add_argument("--append-results", action="store_true")
    args, overrides = parser.parse_known_args()
    args.sample = [o for o in overrides if o.startswith("sample.")]  # sampler settings go into the bundle
    overrides = [o for o in overrides if not o.startswith("sample.")]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        p = plan(args.config, overrides, args.tokenizer, args.budget_flops, Path(args.out) / "plan")
        print(f"recipe {args.name or '(unnamed)'}: {p['params_total'] / 1e6:.2f}M params, "
              f"{p['flops_per_step']:.3g} FLOPs a step (mean) -> {p['steps']} steps for {args.budget_flops:.3g} FLOPs")
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            result, seconds = run_seed(args, overrides, seed, p["steps"])
            what = (f"recipe {args.name or ' '.join(overrides) or 'base'}, {args.budget_flops:.2g} FLOPs "
                    f"({p['steps']} steps), seed {seed}")
            rows.append((what, f"{summary(result)}; trained in {seconds / 60:.0f} min"))
    except GenieError as err:
        sys.exit(f"bench_world: {err}")
    report("bench_world.py", rows, args.append_results)


if __name__ == "__main__":
    main()
