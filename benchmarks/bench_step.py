"""World.step against earlier revisions of this repository: the ratio, measured in one run.

python benchmarks/bench_step.py --against 9a2e86d                  # worlds/coinrun, batch 1, 2 threads
python benchmarks/bench_step.py --against 9a2e86d HEAD~1 --batch 8 --repeats 5 --append-results
python benchmarks/bench_step.py --variant bf16 --variant compile   # this tree's variants, no other revision

Each revision is checked out with `git worktree` into a temporary folder (removed afterwards) and
timed in its own Python process through the surface every revision shares (the model and config
classes genie.world imports, World(...), reset, step): the bundle's tokenizer and dynamics are
built with the config keys that revision knows (newer keys are training-only or the LAM's), so any
revision that has genie.World can be compared with this working tree on the same weights. The
prompt is one frame, so the LAM (whose layout may have changed) is never run.
Every process loads and warms up its World once, then they take turns, one timing of --frames
steps each per repeat (this tree, rev 1, ..., this tree, rev 1, ...), so a slow phase of a shared
machine falls on all of them. Reported: the median per tree with the range, and the ratio as the
median over repeats of each repeat's ratio to this tree's timing in the same repeat. Time on an
idle machine, with many short repeats (--repeats 30 --frames 20) where the machine's speed drifts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import report  # noqa: E402

# One timing, run in a fresh process inside the tree being timed (argv: tree, bundle, batch, frames,
# threads, variant, MaskGIT rounds or 0 for the bundle's, device).
TIMER = r"""
import dataclasses, json, sys, time
from pathlib import Path
tree, bundle, batch, frames, threads, variant, rounds, device = sys.argv[1:9]
sys.path.insert(0, tree)
import numpy as np, torch
from safetensors.torch import load_file
torch.set_num_threads(int(threads))
import genie.world as gw
config = json.loads((Path(bundle) / "config.json").read_text())
weights = load_file(Path(bundle) / "model.safetensors")

def build(model_cls, cfg_cls, name):
    known = {f.name for f in dataclasses.fields(cfg_cls)}
    model = model_cls(cfg_cls(**{k: v for k, v in config["components"][name].items() if k in known}))
    state = {k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(name + ".")}
    try:
        model.load_state_dict(state)
    except RuntimeError:
        if name != "lam":
            raise  # the LAM only reads multi-frame prompts, and this prompt is one frame
    return model

known = {f.name for f in dataclasses.fields(gw.SampleConfig)}
sample = gw.SampleConfig(**{k: v for k, v in config.get("sample", {}).items() if k in known})
sample.steps = int(rounds) or sample.steps
if variant == "bf16":  # this tree only: as World.load makes it (weights held in bf16), as the player does
    world = gw.World.load(bundle, device=device, steps=int(rounds) or None, precision="bf16")
else:
    world = gw.World(build(gw.VideoTokenizer, gw.TokenizerConfig, "tokenizer"),
                     build(gw.LatentActionModel, gw.LAMConfig, "lam"), build(gw.Dynamics, gw.DynamicsConfig, "dynamics"),
                     sample, device=device, **({"compile": True} if variant == "compile" else {}))
b, n = int(batch), int(frames)
rng = np.random.default_rng(0)
prompt = rng.integers(0, 256, (b, *world.frame_shape), dtype=np.uint8)
world.reset(prompt, seed=0)
warm = world.sample.context + (20 if variant == "compile" else 2)  # a full window; compile's graphs built
for _ in range(warm):
    world.step(rng.integers(0, world.num_actions, b))
print("ready", flush=True)
for line in sys.stdin:  # one timing of n steps per line, until the parent closes stdin
    actions = rng.integers(0, world.num_actions, (n, b))
    start = time.perf_counter()
    for a in actions:
        world.step(a)
    print(json.dumps({"ms": (time.perf_counter() - start) / n * 1e3}), flush=True)
"""

# the step before issue 17's sampler rework (a cache grown by concatenation, a second forward to write
# it): `make bench` times this tree against it
OLD_PATH = "9a2e86d"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def start_timer(tree: Path, bundle: Path, batch: int, frames: int, threads: int, variant: str, rounds: int,
                device: str) -> subprocess.Popen:
    """A process of `tree` holding a warmed-up World, timing `frames` steps per line it reads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(tree)}
    proc = subprocess.Popen([sys.executable, "-c", TIMER, str(tree), str(bundle), str(batch), str(frames),
                             str(threads), variant, str(rounds), device], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=tree)
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"bench_step: the timer in {tree} did not start (exit {proc.wait()})")
    return proc


def time_once(proc: subprocess.Popen) -> float:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())["ms"]


def compare_steps(bundle: Path, against: list[str], variants: list[str] = (), batch: int = 1, rounds: int = 0,
                  frames: int = 20, repeats: int = 30, threads: int = 2, device: str = "cpu",
                  log=print) -> list[tuple[str, str]]:
    """Time World.step of this tree (and its `variants`) beside each revision in `against`, taking turns;
    -> RESULTS rows (label, value), each revision's with its paired ratio to this tree."""
    bundle = Path(bundle).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": (ROOT, "eager")}
        trees.update({f"this tree, {v}": (ROOT, v) for v in variants})
        for rev in against:
            sha = git("rev-parse", "--short", rev)
            path = Path(tmp) / sha
            git("worktree", "add", "--detach", str(path), sha)
            trees[f"{rev} ({sha})"] = (path, "eager")
        procs = {}
        try:
            procs = {name: start_timer(tree, bundle, batch, frames, threads, variant, rounds, device)
                     for name, (tree, variant) in trees.items()}
            times: dict[str, list[float]] = {name: [] for name in trees}
            for r in range(repeats):
                for name, proc in procs.items():
                    times[name].append(time_once(proc))
                log(f"repeat {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f} ms" for n, t in times.items()))
        finally:
            for proc in procs.values():
                proc.stdin.close()
                proc.wait()
            for tree, _ in trees.values():
                if tree != ROOT:
                    git("worktree", "remove", "--force", str(tree))
    median = {name: float(np.median(t)) for name, t in times.items()}
    ours = ["this tree", *(f"this tree, {v}" for v in variants)]
    rows = []
    for name, t in times.items():
        spread = f"{min(t):.1f}-{max(t):.1f}"
        # each repeat's ratio to this tree's timing in the same repeat: a slow phase of the machine cancels;
        # a revision's row gets one ratio per variant of this tree, a variant's row its ratio to this tree
        against = ["this tree"] if name in ours else ours
        paired = [f"{mine} is {np.median(np.array(t) / np.array(times[mine])):.2f}x as fast" for mine in against
                  if mine != name]
        ratio = f"; {', '.join(paired)} (median of paired repeats)" if paired else ""
        what = f"{rounds} MaskGIT rounds" if rounds else "the bundle's MaskGIT rounds"
        where = f"{threads} thread(s)" if device == "cpu" else device
        rows.append((f"World.step, {bundle.name} ({what}), batch {batch}, {where}: {name}",
                     f"{median[name]:.2f} ms a step, {1e3 / median[name]:.1f} frames/s (repeats {spread} ms){ratio}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default=str(ROOT / "worlds" / "coinrun"), help="bundle every tree loads")
    parser.add_argument("--against", nargs="*", default=[], help="git revisions to time beside this tree")
    parser.add_argument("--variant", action="append", default=[], choices=["bf16", "compile"],
                        help="also time this tree's World with precision=bf16 or compile=True")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=0, help="MaskGIT rounds per frame (default: the bundle's)")
    parser.add_argument("--frames", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--append-results", action="store_true")
    args = parser.parse_args()
    rows = compare_steps(Path(args.world), args.against, args.variant, args.batch, args.rounds, args.frames,
                         args.repeats, args.threads, args.device, log=lambda line: print(line, flush=True))
    report("bench_step.py", rows, args.append_results)


if __name__ == "__main__":
    main()
