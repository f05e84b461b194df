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

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_pipeline.dataset import ClipDataset  # noqa: E402
from data_pipeline.record import record  # noqa: E402
from data_pipeline.shards import ShardWriter, find_shards  # noqa: E402
from data_pipeline.synthetic import SyntheticGame  # noqa: E402

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


def write_shard(path: Path, frames: np.ndarray, compression: str, level: int | None) -> None:
    with ShardWriter(path, fps=15, source="bench", compression=compression, compression_level=level) as w:
        for episode in np.array_split(frames, 20):
            w.add_episode(episode)


def bench_writes(tmp: Path, rows: list, frames: np.ndarray) -> None:
    for comp, level in (("gzip", 4), ("lzf", None)):
        path = tmp / f"write-{comp}.h5"

        sec, _ = timed(write_shard, path, frames, comp, level)
        ratio = frames.nbytes / path.stat().st_size
        rows.append(
            (
                f"shard write ({comp}), {len(frames)} coinrun-like frames",
                f"{frames.nbytes / sec / 1e6:,.0f} MB/s raw, {ratio:.1f}x smaller",
            )
        )


def bench_reads(shards: list[Path], rows: list, label: str, clip_len: int = 16) -> None:
    import torch
    from torch.utils.data import DataLoader

    ds = ClipDataset(shards, clip_len)
    idx = np.random.default_rng(0).integers(0, len(ds), 400)
    ds[0]
    sec, _ = timed(lambda: [ds[int(i)] for i in idx])
    rows.append(
        (f"random {clip_len}-frame clip reads, 1 process ({label})", f"{len(idx) / sec:,.0f} clips/s")
    )
    loader = DataLoader(
        ds, batch_size=32, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0)
    )
    it = iter(loader)
    next(it)  # worker start-up excluded
    sec, n = timed(lambda: sum(len(next(it)["frames"]) for _ in range(min(25, len(loader) - 1))))
    rows.append(
        (f"random {clip_len}-frame clip reads, DataLoader 2 workers ({label})", f"{n / sec:,.0f} clips/s")
    )


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
        frames = np.concatenate([h5py.File(p)["frames"][:] for p in find_shards(real)])[:4000]
        bench_writes(tmp, rows, frames)
        bench_reads(find_shards(real), rows, f"{real.name}, gzip-4")
        if args.compare_compression:
            bench_reads([tmp / "write-lzf.h5"], rows, f"{real.name}, lzf")
    report("bench_data.py", rows, args.append_results)

if __name__ == "__main__":
    main()
