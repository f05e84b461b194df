"""Pick a world's shipped prompts (its prompts/ folder) from held-out footage.

    python worlds/make_prompts.py data/coinrun-heldout --out worlds/coinrun/prompts --count 8

One frame from each of the first --count episodes that last at least 2 * --at frames, taken at
frame --at (a few steps in, so the player has left the spawn wall and the level's background
shows), written as PNG. Files are named prompt-NN.png, so `sorted()` keeps that order: the player
starts from prompt-00.png, the env's reset draws from all of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import h5py

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_pipeline.shards import find_shards, read_shard_info  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="held-out shards (a .h5 file or a folder of them)")
    parser.add_argument("--out", required=True, help="folder to write prompt-NN.png into")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--at", type=int, default=8, help="frame index within each episode")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for shard in find_shards(args.data):
        info = read_shard_info(shard)
        with h5py.File(shard, "r") as f:
            for start, end in info.episodes:
                if written == args.count:
                    break
                if end - start < 2 * args.at:
                    continue
                frame = f["frames"][start + args.at]
                cv2.imwrite(str(out / f"prompt-{written:02d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                written += 1
    if written < args.count:
        raise SystemExit(f"{args.data}: only {written} episodes last {2 * args.at}+ frames; asked for {args.count}")
    print(f"wrote {written} prompts to {out}")


if __name__ == "__main__":
    main()
