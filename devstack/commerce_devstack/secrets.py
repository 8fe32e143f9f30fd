"""Credentials generated on first `up` and kept in .stack/secrets.json (mode 0600, git-ignored).

Nothing has a default password: each stack gets its own random credentials, and tests and
tools read them from this file.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Writes `text` to `path` readable by its owner only (0600), atomically: a reader sees
    the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def _password() -> str:
    return secrets.token_urlsafe(24)


def load_or_create(path: Path, wanted: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """Returns {group: {name: password}}, adding a password for every wanted name that lacks one."""
    data: dict[str, dict[str, str]] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            raise SystemExit(
                f"{path} is not valid JSON; fix it or run `make reset` for new credentials"
            ) from None
    changed = not path.exists()
    for group, names in wanted.items():
        bucket = data.setdefault(group, {})
        for name in names:
            if name not in bucket:
                bucket[name] = _password()
                changed = True
    if changed:
        write_private(path, json.dumps(data, indent=2))
    return data
