"""Cache entries built once into a temporary folder and renamed into place.

An entry is complete only when its folder exists with a stamp matching the recipe's key,
so an interrupted download or build is redone, never half-used.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

STAMP = ".complete"


def content_key(*parts: str | Path) -> str:
    """A key over strings and file contents: a changed recipe file means a rebuild."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # two concurrent `make up` runs build an entry once
        yield


def ensure(entry: Path, key: str, build: Callable[[Path], None]) -> Path:
    """Returns `entry`, calling build(tmp_dir) first unless a complete entry with `key` exists."""
    stamp = entry / STAMP
    if stamp.exists() and stamp.read_text() == key:
        return entry
    with _locked(entry.with_name(entry.name + ".lock")):
        if stamp.exists() and stamp.read_text() == key:
            return entry
        tmp = entry.with_name(entry.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build(tmp)
        (tmp / STAMP).write_text(key)
        shutil.rmtree(entry, ignore_errors=True)
        tmp.rename(entry)
    return entry
