"""Detached server processes tracked by pid files, so a later invocation can find and stop them.

A pid file records the pid, the kernel start time of the process and a fingerprint of how it
was launched: a pid reused by an unrelated process after a crash is never mistaken for ours, so
`down` stops only what we started, and `up` can tell a server started with other settings.
"""

from __future__ import annotations

import hashlib
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

    def fingerprint(self, extra: object = None) -> str:
        text = json.dumps([self.argv, sorted(self.env.items()), str(self.cwd), extra], default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ProcStat:
    state: str
    pgid: int
    start_ticks: int

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")  # a zombie has ended; only its parent's wait is left


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it do not.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(state=fields[0], pgid=int(fields[2]), start_ticks=int(fields[19]))


def group_members(pgid: int) -> list[int]:
    """Running processes of a process group (a server's helpers included)."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat.pgid == pgid and stat.running:
                members.append(int(entry.name))
    return members


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log written)"
    with path.open("r", errors="replace") as fh:
        return "".join(deque(fh, maxlen=lines)).rstrip()


class StopFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int
    fingerprint: str


class ManagedProcess:
    def __init__(self, name: str, run_dir: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_file
        self._child: subprocess.Popen[bytes] | None = None

    def record(self) -> PidRecord | None:
        """Our live process as recorded in the pid file; None if it is gone or not ours.

        Read-only: a stale file is left for start() or stop() to replace or remove.
        """
        try:
            raw = json.loads(self.pid_file.read_text())
            record = PidRecord(int(raw["pid"]), int(raw["start"]), str(raw.get("fingerprint", "")))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if self._child is not None:
            self._child.poll()  # reap our own child so that it does not linger as a zombie
        stat = proc_stat(record.pid)
        if stat is None or not stat.running or stat.start_ticks != record.start_ticks:
            return None
        return record

    def pid(self) -> int | None:
        record = self.record()
        return None if record is None else record.pid

    def start(self, spec: LaunchSpec, fingerprint: str) -> int:
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
        stat = proc_stat(self._child.pid)
        try:
            tmp = self.pid_file.with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "pid": self._child.pid,
                        "start": stat.start_ticks if stat else -1,
                        "fingerprint": fingerprint,
                    }
                )
            )
            tmp.replace(self.pid_file)
        except OSError:
            os.killpg(self._child.pid, signal.SIGKILL)  # never leave a process we cannot track
            raise
        return self._child.pid

    def exit_code(self) -> int | None:
        """Exit status of a process started by this invocation that has already ended."""
        return None if self._child is None else self._child.poll()

    def stop(self, timeout_s: float) -> bool:
        """Stops the whole process group; True if something of ours was running.

        SIGTERM first; whatever of the group is left after `timeout_s` gets SIGKILL. The pid
        file is removed only once no process of the group runs any more.
        """
        record = self.record()
        if record is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        group = record.pid  # started with start_new_session: the leader's pid is the group id
        self._signal_group(group, signal.SIGTERM)
        if not self._wait_group_gone(group, timeout_s):
            self._signal_group(group, signal.SIGKILL)
            if not self._wait_group_gone(group, 10.0):
                raise StopFailed(
                    f"{self.name}: processes {group_members(group)} survived SIGKILL; "
                    f"pid file {self.pid_file} kept"
                )
        self.pid_file.unlink(missing_ok=True)
        return True

    def _wait_group_gone(self, group: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._child is not None:
                self._child.poll()
            if not group_members(group):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise StopFailed(f"not allowed to signal process group {pgid}: {exc}") from exc
