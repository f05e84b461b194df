"""The dataset shard format: one HDF5 file of frames, episode ranges and (optionally) true actions.

A shard `*.h5` holds
  frames    uint8 [N, H, W, 3] RGB, chunked along time, gzip-compressed
  episodes  int64 [E, 2]       (start, end) row ranges into `frames`, end exclusive
  actions   int16 [N]          optional true actions, -1 where unknown (used by evaluation only);
                               actions[t] is the action taken between frame t and frame t+1
  attrs     fps (float), source (str), version (int, = SHARD_VERSION), action_names (json, optional)

Writers write to `<path>.tmp-<pid>` and rename atomically on success, so a crash never leaves a
half shard that looks whole, and never replaces an existing shard. A writer killed outright leaves
its temp file behind: temp_files finds them (genie data inspect lists them, and a rerun of the
same `genie record` removes its own). verify_shard reads every chunk, to find damage mid-file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from genie.errors import GenieError
from genie.files import make_out_dir

SHARD_VERSION = 1
# gzip level 4 vs lzf on 64x64 CoinRun footage in 16-frame chunks: 8.4x vs 3.1x smaller than raw
# (synthetic game: 27x vs 2x), random 16-frame clip reads as fast or faster, writes ~110 vs ~200 MB/s.
# benchmarks/bench_data.py --compare-compression measures both.
COMPRESSION, COMPRESSION_LEVEL = "gzip", 4
CHUNK_BYTES = 1 << 20  # frames per chunk: up to 16, at most ~1 MiB uncompressed (h5py's chunk cache)


def _chunk_frames(frame_shape: tuple[int, ...]) -> int:
    return int(np.clip(CHUNK_BYTES // int(np.prod(frame_shape)), 1, 16))


class ShardWriter:
    """Stream episodes into one shard file; use as a context manager.

        with ShardWriter("data/x.h5", fps=15, source="synthetic") as w:
            w.add_episode(frames)            # uint8 [T, H, W, 3] RGB
            w.add_episode(frames, actions)   # actions int [T], -1 where unknown

    Long episodes can be streamed with `append(frames, actions)` ... `end_episode()`.
    On a clean exit the temp file is renamed to `path`; on an exception it is deleted.
    A writer that received no frames writes no file. Refuses to replace an existing `path`.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        source: str,
        action_names: list[str] | None = None,
        compression: str | None = COMPRESSION,
        compression_level: int | None = COMPRESSION_LEVEL,
    ):
        self.path = Path(path)
        if self.path.exists():
            raise GenieError(f"{self.path} already exists; pass another --out (shards are never overwritten)")
        make_out_dir(self.path.parent)
        self.tmp_path = self.path.with_name(f"{self.path.name}{TEMP_MARK}{os.getpid()}")
        self.fps, self.source, self.action_names = float(fps), str(source), action_names
        self.compression, self.compression_level = compression, compression_level
        self.num_frames = 0
        self.episodes: list[tuple[int, int]] = []
        self._episode_start = 0
        try:
            self._file = h5py.File(self.tmp_path, "w")
        except OSError as err:
            raise GenieError(f"cannot write shard {self.path} ({err}); pass a writable --out") from None
        self._frames: h5py.Dataset | None = None
        self._actions: h5py.Dataset | None = None
        self.closed = False

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_episode(self, frames: np.ndarray, actions: np.ndarray | None = None) -> None:
        """Append one whole episode: frames uint8 [T, H, W, 3], actions int [T] or None."""
        self.append(frames, actions)
        self.end_episode()

    def append(self, frames: np.ndarray, actions: np.ndarray | None = None) -> None:
        """Append frames (uint8 [T, H, W, 3]) to the episode in progress; actions int [T] or None."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if actions is not None and np.shape(actions) != frames.shape[:1]:
            raise ValueError(f"actions must have shape {frames.shape[:1]}, got {np.shape(actions)}")
        if self._frames is None:
            shape = frames.shape[1:]
            self._frames = self._file.create_dataset(
                "frames",
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype=np.uint8,
                chunks=(_chunk_frames(shape), *shape),
                compression=self.compression,
                compression_opts=self.compression_level if self.compression == "gzip" else None,
            )
        elif frames.shape[1:] != self._frames.shape[1:]:
            raise ValueError(
                f"frame shape {frames.shape[1:]} differs from {self._frames.shape[1:]} in this shard"
            )
        n0, n1 = self.num_frames, self.num_frames + len(frames)
        self._frames.resize(n1, axis=0)
        self._frames[n0:n1] = frames
        if actions is not None and self._actions is None:
            self._actions = self._file.create_dataset(
                "actions", shape=(n0,), maxshape=(None,), dtype=np.int16, chunks=(4096,), fillvalue=-1
            )
            self._actions[:] = -1  # rows written before the first known action
        if self._actions is not None:
            self._actions.resize(n1, axis=0)
            self._actions[n0:n1] = -1 if actions is None else np.asarray(actions, dtype=np.int16)
        self.num_frames = n1

    def end_episode(self) -> None:
        """Close the episode in progress (a no-op if it has no frames)."""
        if self.num_frames > self._episode_start:
            self.episodes.append((self._episode_start, self.num_frames))
        self._episode_start = self.num_frames

    def close(self) -> Path | None:
        """Finish the shard and rename it into place; returns its path (None if nothing was written)."""
        if self.closed:
            return self.path if self.path.exists() else None
        self.end_episode()
        if not self.episodes:
            self.abort()
            return None
        try:
            f = self._file
            f.create_dataset("episodes", data=np.asarray(self.episodes, dtype=np.int64).reshape(-1, 2))
            f.attrs.update({"fps": self.fps, "source": self.source, "version": SHARD_VERSION})
            if self.action_names is not None:
                f.attrs["action_names"] = json.dumps(list(self.action_names))
            f.close()
            if self.path.exists():
                raise GenieError(f"{self.path} appeared while writing it; pass another --out")
            os.replace(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self.closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written: close and delete the temp file (the target path is untouched)."""
        self.closed = True
        try:
            self._file.close()
        finally:
            self.tmp_path.unlink(missing_ok=True)


class ShardSetWriter:
    """Write episodes into `out_dir/<prefix>-00000.h5`, `-00001.h5`, ... rolling over to a new shard
    once the current one holds >= frames_per_shard frames; an episode is never split across shards.

    Completed shards are final as soon as they roll over; on an exception only the shard in
    progress is dropped. `on_shard(path, num_episodes, num_frames)` is called after each shard.
    Refuses to start if `<prefix>-*.h5` files already exist in out_dir, unless `resume`: then the
    shards there (numbered from 00000, as an interrupted set leaves them) are kept, and as many
    episodes as they hold are skipped: a deterministic recorder fed in again from the start
    finishes the set as if it had never stopped. num_episodes / num_frames count new ones only.
    """

    def __init__(
        self,
        out_dir: str | Path,
        prefix: str,
        fps: float,
        source: str,
        action_names: list[str] | None = None,
        frames_per_shard: int = 10_000,
        on_shard=None,
        resume: bool = False,
    ):
        self.out_dir, self.prefix = Path(out_dir), prefix
        self.paths: list[Path] = complete_shards(self.out_dir, prefix) if resume else []
        if not resume:
            check_free(self.out_dir, prefix)
        self.kwargs = dict(fps=fps, source=source, action_names=action_names)
        self.frames_per_shard, self.on_shard = int(frames_per_shard), on_shard
        self.num_frames = self.num_episodes = 0
        # lengths of the kept episodes, in order: those episodes are skipped (and checked) when fed again
        self._kept = [int(n) for p in self.paths for n in read_shard_info(p).episode_lengths][::-1]
        self.kept_episodes = len(self._kept)
        self._writer: ShardWriter | None = None

    def __enter__(self) -> ShardSetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._writer is not None:
            self._writer.abort()

    def add_episode(self, frames: np.ndarray, actions: np.ndarray | None = None) -> None:
        """Append one episode: frames uint8 [T, H, W, 3], actions int [T] or None. Raises
        KeyboardInterrupt here if Ctrl-C was pressed inside stop_between_episodes()."""
        if _CTRL_C.is_set():
            raise KeyboardInterrupt
        if self._kept:  # resuming: this episode is already in a kept shard
            if len(frames) != self._kept.pop():
                raise GenieError(f"{self.out_dir}: the episodes recorded now differ from those in the kept shards "
                                 f"{self.prefix}-*.h5 (other settings?); record into another --out")
            return
        if self._writer is None:
            path = self.out_dir / f"{self.prefix}-{len(self.paths):05d}.h5"
            self._writer = ShardWriter(path, **self.kwargs)
        self._writer.add_episode(frames, actions)
        self.num_frames += len(frames)
        self.num_episodes += 1
        if self._writer.num_frames >= self.frames_per_shard:
            self._finish_shard()

    def _finish_shard(self) -> None:
        w, self._writer = self._writer, None
        if w is not None and (path := w.close()) is not None:
            self.paths.append(path)
            if self.on_shard is not None:
                self.on_shard(path, len(w.episodes), w.num_frames)

    def close(self) -> list[Path]:
        """Finish the shard in progress; returns all shard paths written."""
        self._finish_shard()
        return self.paths


TEMP_MARK = ".tmp-"  # a shard in progress is `<name>.h5.tmp-<pid>`
_CTRL_C = threading.Event()


@contextlib.contextmanager
def stop_between_episodes():
    """Inside, Ctrl-C (SIGINT) stops a recording at its next ShardSetWriter.add_episode, with
    KeyboardInterrupt there: between two episodes, not inside HDF5 (where Python may drop the
    interrupt, or leave a temp file behind). A second Ctrl-C stops at once. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        if _CTRL_C.is_set():
            raise KeyboardInterrupt
        _CTRL_C.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _CTRL_C.clear()


def complete_shards(out_dir: Path, prefix: str) -> list[Path]:
    """The shards `<prefix>-00000.h5`, `-00001.h5`, ... of one ShardSetWriter in `out_dir`, in order;
    GenieError if they are not numbered from 00000 without a gap (one was moved or deleted)."""
    found = sorted(p for p in Path(out_dir).glob(f"{prefix}-*.h5") if re.fullmatch(r"\d{5}", p.stem[len(prefix) + 1 :]))
    for i, path in enumerate(found):
        if path.name != f"{prefix}-{i:05d}.h5":
            raise GenieError(f"{out_dir}: shard {prefix}-{i:05d}.h5 is missing before {path.name}, so this recording "
                             "cannot be finished; record into another --out")
    return found


def temp_files(folder: str | Path, prefix: str = "") -> list[tuple[Path, int | None, bool]]:
    """Shard temp files (`*.h5.tmp-<pid>`) under `folder` (recursively), their names starting with
    `prefix` -> [(path, pid, whether that process still runs)], sorted. One whose process is gone
    is stale: left by a writer that was killed (kill -9, a crash, a power cut)."""
    found = []
    for path in sorted(Path(folder).rglob(f"{prefix}*.h5{TEMP_MARK}*")):
        tail = path.name.rsplit(TEMP_MARK, 1)[-1]
        pid = int(tail) if tail.isdigit() else None
        found.append((path, pid, pid is not None and _running(pid)))
    return found


def remove_stale_temp_files(folder: Path, prefix: str, log, running: str, shard: str | None = None) -> None:
    """Delete the shard temp files in `folder` whose names start with `prefix` (or, with `shard`,
    those of that one shard name) and whose writer is gone (a killed run's), saying so through
    `log`; GenieError if one is still being written (`running` says by what)."""
    for path, pid, alive in temp_files(folder, prefix):
        if path.parent != Path(folder) or (shard is not None and path.name.rsplit(TEMP_MARK, 1)[0] != shard):
            continue
        if alive:
            raise GenieError(f"{path} is being written by process {pid}: {running}; wait for it, or stop it "
                             "and run this again")
        path.unlink()
        if log is not None:
            log(f"  removed {path.name}, the unfinished shard of an interrupted run")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def check_free(out_dir: Path, prefix: str) -> None:
    """GenieError if `out_dir` already holds shards named `<prefix>-*.h5` (never clobber data)."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise GenieError(f"--out {out_dir} is a file; pass a folder for the shards")
    taken = sorted(Path(out_dir).glob(f"{prefix}-*.h5"))
    if taken:
        raise GenieError(
            f"{out_dir} already has shards named {prefix}-*.h5 (e.g. {taken[0].name}); "
            "pass another --out (or another --seed) instead of overwriting them"
        )


@dataclass
class ShardInfo:
    """What `read_shard_info` found in a valid shard (no frames are read)."""

    path: Path
    num_frames: int
    episodes: np.ndarray  # int64 [E, 2] (start, end) rows, end exclusive
    frame_shape: tuple[int, int, int]  # (H, W, 3)
    fps: float
    source: str
    has_actions: bool
    version: int
    nbytes: int  # size on disk
    action_names: list[str] | None = None

    @property
    def episode_lengths(self) -> np.ndarray:
        return self.episodes[:, 1] - self.episodes[:, 0]


def read_shard_info(path: str | Path) -> ShardInfo:
    """Open and validate a shard; GenieError naming the file if it is missing, not HDF5, truncated,
    has missing or malformed datasets, bad episode ranges, or was written by a newer version."""
    path = Path(path)
    fix = "re-record or re-ingest it (or delete it)"
    if not path.is_file():
        raise GenieError(f"shard {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        detail = re.search(
            r"\(([^,)]*)", str(err)
        )  # e.g. "(file signature not found)", "(truncated file: ..."
        reason = detail.group(1) if detail else str(err)
        raise GenieError(
            f"{path} is not a readable HDF5 shard ({reason}: corrupt or truncated); {fix}"
        ) from None
    with f:
        try:
            return _validate(path, f, fix)
        except (KeyError, OSError, TypeError, ValueError) as err:
            raise GenieError(f"{path} is a damaged shard ({err}); {fix}") from None


def _validate(path: Path, f: h5py.File, fix: str) -> ShardInfo:
    def bad(problem: str) -> GenieError:
        return GenieError(f"{path} is not a valid genie shard: {problem}; {fix}")

    version = f.attrs.get("version")
    if version is None:
        raise bad("no 'version' attribute")
    if int(version) > SHARD_VERSION:
        raise GenieError(
            f"{path} is shard version {int(version)}, newer than this genie reads ({SHARD_VERSION}); upgrade genie"
        )
    for name in ("frames", "episodes"):
        if not isinstance(f.get(name), h5py.Dataset):
            raise bad(f"missing dataset '{name}'")
    frames, episodes = f["frames"], f["episodes"]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise bad(f"'frames' must be uint8 [N, H, W, 3], found {frames.dtype} {frames.shape}")
    if episodes.dtype.kind not in "iu" or episodes.ndim != 2 or episodes.shape[1] != 2:
        raise bad(f"'episodes' must be int [E, 2], found {episodes.dtype} {episodes.shape}")
    n, eps = frames.shape[0], episodes[()].astype(np.int64)
    if len(eps) and ((eps[:, 0] < 0).any() or (eps[:, 1] <= eps[:, 0]).any() or (eps[:, 1] > n).any()):
        raise bad(f"episode ranges outside 0..{n} or empty")
    has_actions = "actions" in f
    if has_actions and (f["actions"].dtype.kind not in "iu" or f["actions"].shape != (n,)):
        raise bad(f"'actions' must be int [{n}], found {f['actions'].dtype} {f['actions'].shape}")
    fps = float(f.attrs.get("fps", 0))
    if not fps > 0:
        raise bad("missing or non-positive 'fps' attribute")
    names = f.attrs.get("action_names")
    return ShardInfo(
        path=path,
        num_frames=int(n),
        episodes=eps,
        frame_shape=tuple(int(s) for s in frames.shape[1:]),
        fps=fps,
        source=str(f.attrs.get("source", "")),
        has_actions=has_actions,
        version=int(version),
        nbytes=path.stat().st_size,
        action_names=json.loads(names) if names is not None else None,
    )


def verify_shard(path: str | Path) -> ShardInfo:
    """read_shard_info, then read every chunk of every dataset (decompressing it, so a gzip chunk
    damaged mid-file fails its checksum). GenieError naming the file, the dataset and the rows
    that cannot be read. Reads the whole shard: as slow as reading all its frames once."""
    info = read_shard_info(path)
    with h5py.File(path, "r") as f:
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            where = "all"
            try:
                for sel in ds.iter_chunks() if ds.chunks else [()]:
                    where = f"rows {sel[0].start}-{sel[0].stop - 1}" if sel else "all"
                    ds[sel]
            except OSError as err:
                reason = str(err).split("(", 1)[-1].rstrip(")") if "(" in str(err) else str(err)
                raise GenieError(f"{path} is damaged: dataset '{name}' ({where} of {ds.shape[0] if ds.shape else 1}) "
                                 f"cannot be read ({reason}); re-record or re-ingest it (or delete it)") from None
    return info


def find_shards(data: str | Path) -> list[Path]:
    """`data` is one .h5 shard or a folder searched recursively for *.h5; returns sorted paths."""
    data = Path(data)
    hint = "record or ingest footage first: genie record ... / genie ingest ..."
    if data.is_file():
        if data.suffix != ".h5":
            raise GenieError(f"{data} is not a shard (*.h5); pass a shard or a folder of shards")
        return [data]
    if not data.is_dir():
        raise GenieError(f"{data} does not exist; {hint}")
    shards = sorted(p for p in data.rglob("*.h5") if p.is_file())
    if not shards:
        raise GenieError(f"no shards (*.h5) in {data}; {hint}")
    return shards


@dataclass
class EpisodeArrays:
    """One whole episode read into memory: frames uint8 [T, H, W, 3], actions int64 [T] (-1 unknown;
    actions[t] turned frame t into frame t+1), and where it came from."""

    frames: np.ndarray
    actions: np.ndarray
    info: ShardInfo  # its shard
    index: int  # episode index within the shard


def read_episodes(data: str | Path, max_frames: int | None = None, shards: list[Path] | None = None):
    """Yield every episode of DATA (a shard or folder; or the given `shards`) as EpisodeArrays, in
    shard order, until `max_frames` frames have been read. GenieError naming the shard if its frames
    cannot be read."""
    total = 0
    for path in find_shards(data) if shards is None else shards:
        info = read_shard_info(path)
        with h5py.File(path, "r") as f:
            for e, (start, end) in enumerate(info.episodes.tolist()):
                if max_frames is not None and total >= max_frames:
                    return
                try:
                    frames = f["frames"][start:end]
                    actions = f["actions"][start:end].astype(np.int64) if info.has_actions else None
                except OSError as err:
                    raise GenieError(f"cannot read episode {e} of {path} ({err}); re-record or re-ingest it") from None
                if actions is None:
                    actions = np.full(end - start, -1, dtype=np.int64)
                total += end - start
                yield EpisodeArrays(frames, actions, info, e)


def frame_chunks(shard: str | Path, start: int, end: int, chunk: int) -> Iterator[np.ndarray]:
    """Rows start..end of a shard's frames, `chunk` at a time (uint8 [<=chunk, H, W, 3] each), so a
    long episode is never all in memory. GenieError naming the shard if a chunk cannot be read."""
    with h5py.File(shard, "r") as f:
        for s in range(start, end, chunk):
            try:
                yield f["frames"][s : min(s + chunk, end)]
            except OSError as err:
                raise GenieError(f"cannot read frames {s}:{end} of {shard} ({err}); re-record or re-ingest it") from None


def read_actions(shard: str | Path, start: int, end: int) -> np.ndarray:
    """Rows start..end of a shard's true actions, int64 (-1 unknown)."""
    with h5py.File(shard, "r") as f:
        return f["actions"][start:end].astype(np.int64)


def episode_starts(data: str | Path, limit: int | None = None, shards: list[Path] | None = None) -> np.ndarray:
    """The first frame of up to `limit` (None: all) episodes of DATA (a shard or folder; or the given
    `shards`), in shard order, no other frames read: uint8 [P, H, W, 3]."""
    starts = []
    for path in find_shards(data) if shards is None else shards:
        info = read_shard_info(path)
        rows = info.episodes[:, 0] if limit is None else info.episodes[: limit - len(starts), 0]
        with h5py.File(path, "r") as f:
            try:
                starts += [f["frames"][int(s)] for s in rows]
            except OSError as err:
                raise GenieError(f"cannot read frames of {path} ({err}); re-record or re-ingest it") from None
        if limit is not None and len(starts) >= limit:
            break
    if not starts:
        raise GenieError(f"{data}: no episodes to start from")
    return np.stack(starts)


@dataclass
class RecordStats:
    """What a recording produced."""

    episodes: int = 0
    frames: int = 0
    seconds: float = 0.0
    shards: list[Path] = field(default_factory=list)

    def add(self, other) -> None:
        """Add another RecordStats, or a finished ShardSetWriter's counts."""
        self.episodes += getattr(other, "episodes", getattr(other, "num_episodes", 0))
        self.frames += getattr(other, "frames", getattr(other, "num_frames", 0))
        self.shards += list(getattr(other, "shards", getattr(other, "paths", [])))

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def shard_logger(log, total_episodes: int, done_before: int = 0):
    """An on_shard callback printing one progress line per finished shard (`done_before`: episodes
    already in kept shards when an interrupted recording is finished)."""
    if log is None:
        return None
    done = [done_before]

    def on_shard(path: Path, episodes: int, frames: int) -> None:
        done[0] += episodes
        log(
            f"  wrote {path.name}: {episodes} episodes, {frames} frames ({done[0]}/{total_episodes} episodes)"
        )

    return on_shard
