"""Data pipeline speed: recorders, shard writes, random clip reads.

python benchmarks/bench_data.py                      # print a markdown table
python benchmarks/bench_data.py --append-results     # and append dated rows to benchmarks/RESULTS.md
python benchmarks/bench_data.py --compare-compression  # also gzip-4 vs lzf size and read speed
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_pipeline.dataset import ClipDataset  # noqa: E402
from data_pipeline.record import record  # noqa: E402
from data_pipeline.shards import ShardWriter, find_shards, read_episodes  # noqa: E402
from data_pipeline.synthetic import SyntheticGame  # noqa: E402
from genie.errors import GenieError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report, timed  # noqa: E402


def bench_recorders(tmp: Path, rows: list) -> None:
    game = SyntheticGame(64, seed=0)
    acts = np.random.default_rng(0).integers(0, 8, (200, 64))
    sec, _ = timed(lambda: [game.step(a) for a in acts])
    rows.append(("synthetic game step, 64 games (no writing)", f"{acts.size / sec:,.0f} frames/s"))
    stats = record("synthetic", tmp / "synth", episodes=64, max_steps=100, log=None)
    rows.append(
        (
            "record synthetic, 64 eps x 100 frames, incl. shard writing",
            f"{stats.frames_per_second:,.0f} frames/s",
        )
    )
    try:
        from data_pipeline.coinrun import make_coinrun_env
    except ImportError:
        return
    try:
        env = make_coinrun_env(16, seed=0)
    except Exception as err:  # procgen missing: report and go on
        rows.append(("coinrun", f"skipped ({err})"))
        return
    acts = np.random.default_rng(0).integers(0, 15, (300, 16))
    sec, _ = timed(lambda: [(env.act(a), env.observe()) for a in acts])
    rows.append(("coinrun env step, 16 envs (no writing)", f"{acts.size / sec:,.0f} frames/s"))
    stats = record("coinrun", tmp / "coinrun", episodes=32, max_steps=300, log=None)
    rows.append(
        (
            "record coinrun, 32 eps <= 300 frames, incl. env start + writing",
            f"{stats.frames_per_second:,.0f} frames/s",
        )
    )


def record_footage(out: Path, episodes: int, max_steps: int) -> Path:
    """Record CoinRun footage into out/coinrun (the synthetic game into out/synth where procgen is
    missing) -> the folder of shards."""
    try:
        record("coinrun", out / "coinrun", episodes=episodes, max_steps=max_steps, log=None)
        return out / "coinrun"
    except GenieError:
        record("synthetic", out / "synth", episodes=episodes, max_steps=max_steps, log=None)
        return out / "synth"


def write_shard(path: Path, frames: np.ndarray, compression: str, level: int | None) -> None:
    with ShardWriter(path, fps=15, source="bench", compression=compression, compression_level=level) as w:
        for episode in np.array_split(frames, 20):
            w.add_episode(episode)


def shard_write_rate(path: Path, frames: np.ndarray, compression: str = "gzip", level: int | None = 4) -> tuple[float, float]:
    """Write `frames` uint8 [N,H,W,3] as a shard of 20 episodes -> (raw MB/s, compression ratio)."""
    sec, _ = timed(write_shard, path, frames, compression, level)
    return frames.nbytes / sec / 1e6, frames.nbytes / path.stat().st_size


def bench_writes(tmp: Path, rows: list, frames: np.ndarray) -> None:
    for comp, level in (("gzip", 4), ("lzf", None)):
        rate, ratio = shard_write_rate(tmp / f"write-{comp}.h5", frames, comp, level)
        rows.append((f"shard write ({comp}), {len(frames)} coinrun-like frames", f"{rate:,.0f} MB/s raw, {ratio:.1f}x smaller"))


def clip_read_rate(shards: list[Path], clip_len: int = 16, clips: int = 400) -> float:
    """Random `clip_len`-frame clips/s from ClipDataset in this process (the first read excluded)."""
    ds = ClipDataset(shards, clip_len)
    idx = np.random.default_rng(0).integers(0, len(ds), clips)
    ds[0]
    sec, _ = timed(lambda: [ds[int(i)] for i in idx])
    return clips / sec


def loader_read_rate(shards: list[Path], clip_len: int = 16, batches: int = 25, workers: int = 2) -> float:
    """Random clips/s through a DataLoader (batch 32, `workers` processes; their start-up excluded)."""
    import torch
    from torch.utils.data import DataLoader

    ds = ClipDataset(shards, clip_len)
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    next(it)
    sec, n = timed(lambda: sum(len(next(it)["frames"]) for _ in range(min(batches, len(loader) - 1))))
    return n / sec


def bench_reads(shards: list[Path], rows: list, label: str, clip_len: int = 16) -> None:
    rows.append((f"random {clip_len}-frame clip reads, 1 process ({label})",
                 f"{clip_read_rate(shards, clip_len):,.0f} clips/s"))
    rows.append((f"random {clip_len}-frame clip reads, DataLoader 2 workers ({label})",
                 f"{loader_read_rate(shards, clip_len):,.0f} clips/s"))


def raw_file_rates(path: Path, frames: np.ndarray, repeats: int = 3) -> tuple[float, float]:
    """The machine's plain file I/O for the same bytes, uncompressed, best of `repeats`: (write MB/s,
    read MB/s). The write is flushed to the OS (not fsynced, like a shard write); the read comes
    back through the page cache, as the clip reads of a freshly written shard do."""
    write = min(timed(frames.tofile, path)[0] for _ in range(repeats))
    read = min(timed(np.fromfile, path, np.uint8)[0] for _ in range(repeats))
    path.unlink()
    return frames.nbytes / write / 1e6, frames.nbytes / read / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--append-results", action="store_true", help="append rows to benchmarks/RESULTS.md")
    parser.add_argument("--compare-compression", action="store_true", help="also time reads of lzf shards")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bench_recorders(tmp, rows)
        real = tmp / "coinrun" if (tmp / "coinrun").exists() else tmp / "synth"
        frames = np.concatenate([ep.frames for ep in read_episodes(real, max_frames=4000)])[:4000]
        bench_writes(tmp, rows, frames)
        bench_reads(find_shards(real), rows, f"{real.name}, gzip-4")
        if args.compare_compression:
            bench_reads([tmp / "write-lzf.h5"], rows, f"{real.name}, lzf")
    report("bench_data.py", rows, args.append_results)

if __name__ == "__main__":
    main()
