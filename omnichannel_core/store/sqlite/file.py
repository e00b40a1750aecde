"""The SQLite file on disk: created private, and a path that cannot be used named as such.

Messages and contacts are personal data, so nothing the store creates is readable by other
users: folders it creates are 0700, the database file is created 0600 before SQLite opens
it, and SQLite gives its ``-wal`` and ``-shm`` files the database file's mode.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from omnichannel_core.errors import ConfigError

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def create_private_file(path: Path) -> None:
    """Create the folders up to ``path`` (0700, only those missing) and the empty database
    file (0600) when it does not exist yet; an existing file is left as it is."""
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=FOLDER_MODE)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)


def unusable_store(path: Path, error: OSError | sqlite3.Error) -> ConfigError:
    """The start-up error for a store path that cannot be used: one line naming
    ``OMNICHANNEL_STORE``, the path and the reason."""
    if isinstance(error, OSError) and error.strerror:
        other_file = error.filename and str(error.filename) != str(path)
        reason = f"{error.strerror} ({error.filename})" if other_file else error.strerror
    else:
        reason = str(error) or type(error).__name__
    line = " ".join(f"OMNICHANNEL_STORE: cannot use {path}: {reason}".split())
    return ConfigError(line, variable="OMNICHANNEL_STORE", path=str(path))
