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
def _locked(path: Path, on_wait: Callable[[], None]) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        # Whoever holds the lock builds; everyone else (another thread or `make up`) waits.
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


Notify = Callable[[str], None]


def quiet(_message: str) -> None:
    return None


def ensure(
    entry: Path, key: str, build: Callable[[Path], None], what: str = "", notify: Notify = quiet
) -> Path:
    """Returns `entry`, calling build(tmp_dir) first unless a complete entry with `key` exists.

    `notify(what)` is called only when there is work to do, so a warm cache stays silent.
    """
    stamp = entry / STAMP
    if stamp.exists() and stamp.read_text() == key:
        return entry
    label = what or f"building {entry.name}"
    with _locked(entry.with_name(entry.name + ".lock"), lambda: notify(f"waiting: {label}")):
        if stamp.exists() and stamp.read_text() == key:
            return entry
        tmp = entry.with_name(entry.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        notify(label)
        build(tmp)
        (tmp / STAMP).write_text(key)
        shutil.rmtree(entry, ignore_errors=True)
        tmp.rename(entry)
    return entry
