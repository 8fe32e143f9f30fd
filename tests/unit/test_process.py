from __future__ import annotations

import json
import time
from pathlib import Path

from commerce_devstack.process import LaunchSpec, ManagedProcess, tail


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_start_records_pid_and_stop_ends_the_whole_group(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "sleeper.log")
    # The shell forks a child: stop must end the child too, not only the shell.
    pid = proc.start(LaunchSpec(["sh", "-c", "sleep 60 & echo child $!; wait"]))
    deadline = time.monotonic() + 5
    while "child" not in tail(proc.log_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(tail(proc.log_file).split("child ")[1].split()[0])
    assert proc.pid() == pid
    assert _alive(child)

    assert proc.stop(timeout_s=5) is True
    time.sleep(0.2)
    assert proc.pid() is None
    assert not _alive(child)
    assert not proc.pid_file.exists()
    assert proc.stop(timeout_s=1) is False  # nothing of ours is running any more


def test_pid_file_of_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", tmp_path / "run", tmp_path / "ghost.log")
    proc.pid_file.parent.mkdir(parents=True)
    # pid 1 exists, but it did not start at tick 1: a recycled pid must not be killed.
    proc.pid_file.write_text(json.dumps({"pid": 1, "start": 1}))
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert proc.stop(timeout_s=1) is False


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = ManagedProcess("stubborn", tmp_path / "run", tmp_path / "stubborn.log")
    proc.start(LaunchSpec(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]))
    deadline = time.monotonic() + 5
    while "ready" not in tail(proc.log_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.stop(timeout_s=0.5) is True
    assert proc.pid() is None


def test_tail_of_a_missing_log() -> None:
    assert tail(Path("/nonexistent/log")) == "(no log written)"
