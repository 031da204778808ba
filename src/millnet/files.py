"""Private files: a node's databases, their write-ahead logs and its secrets are its own.

SQLite, DuckDB and their WAL files are created by the database libraries with whatever mode the
process umask leaves, so the umask is set once at start-up (``private_umask``): every file a
millnet process creates afterwards is 0600 and every folder 0700. Folders and database files
left readable by an older version are tightened when a node opens them (``private_dir``).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("millnet.files")

PRIVATE_UMASK = 0o077
# Files a node keeps in its data folder that hold data or secrets.
_PRIVATE_SUFFIXES = (".sqlite", ".sqlite-wal", ".sqlite-shm", ".sqlite-journal", ".duckdb",
                     ".duckdb.wal", ".wal", ".secret", ".position")


def private_umask() -> None:
    """Make every file and folder this process creates from now on private to its user."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) as 0700, or tighten it and its data files if it exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)
    for child in path.iterdir():
        if child.is_file() and child.name.endswith(_PRIVATE_SUFFIXES):
            _tighten(child, 0o600)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a new file that is 0600 from the moment it exists (no chmod after the write)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        tightened = current & mode
        log.warning("%s was open to other users (mode %o); now %o", path, current, tightened)
        path.chmod(tightened)
