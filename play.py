"""Play a genie world with the keyboard: python play.py [--world BUNDLE] [--prompt IMAGE].

The pygame player is not built yet. Until a default world ships in worlds/coinrun, this script
says what to do instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_WORLD = Path(__file__).resolve().parent / "worlds" / "coinrun"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=str(DEFAULT_WORLD), help="world bundle (default: worlds/coinrun)")
    parser.add_argument("--prompt", help="an image to start from")
    args = parser.parse_args(argv)
    world = Path(args.world)
    if not world.exists():
        print(f"play: no world at {world}: no default world ships with genie yet.\n"
              "Train one and try it with genie sample (see README, 'Train a world'):\n"
              "  genie sample BUNDLE --prompt frame.png --all-actions --out actions.gif", file=sys.stderr)
        return 1
    print("play: the interactive pygame player is not built yet; for now use\n"
          f"  genie sample {world} --prompt IMAGE --actions 1,1,2,3 --out rollout.gif", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
