"""Detached server processes tracked by pid files, so a later invocation can find and stop them.

A pid file records the pid and the kernel start time of the process: a pid reused by an
unrelated process after a crash is never mistaken for ours, so `down` stops only what we started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the caller's environment
    cwd: Path | None = None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live process, None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it do not.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log written)"
    with path.open("r", errors="replace") as fh:
        return "".join(deque(fh, maxlen=lines)).rstrip()


class ManagedProcess:
    def __init__(self, name: str, run_dir: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_file
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        """The pid of our process if it is alive, else None (a stale pid file is removed)."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        stat = _proc_stat(int(record["pid"]))
        if stat is None or stat[0] in ("Z", "X") or stat[1] != int(record["start"]):
            self.pid_file.unlink(missing_ok=True)
            return None
        return int(record["pid"])

    def start(self, spec: LaunchSpec) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            # Own session: the server outlives this command and is stopped as a process group.
            self._child = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stat = _proc_stat(self._child.pid)
        start_ticks = stat[1] if stat else 0
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": self._child.pid, "start": start_ticks}))
        tmp.replace(self.pid_file)
        return self._child.pid

    def exit_code(self) -> int | None:
        """Exit status of a process started by this invocation that has already ended."""
        return None if self._child is None else self._child.poll()

    def stop(self, timeout_s: float) -> bool:
        """Stops the process group; True if something of ours was running."""
        pid = self.pid()
        if pid is None:
            return False
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._child is not None:
                self._child.poll()  # reap our own child so it does not linger as a zombie
            if self.pid() is None:
                break
            time.sleep(0.2)
        else:
            self._signal_group(pid, signal.SIGKILL)
            time.sleep(0.5)
        if self._child is not None:
            self._child.poll()
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)
