"""`genie record`: run a footage source (synthetic game or CoinRun) in one or more worker processes.

Each worker records its share of the episodes with its own seed into its own shard files
`OUT/<env>-s<seed>[-w<k>]-NNNNN.h5`, so workers never share a file and a rerun with the same
seed refuses to overwrite earlier shards.

While it runs, `OUT/<env>-s<seed>.recording.json` holds the recording's settings; it is removed
when the recording is complete. A recording that was stopped (Ctrl-C, kill -9, a crash) is
finished by running the same command again: its complete shards are kept, the temp files of the
shards in progress are removed, and the recorders (deterministic under the seed) run again from
the start, writing only the episodes that are not in a kept shard yet.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from data_pipeline.shards import RecordStats, check_free, remove_stale_temp_files, stop_between_episodes
from genie.errors import GenieError
from genie.files import make_out_dir, write_text_atomic


def _record_fn(env: str):
    if env == "synthetic":
        from data_pipeline.synthetic import record_synthetic

        return record_synthetic
    if env == "coinrun":
        from data_pipeline.coinrun import check_procgen, record_coinrun

        check_procgen()
        return record_coinrun
    raise ValueError(f"unknown env {env!r}")


def _worker(env: str, kwargs: dict) -> RecordStats:
    with stop_between_episodes():  # each worker process stops cleanly on Ctrl-C too
        return _record_fn(env)(**kwargs)


def record(
    env: str,
    out: str | Path,
    episodes: int,
    max_steps: int,
    seed: int = 0,
    workers: int = 1,
    log=print,
    **env_kwargs,
) -> RecordStats:
    """Record `episodes` episodes of at most `max_steps` frames from `env` ("synthetic" or
    "coinrun") into shards under `out`, split over `workers` processes. `env_kwargs` go to
    record_synthetic / record_coinrun (size, sticky_mean, frames_per_shard, start_level, ...)."""
    out = Path(out)
    prefix = f"{env}-s{seed}"
    workers = max(1, min(workers, episodes))
    settings = json.loads(json.dumps(dict(env=env, episodes=episodes, max_steps=max_steps, seed=seed,
                                          workers=workers, **env_kwargs), default=lambda v: np.asarray(v).tolist()))
    resume = unfinished(out, prefix, settings)
    if not resume:
        check_free(out, prefix)
    _record_fn(env)  # fail fast (e.g. procgen missing) before starting workers
    make_out_dir(out)
    remove_stale_temp_files(out, f"{prefix}-", log, "a recording with the same --seed is running into this folder")
    if resume and log is not None:
        log(f"finishing the interrupted recording {prefix} in {out} (its complete shards are kept)")
    recording = out / f"{prefix}{RECORDING}"
    write_text_atomic(recording, json.dumps(settings, indent=2) + "\n")
    shares = np.diff(np.linspace(0, episodes, workers + 1).round().astype(int))
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(workers)]
    jobs = [
        dict(out=out, prefix=prefix if workers == 1 else f"{prefix}-w{k}", episodes=int(n), max_steps=max_steps,
             seed=seeds[k], log=log, resume=resume, **env_kwargs)
        for k, n in enumerate(shares)
    ]  # fmt: skip
    start, stats = time.perf_counter(), RecordStats()
    if workers == 1:
        stats.add(_worker(env, jobs[0]))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for result in pool.map(_worker, [env] * workers, jobs):
                stats.add(result)
    stats.seconds = time.perf_counter() - start
    stats.shards.sort()
    recording.unlink()
    return stats


RECORDING = ".recording.json"  # OUT/<prefix>.recording.json: the settings of a recording not yet complete


def unfinished(out: Path, prefix: str, settings: dict) -> bool:
    """Whether `out` holds an unfinished recording `prefix` with these `settings` (so running it
    again finishes it). GenieError if it holds one with other settings."""
    path = out / f"{prefix}{RECORDING}"
    if not path.is_file():
        return False
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        before = {}
    if before == settings:
        return True
    changed = next((k for k in {**settings, **before} if before.get(k) != settings.get(k)), "?")
    raise GenieError(f"{out} holds the unfinished recording {prefix} made with other settings ({changed} was "
                     f"{before.get(changed)!r}, now {settings.get(changed)!r}); rerun that command to finish it "
                     f"(its settings: {path}), or record into another --out or with another --seed")
