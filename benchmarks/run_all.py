"""The benchmark suite: one table of the figures that matter, each beside its ratio to the machine's peak.

make bench                                           # = python benchmarks/run_all.py: print, append to RESULTS.md
python benchmarks/run_all.py --no-append             # print only
python benchmarks/run_all.py --quick --no-append     # shorter, fewer measurements (a smoke test)
python benchmarks/run_all.py --world bundles/world --threads 1

Rows, in order:
- the measured matmul peak (fp32; on a GPU bf16 too): the reference of every ratio below;
- training samples/s of the tokenizer and of the world (LAM + dynamics) at configs/<scale>, with
  model FLOPs utilisation (bench_models.py; bf16 autocast on a GPU);
- play.py's loop on the default world (worlds/coinrun; without it, configs/<scale> with random
  weights, and the row says so), batch 1; on a GPU the fastest of eager, torch.compile and
  torch.compile with CUDA graphs (bench_play.py);
- World.step with the KV cache against recomputing the window, at a 16-frame context (bench_models.py);
- vector-env steps/s against num_envs (bench_envs.py);
- a world bundle's World.step in this tree beside the old path's (commit bench_step.OLD_PATH, before
  the sampler rework), the two taking turns in one run, with their paired ratio (bench_step.py);
- shard write and random clip read throughput of freshly recorded footage (bench_data.py).

Ratio to peak: FLOPs counted op by op (torch.utils.flop_counter) over one step (forward and backward
for training) times steps/s, over the measured matmul peak (bf16 on a GPU, where models run in bf16
autocast; fp32 on a CPU). Data rows compare with plain uncompressed file I/O of the same bytes.
Timings are short, single runs: on a busy machine rerun before trusting a few percent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_data import clip_read_rate, raw_file_rates, record_footage, shard_write_rate  # noqa: E402
from bench_envs import vector_env_rates  # noqa: E402
from bench_models import TrainBench, tokenizer_training, training_rate, world_step_rate, world_training  # noqa: E402
from bench_play import best_play_rate, describe, step_flops, world_factory  # noqa: E402
from bench_step import OLD_PATH, compare_steps, git  # noqa: E402
from common import RESULTS, append_results, command_line, count_flops, matmul_peak  # noqa: E402

from data_pipeline.shards import find_shards, read_episodes  # noqa: E402
from genie.world import World, cpu_has_bf16, resolve_device  # noqa: E402

Row = tuple[str, str, str]  # (suite row, value, ratio to peak)


@dataclass
class Settings:
    """How long each measurement runs: the default, or --quick."""

    peak_size: int | None = None  # matmul side (None: 2048 on a CPU, 8192 on a GPU)
    play_frames: int = 30
    kv_steps: int = 4
    num_envs: tuple[int, ...] = (1, 4, 16, 64)
    env_steps: int = 3
    train_steps: int = 3
    episodes: int = 16  # footage recorded for the data rows
    episode_steps: int = 200
    clips: int = 400
    step_repeats: int = 10  # World.step against the old path: turns of step_frames steps each
    step_frames: int = 20


QUICK = Settings(peak_size=1024, play_frames=8, kv_steps=2, num_envs=(1, 4), env_steps=2, train_steps=1,
                 episodes=4, episode_steps=100, clips=50, step_repeats=2, step_frames=5)


class Peak:
    """The measured matmul peak that every ratio refers to."""

    def __init__(self, device: torch.device, size: int | None):
        self.size = size or (8192 if device.type == "cuda" else 2048)
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.fp32 = matmul_peak(device, torch.float32, self.size)
        self.flops = self.fp32 if self.dtype == torch.float32 else matmul_peak(device, self.dtype, self.size)
        self.name = "bf16" if self.dtype == torch.bfloat16 else "fp32"

    def ratio(self, flops_per_second: float) -> str:
        return f"{100 * flops_per_second / self.flops:.1f}% ({flop_rate(flops_per_second)} of {flop_rate(self.flops)})"


def flop_rate(x: float) -> str:
    return f"{x / 1e12:,.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:,.2f} GFLOP/s"


def peak_rows(peak: Peak, where: str) -> list[Row]:
    fp32 = (f"matmul peak, fp32, {peak.size}x{peak.size} ({where})", flop_rate(peak.fp32))
    if peak.name == "fp32":
        return [(*fp32, "the reference")]
    return [(*fp32, f"{100 * peak.fp32 / peak.flops:.0f}% of the {peak.name} peak"),
            (f"matmul peak, {peak.name}, {peak.size}x{peak.size} ({where})", flop_rate(peak.flops), "the reference")]


def play_rows(make_world, name: str, bundle: Path | None, peak: Peak, s: Settings, where: str) -> tuple[list[Row], World]:
    """play.py's loop at batch 1 -> (rows, an eager world for the next measurements)."""
    variant, rate, step, world, tried = best_play_rate(make_world, bundle, s.play_frames, log=log)
    eager = world if variant == "eager" else make_world()
    flops = step_flops(eager)  # counted on the eager world: the same ops, without the compiler in the way
    note = "" if len(tried) == 1 else f"; {variant} (tried: " + ", ".join(f"{k} {v}" for k, v in tried.items()) + ")"
    row = (f"play.py loop (World.step + draw), {describe(world, name)}, batch 1 ({where})",
           f"{rate:,.1f} frames/s (World.step {1000 * step:.1f} ms){note}", peak.ratio(rate * flops))
    return [row], eager


def kv_rows(world: World, name: str, peak: Peak, s: Settings, where: str, context: int = 16) -> list[Row]:
    """World.step with and without the KV cache at a full `context`-frame window, batch 1."""
    rates = {cached: world_step_rate(world, 1, context, s.kv_steps, cached) for cached in (True, False)}
    flops = {cached: step_flops(world, context, cached) for cached in (True, False)}
    label = f"World.step KV-cached vs uncached, {context}-frame context, batch 1, {name} ({where})"
    value = f"{rates[True] / rates[False]:.1f}x (cached {rates[True]:,.1f}, uncached {rates[False]:,.2f} frames/s)"
    ratio = f"cached {peak.ratio(rates[True] * flops[True])}; uncached {peak.ratio(rates[False] * flops[False])}"
    return [(label, value, ratio)]


def old_path_rows(bundle: Path, s: Settings, threads: int, device: torch.device) -> list[Row]:
    """The bundle's World.step in this tree (and in bf16 where the CPU multiplies it natively: the
    player's default there) and in the old path's (bench_step.compare_steps), one run."""
    try:
        git("cat-file", "-e", f"{OLD_PATH}^{{commit}}")
    except subprocess.CalledProcessError:
        log(f"bench: no commit {OLD_PATH} in this checkout (a shallow clone?): the old path's row is left out")
        return []
    variants = ["bf16"] if device.type == "cpu" and cpu_has_bf16() else []
    rows = compare_steps(bundle, [OLD_PATH], variants, frames=s.step_frames, repeats=s.step_repeats, threads=threads,
                         device=device.type, log=log)
    return [(label, value, "") for label, value in rows]


def env_rows(world: World, name: str, peak: Peak, s: Settings, where: str) -> list[Row]:
    """Vector-env sub-env steps/s for each num_envs (batch-b FLOPs are b times batch 1's)."""
    flops = step_flops(world)
    prompts = list(np.random.default_rng(0).integers(0, 256, (8, *world.frame_shape), dtype=np.uint8))
    rows = []
    for n in s.num_envs:
        rate = vector_env_rates(world, n, prompts, s.env_steps)["WorldVectorEnv"]
        rows.append((f"vector env, num_envs {n}, {name} ({where})", f"{rate:,.1f} env steps/s", peak.ratio(rate * flops)))
    return rows


def train_rows(scale: str, device: torch.device, peak: Peak, s: Settings, where: str) -> list[Row]:
    """Training samples/s and model FLOPs utilisation of both stages at configs/<scale>."""
    rows = []
    for make in (tokenizer_training, world_training):
        # FLOPs of forward + backward (the optimizer holds no matmuls) are linear in the batch: counted
        # at batch 1, since counting forces the math attention kernel, whose score matrices for a
        # whole training batch need more memory than the real step
        flops = count_flops(make(scale, device, batch_size=1).step)
        bench: TrainBench = make(scale, device)
        flops *= bench.batch_size
        rate = training_rate(bench, device, s.train_steps)
        steps_per_s = rate / bench.batch_size
        rows.append((f"{bench.name} ({bench.detail}, {where})",
                     f"{rate:,.1f} samples/s, {rate * bench.tokens_per_sample:,.0f} tokens/s",
                     f"MFU {peak.ratio(steps_per_s * flops)}, {flops / 1e9:,.1f} GFLOP/step"))
    return rows


def data_rows(s: Settings) -> list[Row]:
    """Shard write (gzip-4) and random 16-frame clip reads, against plain file I/O of the same bytes."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        footage = record_footage(tmp, s.episodes, s.episode_steps)
        frames = np.concatenate([read_frames(p) for p in find_shards(footage)])
        write_mb, ratio = shard_write_rate(tmp / "write.h5", frames)
        raw_write, raw_read = raw_file_rates(tmp / "raw.bin", frames)
        clips = clip_read_rate(find_shards(footage), 16, s.clips)
        clip_mb = clips * 16 * frames[0].nbytes / 1e6
    what = f"{len(frames)} {footage.name} frames"
    return [
        (f"shard write (gzip-4), {what}", f"{write_mb:,.0f} MB/s raw, {ratio:.1f}x smaller",
         f"{100 * write_mb / raw_write:.0f}% of plain file write ({raw_write:,.0f} MB/s)"),
        (f"random 16-frame clip reads, 1 process, {what}", f"{clips:,.0f} clips/s ({clip_mb:,.0f} MB/s)",
         f"{100 * clip_mb / raw_read:.1f}% of plain file read ({raw_read:,.0f} MB/s)"),
    ]


def read_frames(shard: Path) -> np.ndarray:
    return np.concatenate([ep.frames for ep in read_episodes(None, shards=[shard])])


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def table(rows: list[Row]) -> str:
    lines = ["| suite row | value | ratio to peak |", "| --- | --- | --- |"]
    return "\n".join(lines + [f"| {label} | {value} | {ratio} |" for label, value, ratio in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", help="world bundle (default: worlds/coinrun, else configs/<scale> random weights)")
    parser.add_argument("--random-world", action="store_true", help="configs/<scale>/ with random weights, "
                        "even where worlds/coinrun exists")
    parser.add_argument("--scale", help="configs/<scale>/ for training (and a random-weight world): "
                        "default small on a CPU, coinrun on a GPU")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads (default: all cores)")
    parser.add_argument("--num-envs", help="vector-env sizes, e.g. 1,8,64 (default 1,4,16,64; --quick: 1,4)")
    parser.add_argument("--quick", action="store_true", help="shorter, fewer measurements")
    parser.add_argument("--no-append", action="store_true", help=f"print only; do not add the rows to {RESULTS.name}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    scale = args.scale or ("coinrun" if device.type == "cuda" else "small")
    s = QUICK if args.quick else Settings()
    if args.num_envs:
        s = replace(s, num_envs=tuple(int(n) for n in args.num_envs.split(",")))
    where = device.type if device.type != "cpu" else f"cpu, {torch.get_num_threads()} thread(s)"

    start = time.perf_counter()
    log(f"bench: matmul peak on {where}")
    peak = Peak(device, s.peak_size)
    rows = peak_rows(peak, where)
    failed: list[Row] = []

    def suite(what: str, measure: Callable[[], list[Row]]) -> list[Row]:
        """The rows of one suite; a suite that fails costs its own rows only, and says why."""
        log(f"bench: {what}")
        try:
            return measure()
        except Exception as error:  # noqa: BLE001 (reported, and the run exits 1)
            log(traceback.format_exc())
            failed.append((what, f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:160]}", ""))
            return [failed[-1]]

    # training first: on a GPU the compiled worlds below keep memory that a full training batch needs
    rows += suite(f"training, configs/{scale}", lambda: train_rows(scale, device, peak, s, where))
    if device.type == "cuda":
        torch.cuda.empty_cache()
    make_world, name, bundle = world_factory(args.world, scale, device, args.random_world)
    worlds: list[World] = []  # the eager world the play suite leaves for the next two

    def play() -> list[Row]:
        play, world = play_rows(make_world, name, bundle, peak, s, where)
        worlds.append(world)
        return play

    with torch.no_grad():
        rows += suite(f"play.py loop on {name}", play)
        if worlds:
            world = worlds.pop()
            rows += suite("KV cache at a 16-frame context", lambda: kv_rows(world, name, peak, s, where))
            rows += suite(f"vector env, num_envs {', '.join(map(str, s.num_envs))}",
                          lambda: env_rows(world, name, peak, s, where))
            del world
    if bundle is not None:
        rows += suite(f"World.step against the old path {OLD_PATH}",
                      lambda: old_path_rows(bundle, s, torch.get_num_threads(), device))
    rows += suite("shard write and clip reads", lambda: data_rows(s))
    log(f"bench: done in {time.perf_counter() - start:.0f} s")

    print(table(rows))
    if not args.no_append:
        command = "make bench" if os.environ.get("MAKELEVEL") and argv is None and len(sys.argv) == 1 \
            else command_line("run_all.py")
        measured = [row for row in rows if row not in failed]
        append_results([(label, f"{value}; {ratio}" if ratio else value) for label, value, ratio in measured], command)
        print(f"appended {len(measured)} rows to {RESULTS}")
    if failed:
        sys.exit(f"{len(failed)} suite(s) failed: " + ", ".join(what for what, _, _ in failed))


if __name__ == "__main__":
    main()
