"""`genie ingest`: videos, GIFs and folders of frames -> shards (one episode per input).

The one image rule, used everywhere an image enters genie (ingest, recording at another size,
World prompts):
  to_rgb8   gray -> RGB (channel copied), alpha composited on black, 16-bit scaled to 8-bit
            (round(x / 257)), float taken as 0..1 and scaled by 255.
  to_frame  to_rgb8, then resize so the short side == size (cv2.INTER_AREA when shrinking,
            cv2.INTER_LINEAR when growing), then centre-crop to size x size.
Ingest is strict: a frame that is not 8-bit RGB is an error unless convert=True (--convert).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # ffmpeg's own messages; errors become GenieError
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from data_pipeline.shards import ShardWriter, remove_stale_temp_files  # noqa: E402
from genie.errors import GenieError  # noqa: E402

VIDEO_EXTS = {".mp4", ".avi", ".webm", ".mov", ".mkv"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg"}
FOLDER_FPS = 15.0
CONVERT_HINT = (
    "pass --convert to convert it by the documented rule "
    "(gray→RGB, alpha composited on black, 16-bit scaled to 8-bit)"
)


def image_mode(img: np.ndarray) -> str:
    """A short description of an image array's mode, e.g. '8-bit RGB', '16-bit grayscale', '8-bit RGBA'."""
    bits = {"u1": "8-bit", "u2": "16-bit"}.get(img.dtype.str[1:], str(img.dtype))
    channels = 1 if img.ndim == 2 else img.shape[-1]
    names = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}
    return f"{bits} {names.get(channels, f'{channels}-channel')}"


def to_rgb8(img: np.ndarray) -> np.ndarray:
    """Convert an image to uint8 [H, W, 3] RGB by the documented rule (see module docstring).

    img: [H, W], [H, W, 1|2|3|4] in gray / gray+alpha / RGB / RGBA channel order,
    dtype uint8, uint16 or float (0..1). OpenCV's BGR images must be flipped to RGB first.
    """
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an [H, W] or [H, W, 1-4] image, got shape {img.shape}")
    if img.dtype == np.uint8:
        x = img.astype(np.float32)
    elif img.dtype == np.uint16:
        x = img.astype(np.float32) / 257.0
    elif img.dtype.kind == "f":
        x = np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0
    elif img.dtype == np.bool_:
        x = img.astype(np.float32) * 255.0
    else:
        raise ValueError(f"unsupported image dtype {img.dtype}")
    if img.dtype == np.uint8 and img.shape[-1] == 3:
        return img
    colour, alpha = (x[..., :-1], x[..., -1:]) if x.shape[-1] in (2, 4) else (x, None)
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    if alpha is not None:
        colour = colour * (alpha / 255.0)
    return np.clip(np.rint(colour), 0, 255).astype(np.uint8)


def to_frame(img: np.ndarray, size: int) -> np.ndarray:
    """Any image (see to_rgb8) -> uint8 [size, size, 3] RGB: short side resized to `size`
    (INTER_AREA shrinking, INTER_LINEAR growing), then centre-cropped."""
    img = to_rgb8(img)
    h, w = img.shape[:2]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (nw, nh), interpolation=interp)
        top, left = (nh - size) // 2, (nw - size) // 2
        img = img[top : top + size, left : left + size]
    return np.ascontiguousarray(img)


@contextlib.contextmanager
def _quiet_opencv():
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        return img[..., [2, 1, 0, *range(3, img.shape[-1])]]
    return img


def _checked(img: np.ndarray, path: Path, convert: bool, size: int) -> np.ndarray:
    """RGB(A) image from OpenCV (already flipped to RGB) -> uint8 [size, size, 3], strict unless convert."""
    if img.ndim == 3 and img.shape[-1] == 4 and img.dtype == np.uint8 and (img[..., 3] == 255).all():
        img = img[..., :3]  # an opaque alpha channel (OpenCV reads GIFs as RGBA) hides nothing: drop it
    mode = image_mode(img)
    if mode != "8-bit RGB" and not convert:
        raise GenieError(f"{path} is {mode}; genie ingest expects 8-bit RGB frames; {CONVERT_HINT}")
    try:
        return to_frame(img, size)
    except ValueError as err:
        raise GenieError(f"{path} cannot be converted to RGB ({err})") from None


def read_image(path: Path) -> np.ndarray:
    """Read an image file as stored: RGB(A) channel order, uint8/uint16; GenieError if unreadable."""
    with _quiet_opencv():
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise GenieError(f"cannot read image {path} (corrupt or not an image); remove or replace it")
    return _bgr_to_rgb(img)


def read_prompt(path: str | Path) -> np.ndarray:
    """An image file given as a prompt -> uint8/uint16 [H,W,C] (C = 1 gray, 3 RGB, 4 RGBA), any
    size: the World (genie.World.reset) converts it by the one rule (to_frame). GenieError if missing
    or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise GenieError(f"{path}: prompt image not found")
    img = read_image(path)
    return img[..., None] if img.ndim == 2 else img  # gray -> [H,W,1]


def read_prompt_frames(path: str | Path, max_frames: int) -> np.ndarray:
    """A prompt file -> uint8/uint16 [T,H,W,C], 1 <= T <= max_frames, any size and channel count
    (World.reset converts them): an image (T = 1); a video, GIF or folder of frames (its first
    frames); a shard or a folder of shards (the first episode's first frames)."""
    from itertools import islice

    from data_pipeline.shards import read_episodes

    path = Path(path)
    if not path.exists():
        raise GenieError(f"{path}: prompt not found; pass an image, a video or GIF, or a dataset shard")
    if path.suffix.lower() == ".h5" or (path.is_dir() and any(path.rglob("*.h5"))):
        first = next(iter(read_episodes(path, max_frames=1)), None)
        if first is None:
            raise GenieError(f"{path}: no episodes to start from")
        return first.frames[:max_frames]
    if not (path.is_dir() or path.suffix.lower() in (*VIDEO_EXTS, ".gif")):
        return read_prompt(path)[None]
    footage = read_footage(path)
    frames = [image for _, image in islice(footage.frames, max_frames)]
    footage.frames.close()
    same = next((i for i, f in enumerate(frames) if f.shape != frames[0].shape), len(frames))
    frames = frames[:same]  # a folder of frames may mix sizes: the first run of one size
    if not frames:
        raise GenieError(f"{path}: no readable frames; re-encode it, e.g. as .mp4")
    return np.stack(frames)


def _video_frames(path: Path) -> tuple[Iterator[np.ndarray], float, int | None]:
    with _quiet_opencv():
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise GenieError(
            f"cannot read video {path} (corrupt or a format ffmpeg cannot decode); re-encode it, e.g. as .mp4"
        )
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                with _quiet_opencv():
                    ok, frame = cap.read()
                if not ok:
                    return
                yield _bgr_to_rgb(frame)
        finally:
            cap.release()

    return frames(), fps, (count if count > 0 else None)


def _gif_frames(path: Path) -> tuple[list[np.ndarray], float]:
    with _quiet_opencv():
        try:
            ok, anim = cv2.imreadanimation(str(path))
        except cv2.error:
            ok = False
    if not ok:
        raise GenieError(f"cannot read GIF {path} (corrupt or not a GIF); re-export it")
    durations = np.asarray(anim.durations, dtype=np.float64)
    ms = float(np.median(durations)) if len(durations) else 0.0
    fps = 1000.0 / (ms if ms > 10 else 100.0)  # browsers show delays <= 10 ms as 100 ms
    return [_bgr_to_rgb(f) for f in anim.frames], fps


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def _folder_images(path: Path) -> list[Path]:
    images = sorted(
        (p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()), key=_natural_key
    )
    if not images:
        raise GenieError(
            f"no footage in folder {path}: no frames ({', '.join(sorted(IMAGE_EXTS))}); "
            "pass a folder of frames, or the video/GIF files themselves"
        )
    return images


def _kind(path: Path) -> str:
    if not path.exists():
        raise GenieError(f"{path} does not exist; pass a video, a GIF or a folder of frames")
    if path.is_dir():
        return "folder"
    ext = path.suffix.lower()
    if ext in VIDEO_EXTS:
        return "video"
    if ext == ".gif":
        return "gif"
    raise GenieError(
        f"{path} is not footage genie can ingest; pass videos ({' '.join(sorted(VIDEO_EXTS))}), "
        "GIFs, or folders of .png/.jpg frames"
    )


def ingest(
    paths, out, size: int = 64, fps: float | None = None, convert: bool = False, log=print
) -> list[Path]:
    """Ingest videos, GIFs and folders of frames into `out/<name>.h5` (one shard and one episode
    per input; frames by to_frame; source="ingest:<filename>"; no actions). fps: `fps` if given,
    else the video's / GIF's own, else 15 for folders. All-or-nothing: if any input fails, no new
    shard is written. Returns the shard paths."""
    out, paths = Path(out), [Path(p) for p in paths]
    for p in paths:  # every input is footage before anything is written
        _kind(p)
    names: list[str] = []
    for p in paths:  # one shard per input: <stem>.h5, <stem>-2.h5 if two inputs share a stem
        stem, n = p.stem if p.is_file() else p.name, 1
        while (name := stem if n == 1 else f"{stem}-{n}") in names:
            n += 1
        names.append(name)
    if out.exists() and not out.is_dir():
        raise GenieError(f"--out {out} is a file; pass a folder for the shards")
    for name in names:
        if (out / f"{name}.h5").exists():
            raise GenieError(
                f"{out / (name + '.h5')} already exists; pass another --out instead of overwriting it"
            )
    for name in names:  # what a killed ingest of the same inputs left
        remove_stale_temp_files(out, name, log, "an ingest of the same input is running into this folder", f"{name}.h5")
    writers: list[ShardWriter] = []
    with contextlib.ExitStack() as stack:
        for p, name in zip(paths, names):
            source_fps, num = _ingest_one(p, out / f"{name}.h5", size, fps, convert, stack, writers)
            if log is not None:
                log(f"  {p} -> {name}.h5: {num} frames at {source_fps:g} fps")
        # leaving the ExitStack renames every shard into place; an error above deletes them all
    return [w.path for w in writers]


class Footage(NamedTuple):
    """One input's frames as stored: `frames` yields (file the frame came from, RGB(A) uint8/uint16
    image) lazily (a GIF is decoded whole first); `fps` is the native rate (FOLDER_FPS for folders);
    `length` the frame count if known up front (a video's is its container's estimate)."""

    frames: Iterator[tuple[Path, np.ndarray]]
    fps: float
    length: int | None


def read_footage(path: str | Path) -> Footage:
    """Open a video, a GIF or a folder of frames for reading; GenieError naming the file if it is
    missing, of another kind or unreadable. Frames are not converted: pass them to to_frame."""
    path = Path(path)
    kind = _kind(path)
    if kind == "folder":
        files = _folder_images(path)
        return Footage(((f, read_image(f)) for f in files), FOLDER_FPS, len(files))
    if kind == "gif":
        imgs, fps = _gif_frames(path)
        return Footage(((path, f) for f in imgs), fps, len(imgs))
    it, fps, count = _video_frames(path)
    return Footage(((path, f) for f in it), fps, count)


def _ingest_one(path, dst, size, fps, convert, stack, writers) -> tuple[float, int]:
    frames, native_fps, _ = read_footage(path)
    use_fps = fps or native_fps
    if not (use_fps and 0 < use_fps <= 1000):
        raise GenieError(f"{path} has no usable frame rate in its metadata ({native_fps}); pass --fps")
    writer = stack.enter_context(ShardWriter(dst, fps=use_fps, source=f"ingest:{path.name}"))
    writers.append(writer)
    chunk: list[np.ndarray] = []
    for src, img in frames:
        chunk.append(_checked(img, src, convert, size))
        if len(chunk) == 256:
            writer.append(np.stack(chunk))
            chunk = []
    if chunk:
        writer.append(np.stack(chunk))
    if writer.num_frames == 0:
        raise GenieError(f"{path} has no frames (empty or unreadable); re-encode it")
    writer.end_episode()
    return use_fps, writer.num_frames
