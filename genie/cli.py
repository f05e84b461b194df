"""The `genie` command: one entry point, one subcommand per user story.

User errors (GenieError) print as one line and exit with status 2; `--debug` shows the traceback.
Imports are done inside each command so `genie --help` and the data commands stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from genie.arguments import (
    Parser,
    add_sampler_arguments,
    device,
    float_at_least,
    int_at_least,
    out_dir,
    out_file,
    positive_float,
    positive_int,
    run_reporting,
    seed,
)


def _train(args: argparse.Namespace) -> None:
    from genie.training.run import TrainingInterrupted, train_stage

    try:
        train_stage(
            stage=args.stage,
            config=args.config,
            data=args.data,
            out=args.out,
            overrides=args.overrides,
            resume=args.resume,
            tokenizer=getattr(args, "tokenizer", None),
            restart=args.restart,
        )
    except TrainingInterrupted as stop:  # Ctrl-C or SIGTERM: one line saying what was saved, exit 130
        print(f"genie: interrupted ({stop})", file=sys.stderr)
        raise SystemExit(130) from None


def _export(args: argparse.Namespace) -> None:
    from genie.training.run import export_run

    path = export_run(args.run, args.out, checkpoint=args.checkpoint, overrides=args.overrides, force=args.force,
                      world=args.world)
    print(f"wrote bundle {path}")


def _eval(args: argparse.Namespace) -> None:
    from genie.eval.evaluate import run_eval

    run_eval(args.bundle, args.data, args.json, max_clips=args.clips, horizon=args.horizon,
             prompt_frames=args.prompt_frames, steps=args.steps, temperature=args.temperature,
             device=args.device, seed=args.seed, grid=args.grid, judge=args.judge, key_starts=args.key_starts,
             compile=args.compile, precision=args.precision, guidance=args.guidance, mbr=args.mbr)


def _sample(args: argparse.Namespace) -> None:
    from genie.play.sample import run_sample

    path = run_sample(args.bundle, args.prompt, args.out, actions=args.actions, all_actions=args.all_actions,
                      length=args.length, steps=args.steps, temperature=args.temperature, seed=args.seed,
                      scale=args.scale, fps=args.fps, device=args.device, compile=args.compile,
                      precision=args.precision, guidance=args.guidance, mbr=args.mbr)
    print(f"wrote {path}")


def _label(args: argparse.Namespace) -> None:
    from genie.label import run_label

    run_label(args.inputs, args.world, args.out, map_data=args.map, device=args.device, batch=args.batch)


def _play(args: argparse.Namespace) -> None:
    from genie.play.player import play

    play(args)


def _keymap(args: argparse.Namespace) -> None:
    from genie.play.keymap import run_keymap

    run_keymap(args.bundle, data=args.data, out=args.out, prompt=args.prompt, steps=args.rollout_steps,
               seed=args.seed, device=args.device)


def _judge(args: argparse.Namespace) -> None:
    if args.judge_command == "train":
        from genie.training.judge import run_judge_train

        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        run_judge_train(args.data, args.out, history=args.history, steps=args.steps, batch_size=args.batch,
                        lr=args.lr, val_fraction=args.val_fraction, max_frames=args.max_frames, seed=args.seed)
    else:
        from genie.eval.judge import run_judge_eval

        run_judge_eval(args.judge, args.data, device=args.device)


def _scale(args: argparse.Namespace) -> None:
    from genie.training.scale import run_scale

    run_scale(args.config, args.data, args.out, tokenizer=args.tokenizer, eval_data=args.eval_data,
              overrides=args.overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="genie", description=__doc__.splitlines()[0])
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
    train.add_argument("--config", help="YAML config, e.g. configs/tiny/tokenizer.yaml (not needed with --resume)")
    train.add_argument("--data", required=True, help="dataset: a .h5 shard or a folder of shards")
    train.add_argument("--out", type=out_dir, required=True, help="run folder (checkpoints, logs, samples)")
    train.add_argument("--tokenizer", help="tokenizer bundle (world stage only)")
    train.add_argument("--resume", action="store_true", help="continue from RUN's last checkpoint")
    train.add_argument("--restart", action="store_true", help="start the run in RUN afresh: delete what a run "
                       "wrote there (config.yaml, run.json, checkpoints/, logs/, samples/, wandb/), keep the rest")
    train.set_defaults(func=_train, takes_overrides=True)

    export = sub.add_parser("export", help="turn a training run into a safetensors bundle",
                            description="Turn a training run into a safetensors bundle. A world's sampler "
                            "defaults may be set after the flags: sample.steps=3 sample.temperature=0.7")
    export.add_argument("run", help="run folder written by `genie train`")
    export.add_argument("--out", required=True, help="bundle folder to write, or NAME.safetensors for one file")
    export.add_argument("--force", action="store_true", help="replace the genie bundle at --out (other files "
                        "in its folder are kept); anything else there is never replaced")
    export.add_argument("--checkpoint", help="a specific .ckpt (default: the run's last)")
    export.add_argument("--world", help="a world bundle: write it with this tokenizer run's decoder (a run of "
                        "train.decoder_only from that world; its tokens must be the world's)")
    export.set_defaults(func=_export, takes_overrides=True)

    ev = sub.add_parser("eval", help="measure a world on held-out footage: beats holding still? keeps detail? follows the keys?")
    ev.add_argument("bundle", help="world bundle from `genie export`")
    ev.add_argument("--data", required=True, help="held-out shards (episodes the world did not train on)")
    ev.add_argument("--json", type=out_file, help="write all figures to this JSON file")
    ev.add_argument("--grid", type=out_file, help="write a PNG of originals above their reconstructions")
    ev.add_argument("--clips", type=positive_int, default=64, help="clips to evaluate (default 64)")
    ev.add_argument("--horizon", type=positive_int, default=30, help="generated frames per clip (default 30)")
    ev.add_argument("--judge", help="judge bundle (genie judge train): its accuracy beside the probe, and key following")
    ev.add_argument("--key-starts", type=positive_int, default=32, help="level starts for key following (default 32)")
    ev.add_argument("--prompt-frames", type=positive_int, default=1, help="real frames given as the prompt (default 1)")
    add_sampler_arguments(ev)
    ev.set_defaults(func=_eval)

    sa = sub.add_parser("sample", help="roll a world out from a prompt image into a GIF or PNG")
    sa.add_argument("bundle", help="world bundle from `genie export`")
    sa.add_argument("--prompt", required=True, help="an image of any size: a game frame, a sketch, a photo")
    sa.add_argument("--actions", help="latent actions to take, e.g. 1,1,2,3")
    sa.add_argument("--all-actions", action="store_true", help="one row per latent action, each repeated")
    sa.add_argument("--length", type=positive_int, default=16, help="frames per row with --all-actions (default 16)")
    sa.add_argument("--out", type=out_file, required=True, help="rollout.gif (animated) or rollout.png (a strip)")
    add_sampler_arguments(sa)
    sa.add_argument("--scale", type=int_at_least(1, 32), default=3, help="upscale factor, nearest neighbour (default 3)")
    sa.add_argument("--fps", type=float_at_least(0.0, strict=True, high=240.0), default=8.0, help="GIF frame rate (default 8)")
    sa.set_defaults(func=_sample)

    la = sub.add_parser("label", help="latent actions of videos, GIFs, frame folders or shards, as a CSV",
                        description="One CSV row per transition: source, episode, t, latent_action, confidence "
                        "(and real_action with --map). See genie/label.py.")
    la.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="video (.mp4 .avi .webm .mov .mkv), .gif, folder of .png/.jpg, shard or folder of shards")
    la.add_argument("--world", required=True, help="world bundle from `genie export`")
    la.add_argument("--out", type=out_file, required=True, help="CSV file to write")
    la.add_argument("--map", help="shards with true actions: also label each row with the real action's name")
    la.add_argument("--batch", type=positive_int, default=32, help="LAM windows per forward pass (default 32)")
    la.add_argument("--device", type=device, default="auto", help="auto (CUDA if present), cpu or cuda")
    la.set_defaults(func=_label)

    from genie.play.player import KEYS_HELP, add_arguments

    pl = sub.add_parser("play", help="play a world with the keyboard in a pygame window (same as python play.py)",
                        description="Play a genie world with the keyboard.", epilog=KEYS_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(pl)
    pl.set_defaults(func=_play)

    km = sub.add_parser("keymap", help="which latent action each arrow/WASD/space key plays; stored with the bundle",
                        description="Compute the player's key map from labeled footage (--data) or from the model, "
                        "and store it in the bundle (config.json, or X.keymap.json beside a one-file bundle).")
    km.add_argument("bundle", help="world bundle from `genie export`")
    km.add_argument("--data", help="shards with true actions and action names: map keys by co-occurrence")
    km.add_argument("--out", type=out_file, help="write the map to this JSON file instead of storing it in the bundle")
    km.add_argument("--prompt", help="image/video/shard to roll the model out from (default: --data episode "
                    "starts, the bundle's prompts/, else a gray frame)")
    km.add_argument("--rollout-steps", type=positive_int, default=4, help="frames each action is held for (default 4)")
    km.add_argument("--seed", type=seed, default=0)
    km.add_argument("--device", type=device, default="auto", help="auto (CUDA if present), cpu or cuda")
    km.set_defaults(func=_keymap)

    ju = sub.add_parser("judge", help="a supervised inverse-dynamics model that reads true actions off frames "
                        "(evaluation only: genie eval --judge)")
    ju_sub = ju.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    jt = ju_sub.add_parser("train", help="train a judge on footage with true actions (genie record)",
                           description="Train the judge (genie/training/judge.py) on footage with true actions; prints its "
                           "accuracy on held-out episodes beside the majority baseline.")
    jt.add_argument("data", help="shards with true actions, e.g. genie record --policy uniform")
    jt.add_argument("--out", type=out_dir, required=True, help="judge bundle folder to write")
    jt.add_argument("--history", type=int_at_least(0, 8), default=1, help="past frames it sees before t (default 1: reads momentum)")
    jt.add_argument("--steps", type=positive_int, default=1500, help="training steps (default 1500)")
    jt.add_argument("--batch", type=positive_int, default=64, help="transitions per step (default 64)")
    jt.add_argument("--lr", type=positive_float, default=1e-3)
    jt.add_argument("--val-fraction", type=float_at_least(0.0, strict=True, high=0.5), default=0.1, help="share of episodes held out (default 0.1)")
    jt.add_argument("--max-frames", type=positive_int, default=300_000, help="frames read into memory at most")
    jt.add_argument("--seed", type=seed, default=0)
    jt.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    jt.set_defaults(func=_judge)
    je = ju_sub.add_parser("eval", help="a judge's accuracy on other footage with true actions")
    je.add_argument("judge", help="judge bundle from `genie judge train`")
    je.add_argument("--data", required=True, help="shards with true actions")
    je.add_argument("--device", type=device, default="auto", help="auto (CUDA if present), cpu or cuda")
    je.set_defaults(func=_judge)

    sc = sub.add_parser("scale", help="scaling sweep: dynamics models of several sizes on one budget; CSV, plot, fit",
                        description="Train one world per point of a sweep config under a fixed token or FLOP "
                        "budget; write results.csv (parameters, counted FLOPs, tokens, validation loss, next-frame "
                        "PSNR, wall time), scaling.png (log-log) and the fit L(C) = a*C^-b + c. Rerun to resume. "
                        "Overrides after the flags (section.key=value) apply to every point. See genie/training/scale.py.")
    sc.add_argument("--config", required=True, help="sweep YAML, e.g. configs/scale/tiny.yaml")
    sc.add_argument("--data", required=True, help="dataset: a .h5 shard or a folder of shards")
    sc.add_argument("--out", type=out_dir, required=True, help="sweep folder (points/, results.csv, scaling.png, fit.json)")
    sc.add_argument("--tokenizer", help="tokenizer bundle for every point (default: the sweep config's)")
    sc.add_argument("--eval-data", help="footage for next-frame PSNR (default: held-out episodes of --data)")
    sc.set_defaults(func=_scale, takes_overrides=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `genie` command with `argv` (default sys.argv[1:]); returns the exit status."""
    os.environ.setdefault("WANDB_MODE", "offline")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parsed = parser.parse_or_status(argv, known=True)
    if isinstance(parsed, int):
        return parsed
    args, extra = parsed
    if extra and not getattr(args, "takes_overrides", False):
        return parser.parse_or_status(argv)  # reports the unrecognized arguments: 2
    args.overrides = extra
    return run_reporting("genie", lambda: args.func(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
