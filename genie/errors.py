"""The one exception type for errors a user can cause (bad files, bad flags, bad configs)."""

from __future__ import annotations


class GenieError(Exception):
    """A user-facing error: the message names the file or argument and says how to fix it.

    The `genie` command prints it as one line (no traceback unless --debug); bugs stay tracebacks.
    """

