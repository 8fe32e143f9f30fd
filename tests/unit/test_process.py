from __future__ import annotations

import json
import os
import time
from pathlib import Path

from commerce_devstack.process import LaunchSpec, ManagedProcess, proc_stat, tail


def _alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat.running


def _wait_for(log: Path, text: str) -> str:
    deadline = time.monotonic() + 5
    while text not in tail(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    return tail(log)


def test_start_records_pid_and_stop_ends_the_whole_group(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "sleeper.log")
    # The shell forks a child: stop must end the child too, not only the shell.
    pid = proc.start(LaunchSpec(["sh", "-c", "sleep 60 & echo child $!; wait"]), "fp")
    child = int(_wait_for(proc.log_file, "child").split("child ")[1].split()[0])
    record = proc.record()
    assert record is not None
    assert (record.pid, record.fingerprint) == (pid, "fp")
    assert _alive(child)

    assert proc.stop(timeout_s=5) is True
    assert not _alive(pid)
    assert not _alive(child)
    assert not proc.pid_file.exists()
    assert proc.stop(timeout_s=1) is False  # nothing of ours is running any more


def test_a_group_member_that_ignores_sigterm_gets_sigkill(tmp_path: Path) -> None:
    proc = ManagedProcess("stubborn", tmp_path / "run", tmp_path / "stubborn.log")
    # The leader exits on SIGTERM, its child ignores it: the child must not survive `stop`.
    script = "sh -c 'trap \"\" TERM; echo child $$; while :; do sleep 0.1; done' & wait"
    proc.start(LaunchSpec(["sh", "-c", script]), "fp")
    child = int(_wait_for(proc.log_file, "child").split("child ")[1].split()[0])
    assert proc.stop(timeout_s=0.5) is True
    assert not _alive(child)


def test_pid_file_of_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", tmp_path / "run", tmp_path / "ghost.log")
    proc.pid_file.parent.mkdir(parents=True)
    # Our own pid, but a different start time: what a recycled pid looks like.
    me = proc_stat(os.getpid())
    assert me is not None
    proc.pid_file.write_text(json.dumps({"pid": os.getpid(), "start": me.start_ticks + 1}))
    assert proc.record() is None
    assert proc.stop(timeout_s=1) is False
    assert _alive(os.getpid())
    assert not proc.pid_file.exists()


def test_fingerprint_changes_with_the_command_line() -> None:
    base = LaunchSpec(["server", "--port=1"], {"A": "1"})
    assert base.fingerprint() == LaunchSpec(["server", "--port=1"], {"A": "1"}).fingerprint()
    assert base.fingerprint() != LaunchSpec(["server", "--port=2"], {"A": "1"}).fingerprint()
    assert base.fingerprint() != LaunchSpec(["server", "--port=1"], {"A": "2"}).fingerprint()
    assert base.fingerprint({"port": 1}) != base.fingerprint({"port": 2})


def test_tail_of_a_missing_log() -> None:
    assert tail(Path("/nonexistent/log")) == "(no log written)"
