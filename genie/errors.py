"""The one exception type for errors a user can cause (bad files, bad flags, bad configs)."""

from __future__ import annotations

import os
from pathlib import Path


class GenieError(Exception):
    """A user-facing error: the message names the file or argument and says how to fix it.

    The `genie` command prints it as one line (no traceback unless --debug); bugs stay tracebacks.
    """


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
