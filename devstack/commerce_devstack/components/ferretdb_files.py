"""FerretDB's SQLite database files that would stop it from starting.

FerretDB 1.24 keeps a database's collections in its `_ferretdb_collections` table and refuses to
start when any file lacks it. A file can: a database dropped while other clients still used it
came back as a bare SQLite file (seen after a test raced sign-in attempts on a fresh database).
Such a file holds no collection FerretDB could reach, so it is moved aside, not deleted, and
the stack starts."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

METADATA_TABLE = "_ferretdb_collections"


def _has_metadata(database: Path) -> bool:
    try:
        # Opened read-write on purpose: SQLite then replays a WAL the server left behind.
        with closing(sqlite3.connect(database)) as connection:
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (METADATA_TABLE,)
            ).fetchone()
    except sqlite3.DatabaseError:
        return False
    return found is not None


def set_aside_unusable(data_dir: Path, aside_dir: Path) -> list[str]:
    """Moves each database file without FerretDB's metadata (with its -wal and -shm) into
    `aside_dir`; returns the database names moved."""
    moved = []
    for database in sorted(data_dir.glob("*.sqlite")):
        if _has_metadata(database):
            continue
        aside_dir.mkdir(parents=True, exist_ok=True)
        for part in (database, *(Path(f"{database}{tail}") for tail in ("-wal", "-shm"))):
            if part.exists():
                part.replace(aside_dir / part.name)
        moved.append(database.stem)
    return moved
