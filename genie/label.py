"""`genie label`: the latent action of every transition of footage a world never saw, as a CSV.

    genie label gameplay.mp4 clip.gif frames/ data/heldout --world bundles/world --out labels.csv
    genie label gameplay.mp4 --world bundles/world --out labels.csv --map data/coinrun-train

Inputs: videos (.mp4 .avi .webm .mov .mkv), GIFs and folders of PNG/JPG frames, one episode each,
read by data_pipeline.ingest.read_footage; shards (*.h5) and folders of shards, one episode per
shard episode. Every frame goes through the one image rule (ingest.to_frame: RGB, short side
resized to the world's frame size, centre crop).

CSV, one row per transition t -> t+1 of every episode (T frames give T-1 rows):
  source          the input path (for a folder of shards, the shard's path)
  episode         episode index within the source (0 for a video, GIF or frame folder)
  t               transition index: the action that turned frame t into frame t+1
  latent_action   World.infer_actions' action, 0..num_actions-1
  confidence      its probability, 1/num_actions..1 (see World.infer_actions)
  real_action     with --map only: the name of the real action the latent action maps to

--map DATA fits that map on footage with true actions (a shard or folder, e.g. from `genie record`):
each latent action goes to the true action it co-occurs with most (genie.eval.action_map,
the map of `genie eval`'s lookup probe); names come from the shards' `action_names`.

Long footage is streamed: frames are read and labelled `batch` LAM windows at a time (one batched
forward), never the whole video at once (a GIF is decoded whole by OpenCV first). The labels are
exactly those of World.infer_actions on the whole episode: the windows start at the same frames.
The CSV is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genie.errors import GenieError
from genie.eval.action_map import ActionMap
from genie.files import atomic_file

SHARD_CHUNK = 256  # frames read from a shard at a time
COLUMNS = ["source", "episode", "t", "latent_action", "confidence"]


@dataclass
class Episode:
    """One stretch of footage to label. `open()` -> (frame count or None if unknown, an iterator of
    uint8 [n,H,W,3] frame chunks at the world's size); nothing is read before it is called."""

    source: str
    index: int
    open: Callable[[], tuple[int | None, Iterator[np.ndarray]]]
    length: int | None = None  # frames, when known without opening (shard episodes)
    true_actions: Callable[[], np.ndarray] | None = None  # int [T] (-1 unknown), shard episodes only


# ---------------------------------------------------------------------- inputs
def open_inputs(paths, frame_size: int) -> list[tuple[str, list[Episode]]]:
    """Check every input up front and list its episodes: -> [(input path, episodes)].
    GenieError naming the path if it is missing or not footage."""
    from data_pipeline.ingest import IMAGE_EXTS, VIDEO_EXTS

    inputs = []
    for path in map(Path, paths):
        if not path.exists():
            raise GenieError(f"{path} does not exist; pass videos, GIFs, folders of frames, or shards")
        if path.suffix.lower() == ".h5" or (path.is_dir() and not _has_images(path, IMAGE_EXTS)
                                            and any(path.rglob("*.h5"))):
            inputs.append((str(path), shard_episodes(path, frame_size)))
        elif path.is_dir() or path.suffix.lower() in VIDEO_EXTS | {".gif"}:
            inputs.append((str(path), [footage_episode(path, frame_size)]))
        else:
            raise GenieError(f"{path} is not footage genie can label; pass videos ({' '.join(sorted(VIDEO_EXTS))}), "
                             "GIFs, folders of .png/.jpg frames, or shards (*.h5)")
    return inputs


def _has_images(folder: Path, exts) -> bool:
    return any(p.suffix.lower() in exts for p in folder.iterdir())


def footage_episode(path: Path, frame_size: int) -> Episode:
    """A video, GIF or frame folder as one episode, opened when read."""
    from data_pipeline.ingest import read_footage

    def open_() -> tuple[int | None, Iterator[np.ndarray]]:
        footage = read_footage(path)
        return footage.length, (_convert(img, frame_size, src)[None] for src, img in footage.frames)

    return Episode(str(path), 0, open_)


def shard_episodes(data: Path, frame_size: int) -> list[Episode]:
    """Every episode of a shard or a folder of shards (validated now, frames read when labelled)."""
    from data_pipeline.shards import find_shards, read_shard_info

    episodes = []
    for shard in find_shards(data):
        info = read_shard_info(shard)
        for e, (start, end) in enumerate(info.episodes.tolist()):
            reader = _shard_reader(shard, start, end, frame_size)
            episodes.append(Episode(str(shard), e, lambda r=reader, n=end - start: (n, r()), end - start,
                                    _shard_actions(shard, start, end) if info.has_actions else None))
    return episodes


def _shard_reader(shard: Path, start: int, end: int, frame_size: int) -> Callable[[], Iterator[np.ndarray]]:
    from data_pipeline.shards import frame_chunks

    def chunks() -> Iterator[np.ndarray]:
        for frames in frame_chunks(shard, start, end, SHARD_CHUNK):  # uint8 [n,H,W,3]
            if frames.shape[1:3] != (frame_size, frame_size):
                frames = np.stack([_convert(img, frame_size, shard) for img in frames])
            yield frames

    return chunks


def _shard_actions(shard: Path, start: int, end: int) -> Callable[[], np.ndarray]:
    from data_pipeline.shards import read_actions

    return lambda: read_actions(shard, start, end)


def frame_size(world) -> int:
    """The side of the world's square frames (the image rule resizes to squares only)."""
    h, w = world.frame_shape[:2]
    if h != w:
        raise GenieError(f"genie label converts footage to square frames; this world's are {h}x{w}")
    return h


def _convert(img: np.ndarray, size: int, src) -> np.ndarray:
    from data_pipeline.ingest import to_frame

    try:
        return to_frame(img, size)
    except ValueError as err:
        raise GenieError(f"{src}: cannot convert this frame to RGB ({err})") from None


# ---------------------------------------------------------------------- labelling
def label_stream(world, chunks: Iterator[np.ndarray], batch: int = 32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Latent actions of one episode, streamed: frame chunks uint8 [n,H,W,3] at the world's size ->
    (actions int64 [k], confidence float32 [k]) for consecutive transitions, equal to
    World.infer_actions(whole episode, return_confidence=True). `batch` LAM windows (overlapping by
    one frame, as World.infer_actions reads them) go through the LAM in one batched forward."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    step = world.sample.lam_context - 1
    need = batch * step + 1  # frames of `batch` windows
    windows = np.arange(batch)[:, None] * step + np.arange(step + 1)  # [batch, lam_context] frame rows
    buf = np.empty((need, *world.frame_shape), np.uint8)
    filled = 0
    for chunk in chunks:
        pos = 0
        while pos < len(chunk):
            take = min(need - filled, len(chunk) - pos)
            buf[filled : filled + take] = chunk[pos : pos + take]
            filled, pos = filled + take, pos + take
            if filled == need:
                yield _label_windows(world, buf[windows])
                buf[0], filled = buf[-1], 1  # the next window starts at this one's last frame
    full = (filled - 1) // step  # whole windows left, then a shorter last one
    if full:
        yield _label_windows(world, buf[windows[:full]])
    if filled - full * step >= 2:
        yield world.infer_actions(buf[full * step : filled], return_confidence=True)


def _label_windows(world, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [k, lam_context, H,W,3] consecutive windows -> (actions [k*(lam_context-1)], confidence)."""
    actions, confidence = world.infer_actions(windows, return_confidence=True)  # [k, lam_context-1]
    return actions.reshape(-1), confidence.reshape(-1)


def label_episode(world, episode: Episode, batch: int = 32, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """-> (actions int64 [T-1], confidence float32 [T-1]) of a whole episode (for fitting maps;
    label_footage streams instead). `progress`: a tqdm bar to advance."""
    parts = []
    for actions, confidence in label_stream(world, episode.open()[1], batch):
        parts.append((actions, confidence))
        if progress is not None:
            progress.update(len(actions))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def fit_map(world, data: str | Path, batch: int = 32) -> ActionMap:
    """Fit latent -> real actions on shards with true actions (see module docstring)."""
    from tqdm.auto import tqdm

    from data_pipeline.shards import find_shards, read_shard_info

    infos = [read_shard_info(p) for p in find_shards(data)]
    labeled = [i for i in infos if i.has_actions]
    if not labeled:
        raise GenieError(f"--map {data} has no true actions (its shards have no 'actions' dataset, e.g. ingested "
                         "video); pass footage recorded with `genie record`, which stores the actions taken")
    names = {tuple(i.action_names) for i in labeled if i.action_names is not None}
    if len(names) > 1:
        raise GenieError(f"--map {data}: its shards name their actions differently ({' vs '.join(map(str, names))}); "
                         "pass shards of one game")
    episodes = [e for i in labeled for e in shard_episodes(i.path, frame_size(world)) if e.length >= 2]
    latent, true = [], []
    with tqdm(total=sum(e.length - 1 for e in episodes), desc=f"fitting map on {Path(data).name}",
              unit=" transitions", disable=None, leave=False) as bar:
        for episode in episodes:
            latent.append(label_episode(world, episode, batch, bar)[0])
            true.append(episode.true_actions()[:-1])  # actions[t]: the action of transition t -> t+1
    latent, true = np.concatenate(latent or [np.zeros(0, np.int64)]), np.concatenate(true or [np.zeros(0, np.int64)])
    known = true >= 0
    if not known.any():
        raise GenieError(f"--map {data}: every true action is unknown (-1); pass footage recorded with `genie record`")
    return ActionMap.fit(latent, true, list(names.pop()) if names else [], world.num_actions, str(data))


def label_footage(inputs, world, out: str | Path, action_map: ActionMap | None = None, batch: int = 32,
                  log=print) -> int:
    """Label every transition of `inputs` (paths, see module docstring) into the CSV `out`.
    Returns the number of rows. Nothing is written if any input fails."""
    from tqdm.auto import tqdm

    sources = open_inputs(inputs, frame_size(world))
    out = Path(out)
    if out.is_dir():
        raise GenieError(f"--out {out} is a folder; pass a .csv file path")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with atomic_file(out) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS + (["real_action"] if action_map is not None else []))
            for path, episodes in sources:
                opened = [(e, *e.open()) for e in episodes]  # a video is opened here; shards read lazily
                total = sum(n - 1 for _, n, _ in opened if n) or None
                bar = tqdm(total=total, desc=Path(path).name, unit=" transitions", disable=None, leave=False)
                done, short = 0, 0
                for episode, _, chunks in opened:
                    n = _write_episode(writer, world, episode, chunks, action_map, batch, bar)
                    done, short = done + n, short + (n == 0)
                bar.close()
                if done == 0:
                    what = "its episodes have" if len(episodes) > 1 else "it has"
                    raise GenieError(f"{path} is too short to label: {what} fewer than 2 frames "
                                     "(a label is the action between two frames)")
                if log is not None:
                    skipped = f" ({short} one-frame episodes skipped)" if short else ""
                    log(f"  {path}: {len(episodes)} episode{'s' * (len(episodes) != 1)}, {done:,} transitions{skipped}")
                rows += done
    return rows


def _write_episode(writer, world, episode: Episode, chunks, action_map: ActionMap | None, batch: int, bar) -> int:
    t = 0
    for actions, confidence in label_stream(world, chunks, batch):
        for a, c in zip(actions.tolist(), confidence.tolist()):
            row = [episode.source, episode.index, t, a, f"{c:.4f}"]
            writer.writerow(row + [action_map.name(a)] if action_map is not None else row)
            t += 1
        bar.update(len(actions))
    return t


def run_label(inputs, world: str, out: str, map_data: str | None = None, device: str = "auto",
              batch: int = 32) -> int:
    """`genie label`: load the world, fit the --map if given, label the inputs. Returns the row count."""
    from genie.world import World

    if batch < 1:
        raise GenieError(f"--batch must be >= 1, got {batch}")
    open_inputs(inputs, 64)  # fail on a bad input before loading anything (sizes do not matter here)
    w = World.load(world, device=device)
    action_map = None
    if map_data is not None:
        action_map = fit_map(w, map_data, batch)
        print(action_map.describe())
    rows = label_footage(inputs, w, out, action_map, batch)
    print(f"wrote {rows:,} rows to {out}")
    return rows
