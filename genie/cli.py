"""The `genie` command: one entry point, one subcommand per user story.

User errors (GenieError) print as one line and exit with status 2; `--debug` shows the traceback.
Imports are done inside each command so `genie --help` and the data commands stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from genie.errors import GenieError


def _train(args: argparse.Namespace) -> None:
    from genie.training.run import train_stage

    train_stage(
        stage=args.stage,
        config=args.config,
        data=args.data,
        out=args.out,
        overrides=args.overrides,
        resume=args.resume,
        tokenizer=getattr(args, "tokenizer", None),
    )


def _export(args: argparse.Namespace) -> None:
    from genie.training.run import export_run

    path = export_run(args.run, args.out, checkpoint=args.checkpoint)
    print(f"wrote bundle {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genie", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from data_pipeline.cli import register_data_commands

    register_data_commands(sub)

    train = sub.add_parser(
        "train",
        help="train a stage (tokenizer, world)",
        description="Train one stage. Any config key can be overridden after the flags, "
        "e.g. `model.dim=128 train.max_steps=500` (or --model.dim 128).",
    )
    train.add_argument("stage", choices=["tokenizer", "world"])
    train.add_argument("--config", required=True, help="YAML config, e.g. configs/tiny/tokenizer.yaml")
    train.add_argument("--data", required=True, help="dataset: a .h5 shard or a folder of shards")
    train.add_argument("--out", required=True, help="run folder (checkpoints, logs, samples)")
    train.add_argument("--tokenizer", help="tokenizer bundle (world stage only)")
    train.add_argument("--resume", action="store_true", help="continue from RUN's last checkpoint")
    train.set_defaults(func=_train, takes_overrides=True)

    export = sub.add_parser("export", help="turn a training run into a safetensors bundle")
    export.add_argument("run", help="run folder written by `genie train`")
    export.add_argument("--out", required=True, help="bundle folder to write")
    export.add_argument("--checkpoint", help="a specific .ckpt (default: the run's last)")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `genie` command with `argv` (default sys.argv[1:]); returns the exit status."""
    os.environ.setdefault("WANDB_MODE", "offline")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        args.func(args)
    except GenieError as err:
        if args.debug:
            raise
        print(f"genie: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genie: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
