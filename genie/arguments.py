"""The one place command-line values are checked: argparse types and the parser every command uses.

Each type rejects a bad value at parse time, before any work starts, with one line naming the
option, the value and what it must be (argparse adds the option's name):

    genie sample: error: argument --steps: must be an integer >= 1, got '0' (see genie sample --help)

`Parser` prints that single line (no usage block) and exits with status 2, like every other user
error. Output paths are checked for being writable without creating anything.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from genie.errors import GenieError


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)

    def parse_or_status(self, argv: list[str], known: bool = False):
        """-> (args, extra arguments) as parse_known_args, or the exit status (int) when parsing
        ends the command instead: 0 after --help, 2 after a bad value (already reported)."""
        try:
            args, extra = self.parse_known_args(argv)
            if extra and not known:
                self.error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as stop:
            return stop.code if isinstance(stop.code, int) else 2
        return args, extra


def int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            what = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


def float_at_least(low: float, strict: bool = False, high: float | None = None):
    """An argparse type: a finite float >= low (> low when strict), at most high."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (strict and value == low) or (high is not None and value > high):
            what = f"a number {'>' if strict else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


positive_int = int_at_least(1)
count = int_at_least(0)
temperature = float_at_least(0.0)  # 0 is greedy
positive_float = float_at_least(0.0, strict=True)
seed = int_at_least(0, 2**31 - 1)  # World seeds are hashed as 31-bit values (genie.nn.maskgit.SEED_LIMIT)


def device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps; whether it is present is checked when the model loads."""
    kind, _, index = text.partition(":")
    if kind not in ("auto", "cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def _first_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: Path, what: str) -> None:
    """The folder `path` would be made in exists (or can be made) and is writable."""
    base = _first_existing(path.parent)
    if not base.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {what} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {what} {path}: {base} is not writable")


def out_file(text: str) -> str:
    """A file to write: not a folder, and its folder exists or can be created, writable."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is read-only")
    _check_creatable(path, "file")
    return text


def out_dir(text: str) -> str:
    """A folder to write into: not a file, and it exists writable or can be created."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"cannot write into {text}: it is not writable")
    else:
        _check_creatable(path, "folder")
    return text



def add_sampler_arguments(parser: argparse.ArgumentParser, seed_help: str = "world seed (default 0)",
                          auto_precision: str = "bf16 on CUDA, fp32 on a CPU") -> None:
    """--steps, --temperature, --guidance, --mbr, --seed, --device, --compile and --precision: how every command that rolls a world out samples it."""
    parser.add_argument("--steps", type=positive_int, help="MaskGIT rounds per frame (default: the bundle's)")
    parser.add_argument("--temperature", type=temperature, help="sampling temperature, 0 = greedy (default: the bundle's)")
    parser.add_argument("--guidance", type=temperature,
                        help="classifier-free guidance on the action: 1 none, 2 doubles its effect (default: the bundle's; "
                             "needs a world trained with dynamics.action_dropout)")
    parser.add_argument("--mbr", type=temperature,
                        help="greedy picks by minimum Bayes risk: each token the code nearest the expected code vector "
                             "under softmax(logits / MBR); 0 the most likely code (default: the bundle's)")
    parser.add_argument("--seed", type=seed, default=0, help=seed_help)
    parser.add_argument("--device", type=device, default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the world's step: faster steps after a first one that compiles (a minute on a CPU)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help=f"auto: {auto_precision}; bf16 on a CPU that multiplies it natively "
                             "(AVX512-BF16, AMX) steps faster")


def run_reporting(prog: str, call, debug: bool = False) -> int:
    """Run a parsed command -> its exit status: 0 when it returns, 2 after a GenieError (one line
    on stderr, or the traceback with debug), 130 after Ctrl-C."""
    try:
        call()
    except GenieError as err:
        if debug:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0
