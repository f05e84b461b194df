"""Atomic file writes, the one way: write beside the target, then rename over it.

    with atomic_file(path) as tmp:   # tmp = .name.tmp-PID in the same folder
        torch.save(obj, tmp)         # or tmp.open("w"), ...
    write_text_atomic(path, text)

A reader sees the old file or the new one, never half of one; a write that fails or is killed by
an exception leaves the old file as it was and no temp file behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
