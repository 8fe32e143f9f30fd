"""Running setup commands (mvn, go, apt-get, initdb) with their output kept for error reports."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path


class SetupError(RuntimeError):
    def __init__(self, what: str, output: str) -> None:
        super().__init__(what)
        self.what = what
        self.output = output


def run(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 3600,
    stdin: str | None = None,
) -> str:
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SetupError(what, f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise SetupError(what, f"timed out after {timeout_s:.0f}s") from exc
    if done.returncode != 0:
        raise SetupError(what, (done.stdout + done.stderr)[-4000:])
    return done.stdout
