"""The data subcommands of `genie`: record, ingest, data inspect."""

from __future__ import annotations

import argparse
import json
import sys

from genie.arguments import count, float_at_least, int_at_least, out_dir, positive_float, positive_int
from genie.errors import GenieError

FRAME_SIZE = int_at_least(8, 1024)  # frame height and width in px


def _record(args: argparse.Namespace) -> None:
    from data_pipeline.record import record

    kwargs = dict(size=args.size, frames_per_shard=args.frames_per_shard, policy=args.policy)
    if args.sticky_mean is not None:
        kwargs["sticky_mean"] = args.sticky_mean
    if args.env == "coinrun":
        kwargs.update(start_level=args.start_level, num_levels=args.num_levels, distribution_mode=args.mode,
                      frame_skip=args.frame_skip)
    else:
        from data_pipeline.synthetic import check_size

        if args.frame_skip != 1:
            raise GenieError("--frame-skip is for --env coinrun (the synthetic game moves a whole step every frame)")
        check_size(args.size)
    print(f"recording {args.episodes} {args.env} episodes (<= {args.max_steps} frames) into {args.out}")
    try:
        stats = record(
            args.env, args.out, args.episodes, args.max_steps, seed=args.seed, workers=args.workers, **kwargs
        )
    except KeyboardInterrupt:  # the complete shards stay; the same command finishes the recording
        print(f"genie: interrupted (complete shards are kept in {args.out}; run the same command again to finish "
              "the recording)", file=sys.stderr)
        raise SystemExit(130) from None
    print(
        f"recorded {stats.episodes} episodes, {stats.frames} frames in {stats.seconds:.1f} s "
        f"({stats.frames_per_second:.0f} frames/s) -> {len(stats.shards)} shards in {args.out}"
    )


def _ingest(args: argparse.Namespace) -> None:
    from data_pipeline.ingest import ingest

    paths = ingest(args.paths, args.out, size=args.size, fps=args.fps, convert=args.convert)
    print(f"ingested {len(paths)} episodes into {args.out}")


def _inspect(args: argparse.Namespace) -> None:
    from data_pipeline.inspect import format_inspection, inspect_data

    d = inspect_data(args.data, verify=args.verify)
    print(json.dumps(d, indent=2) if args.json else format_inspection(d))


def register_data_commands(sub) -> None:
    """Add `record`, `ingest` and `data inspect` to the `genie` subparsers `sub`."""
    from data_pipeline.policy import POLICIES

    rec = sub.add_parser("record", help="record gameplay footage (CoinRun or the synthetic game) into shards")
    rec.add_argument("--env", choices=["coinrun", "synthetic"], required=True)
    rec.add_argument("--episodes", type=positive_int, required=True, help="number of episodes to record")
    rec.add_argument("--max-steps", type=positive_int, required=True, help="frames per episode at most")
    rec.add_argument("--out", type=out_dir, required=True, help="data folder (created if missing)")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument(
        "--workers", type=int_at_least(1, 256), default=1, help="recording processes (each writes its own shards)"
    )
    rec.add_argument("--size", type=FRAME_SIZE, default=64, help="frame height and width (default 64)")
    rec.add_argument("--start-level", type=count, default=0, help="coinrun: first level seed")
    rec.add_argument(
        "--num-levels", type=count, default=0, help="coinrun: number of level seeds (0: unlimited)"
    )
    rec.add_argument("--mode", default="hard", choices=["easy", "hard"], help="coinrun distribution mode")
    rec.add_argument("--frame-skip", type=int_at_least(1, 16), default=1,
                     help="coinrun: game frames per stored frame, each action held for all of them (default 1)")
    rec.add_argument(
        "--sticky-mean", type=float_at_least(1.0), help="mean frames a random action is held, >= 1 (1: a new one every step; coinrun 4, synthetic 2)"
    )
    rec.add_argument(
        "--policy", default="sticky", choices=POLICIES,
        help="sticky: random actions held a few frames (coinrun: biased to the right); uniform: the same, "
        "every action equally likely; hold: each episode holds one key (left, right, noop in turn), "
        "the real game's reference for `genie eval --judge`'s key following",
    )
    rec.add_argument(
        "--frames-per-shard", type=positive_int, default=10_000, help="start a new shard after this many frames"
    )
    rec.set_defaults(func=_record)

    ing = sub.add_parser("ingest", help="turn videos, GIFs or folders of frames into shards")
    ing.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="video (.mp4 .avi .webm .mov .mkv), .gif, or folder of .png/.jpg",
    )
    ing.add_argument("--out", type=out_dir, required=True, help="data folder (created if missing)")
    ing.add_argument("--size", type=FRAME_SIZE, default=64, help="frame height and width (default 64)")
    ing.add_argument("--fps", type=positive_float, help="frame rate (default: the video's own; 15 for folders)")
    ing.add_argument(
        "--convert", action="store_true", help="convert gray / RGBA / 16-bit frames instead of refusing them"
    )
    ing.set_defaults(func=_ingest)

    data = sub.add_parser("data", help="dataset tools (inspect)")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    insp = data_sub.add_parser(
        "inspect", help="episodes, frames, resolution, fps, sources, size of a dataset"
    )
    insp.add_argument("data", help="a .h5 shard or a folder of shards")
    insp.add_argument("--json", action="store_true", help="print the summary as JSON")
    insp.add_argument("--verify", action="store_true", help="also read every chunk of every shard (as slow as "
                      "reading all the frames once), so a shard damaged mid-file is reported")
    insp.set_defaults(func=_inspect)
