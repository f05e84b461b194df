"""`genie data inspect`: what is in a dataset (per shard and in total), without reading frames
(--verify reads them all), and what interrupted recordings left there."""

from __future__ import annotations

from pathlib import Path

from data_pipeline.record import RECORDING
from data_pipeline.shards import find_shards, read_shard_info, temp_files, verify_shard
from genie.errors import GenieError


def inspect_data(data: str | Path, verify: bool = False) -> dict:
    """Summarise a shard or a folder of shards (validating each; with `verify`, reading every
    chunk of every dataset, so damage mid-file is found: GenieError naming the damaged shards).

    Returns {"data": str, "shards": [per-shard dict], "total": dict, "leftovers": dict}; each
    shard dict and the total have episodes, frames, resolution ("HxW"), fps, sources, actions
    ("yes"/"no"/"some"), bytes (on disk), and episode length min/max. leftovers: "stale" (temp
    files of shards whose writer was killed), "writing" (temp files being written now) and
    "unfinished" (recordings not yet complete: their .recording.json), lists of paths.
    """
    leftovers = _leftovers(Path(data))
    try:
        paths = find_shards(data)
    except GenieError as err:
        if not leftovers["stale"] and not leftovers["unfinished"]:
            raise
        raise GenieError(f"{err}; {_hint(leftovers)}") from None
    infos = [read_shard_info(p) for p in paths] if not verify else _verified(paths)
    shards = [
        dict(
            path=str(i.path),
            episodes=len(i.episodes),
            frames=i.num_frames,
            resolution=f"{i.frame_shape[0]}x{i.frame_shape[1]}",
            fps=i.fps,
            sources=[i.source],
            actions="yes" if i.has_actions else "no",
            action_names=i.action_names,
            bytes=i.nbytes,
            min_episode=int(i.episode_lengths.min()) if len(i.episodes) else 0,
            max_episode=int(i.episode_lengths.max()) if len(i.episodes) else 0,
        )
        for i in infos
    ]

    def joined(key: str) -> list:
        return sorted({v for s in shards for v in (s[key] if isinstance(s[key], list) else [s[key]])})

    has = {s["actions"] for s in shards}
    total = dict(
        shards=len(shards),
        episodes=sum(s["episodes"] for s in shards),
        frames=sum(s["frames"] for s in shards),
        resolution=", ".join(joined("resolution")),
        fps=joined("fps"),
        sources=joined("sources"),
        actions=has.pop() if len(has) == 1 else "some",
        bytes=sum(s["bytes"] for s in shards),
        min_episode=min(s["min_episode"] for s in shards),
        max_episode=max(s["max_episode"] for s in shards),
        seconds=sum(s["frames"] / s["fps"] for s in shards),
    )
    return dict(data=str(data), shards=shards, total=total, leftovers=leftovers)


def _verified(paths: list[Path]) -> list:
    infos, damaged = [], []
    for path in paths:
        try:
            infos.append(verify_shard(path))
        except GenieError as err:
            damaged.append(str(err))
    if damaged:
        more = f" (and {len(damaged) - 1} more damaged)" if len(damaged) > 1 else ""
        raise GenieError(f"{len(damaged)} of {len(paths)} shards failed --verify: {damaged[0]}{more}")
    return infos


def _leftovers(data: Path) -> dict:
    """What interrupted writers left in folder `data` (nothing for a single shard)."""
    if not data.is_dir():
        return dict(stale=[], writing=[], unfinished=[])
    temps = temp_files(data)
    return dict(
        stale=[str(p) for p, _, running in temps if not running],
        writing=[str(p) for p, _, running in temps if running],
        unfinished=[str(p) for p in sorted(data.rglob(f"*{RECORDING}"))],
    )


def _hint(leftovers: dict) -> str:
    """One line on what interrupted writers left, and what to do about it."""
    parts = []
    if leftovers["unfinished"]:
        names = ", ".join(Path(p).name[: -len(RECORDING)] for p in leftovers["unfinished"])
        parts.append(f"unfinished recordings: {names}")
    if leftovers["stale"]:
        names = ", ".join(Path(p).name for p in leftovers["stale"][:3]) + (", ..." if len(leftovers["stale"]) > 3 else "")
        parts.append(f"{len(leftovers['stale'])} stale temp files of shards never finished ({names})")
    return ("; ".join(parts) + ": rerun the same `genie record` command to finish a recording (it removes its own "
            "temp files); other stale temp files (e.g. of an interrupted `genie ingest`) can be deleted")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def format_inspection(d: dict) -> str:
    """Render inspect_data's dict as a table plus a total line."""
    root = Path(d["data"])
    header = f"{'shard':<32} {'episodes':>8} {'frames':>9} {'res':>9} {'fps':>6} {'actions':>7} {'size':>10}  source"
    lines = [header]
    for s in d["shards"]:
        p = Path(s["path"])
        name = str(p.relative_to(root)) if root.is_dir() else p.name
        lines.append(
            f"{name:<32} {s['episodes']:>8} {s['frames']:>9} {s['resolution']:>9} {s['fps']:>6g} "
            f"{s['actions']:>7} {_size(s['bytes']):>10}  {s['sources'][0]}"
        )
    t = d["total"]
    fps = ", ".join(f"{f:g}" for f in t["fps"])
    lines.append(
        f"total: {t['shards']} shards, {t['episodes']} episodes, {t['frames']} frames "
        f"({t['seconds'] / 60:.1f} min), {t['resolution']}, {fps} fps, true actions: {t['actions']}, "
        f"episode length {t['min_episode']}-{t['max_episode']}, {_size(t['bytes'])} on disk"
    )
    lines.append(f"sources: {', '.join(t['sources'])}")
    left = d.get("leftovers", {})
    if left.get("stale") or left.get("unfinished"):
        lines.append(f"warning: {_hint(left)}")
    if left.get("writing"):
        lines.append(f"being written now: {len(left['writing'])} temp files (a recording or ingest is running)")
    return "\n".join(lines)
