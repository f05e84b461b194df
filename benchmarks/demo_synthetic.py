"""The whole pipeline on the synthetic game, as a user runs it: every command once, end to end.

python benchmarks/demo_synthetic.py --out runs/demo            # ~15 minutes on a 2-core CPU

record footage (8 known actions) -> train + export the tiny tokenizer -> train + export a world
(LAM + dynamics) -> genie eval on held-out games (table + JSON) -> genie sample --all-actions ->
a headless play.py session recorded to a GIF -> genie label on a held-out video with --map.
Everything lands in --out (eval.json, all-actions.gif, play.gif, labels.csv). Every step is the
`genie` command of the README (called in-process through genie.cli.main), so this is also an end
to end check of the commands as written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genie.cli import main as genie  # noqa: E402


def run(*argv: str) -> None:
    print("$ genie " + " ".join(argv), flush=True)
    if genie(list(argv)) != 0:
        raise SystemExit(f"genie {argv[0]} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--tokenizer-steps", type=int, default=300)
    parser.add_argument("--world-steps", type=int, default=800)
    args = parser.parse_args()
    out = Path(args.out)
    quiet = ["train.progress_bar=false", "train.wandb=false"]
    start = time.perf_counter()
    run("record", "--env", "synthetic", "--episodes", "256", "--max-steps", "64", "--seed", "1",
        "--out", str(out / "data/train"))
    run("record", "--env", "synthetic", "--episodes", "32", "--max-steps", "64", "--seed", "2",
        "--out", str(out / "data/heldout"))
    run("train", "tokenizer", "--config", str(ROOT / "configs/tiny/tokenizer.yaml"), "--data", str(out / "data/train"),
        "--out", str(out / "tok"), f"train.max_steps={args.tokenizer_steps}", *quiet)
    run("export", str(out / "tok"), "--out", str(out / "tok.bundle"))
    run("train", "world", "--config", str(ROOT / "configs/tiny/world.yaml"), "--data", str(out / "data/train"),
        "--tokenizer", str(out / "tok.bundle"), "--out", str(out / "world"), f"train.max_steps={args.world_steps}",
        f"train.val_every={args.world_steps}", *quiet)
    run("export", str(out / "world"), "--out", str(out / "world.bundle"))
    trained = time.perf_counter() - start
    run("eval", str(out / "world.bundle"), "--data", str(out / "data/heldout"), "--json", str(out / "eval.json"),
        "--clips", "64", "--horizon", "8")
    frame = out / "prompt.png"
    import itertools

    import cv2

    from data_pipeline.shards import read_episodes

    first_two = list(itertools.islice(read_episodes(out / "data/heldout"), 2))
    cv2.imwrite(str(frame), cv2.cvtColor(first_two[0].frames[0], cv2.COLOR_RGB2BGR))
    run("sample", str(out / "world.bundle"), "--prompt", str(frame), "--all-actions", "--length", "8",
        "--out", str(out / "all-actions.gif"))
    run("keymap", str(out / "world.bundle"), "--data", str(out / "data/train"))
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    keys = "right,right,right,down,down,left,left,up,8,8,noop,noop"
    print(f"$ SDL_VIDEODRIVER=dummy python play.py --world ... --keys {keys} --record play.gif", flush=True)
    subprocess.run([sys.executable, str(ROOT / "play.py"), "--world", str(out / "world.bundle"), "--prompt", str(frame),
                    "--keys", keys, "--record", str(out / "play.gif"), "--scale", "4"], env=env, check=True)
    video = out / "heldout.mp4"
    frames = first_two[1].frames
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (64, 64))
    for image in frames:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    run("label", str(video), "--world", str(out / "world.bundle"), "--out", str(out / "labels.csv"),
        "--map", str(out / "data/train"))
    result = json.loads((out / "eval.json").read_text())
    print(f"trained tokenizer + world in {trained / 60:.1f} min; probe {result['probe']['accuracy']:.1%} "
          f"(majority {result['probe']['majority_baseline']:.1%}), delta-t PSNR@4 {result['delta_psnr_at_4']:+.2f} dB")


if __name__ == "__main__":
    main()
