"""Files only their owner may read: the hub's SQLite database, the node's state database, the audit head.

A database created with the process umask (often 0022) is readable by every local account, and these
hold tokens' hashes, study specifications, audit entries and the overlap guard's fingerprints. SQLite
gives its ``-wal`` and ``-shm`` files the database file's own mode (sqlite.org, "Temporary Files Used By
SQLite" and ``findCreateFileMode`` in os_unix.c), so making the database 0600 before SQLite opens it
covers them too.
"""

from __future__ import annotations

import os
from pathlib import Path

from phds.errors import ConfigError

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def ensure_private(path: Path, what: str) -> Path:
    """Create *path* empty with mode 0600 if it is missing (its new folders 0700); tighten it otherwise."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
        try:
            os.fchmod(fd, PRIVATE_FILE)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the {what} {path} readable by its owner only: {exc.strerror}"
        ) from None
    return path


def open_private_for_writing(path: Path) -> int:
    """A new or truncated file descriptor of *path*, mode 0600 from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd


__all__ = ["PRIVATE_FILE", "PRIVATE_FOLDER", "ensure_private", "open_private_for_writing"]
