"""Atomic file writes, the one way: write beside the target, then rename over it.

    with atomic_file(path) as tmp:   # tmp = .name.tmp-PID in the same folder
        torch.save(obj, tmp)         # or tmp.open("w"), ...
    write_text_atomic(path, text)

A reader sees the old file or the new one, never half of one; a write that fails or is killed by
an exception leaves the old file as it was and no temp file behind. make_out_dir makes the folder
a command writes into, or says in one line why it cannot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genie.errors import GenieError


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block ends without an exception it replaces `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def make_out_dir(path: str | Path, flag: str = "--out", given: str | Path | None = None) -> Path:
    """Create folder `path` (and its parents) for a command to write into -> the Path.

    GenieError naming `flag` and `given` (what the user passed, default `path`; e.g. the file a
    folder is made for) with the reason when the folder cannot be created (a file in the way,
    no permission) or is not writable, instead of an OSError traceback."""
    path = Path(path)
    where = f"{flag} {path}" if given is None or Path(given) == path else f"{flag} {given}: folder {path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        base = path
        while not base.exists() and base != base.parent:
            base = base.parent
        reason = f"{base} is a file" if base.exists() and not base.is_dir() else err.strerror
        raise GenieError(f"{where} cannot be created ({reason}); pass a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise GenieError(f"{where} is not writable; pass a writable folder")
    return path
