"""The stack tool itself: idempotent up, clean down, clear port clashes, no orphans on failure.

Each test runs `commerce-stack` in its own state folder on free ports, so the shared stack the
other tests use is never touched. The binaries come from the same cache.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class Tool:
    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.state = state
        self.env = {**os.environ, "COMMERCE_STACK_STATE_DIR": str(state), **env}

    def __call__(self, *args: str, extra: dict[str, str] | None = None) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "commerce_devstack", *args],
            env={**self.env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    def pid(self, component: str) -> int | None:
        try:
            return int(json.loads((self.state / "run" / f"{component}.pid").read_text())["pid"])
        except FileNotFoundError:
            return None


@pytest.fixture
def tool(tmp_path: Path) -> Iterator[Tool]:
    ports = {
        name: str(_free_port())
        for name in (
            "COMMERCE_STACK_FERRETDB_PORT",
            "COMMERCE_STACK_ETCD_PORT",
            "COMMERCE_STACK_ETCD_PEER_PORT",
            "COMMERCE_STACK_APISERVER_PORT",
        )
    }
    t = Tool(tmp_path / "state", ports)
    yield t
    t("down")  # whatever a failed assertion left running
    assert _processes_mentioning(str(t.state)) == []


def test_up_twice_is_harmless_and_down_leaves_nothing(tool: Tool) -> None:
    port = int(tool.env["COMMERCE_STACK_FERRETDB_PORT"])
    code, out = tool("up", "--only", "ferretdb")
    assert code == 0, out
    first = tool.pid("ferretdb")
    assert first is not None
    endpoints = json.loads((tool.state / "endpoints.json").read_text())
    assert endpoints["components"]["ferretdb"]["uri"] == f"mongodb://127.0.0.1:{port}/"

    code, out = tool("up", "--only", "ferretdb")
    assert code == 0, out
    assert "already running" in out
    assert tool.pid("ferretdb") == first

    code, out = tool("status", "--only", "ferretdb")
    assert code == 0, out
    assert "healthy" in out

    code, out = tool("down", "--only", "ferretdb")
    assert code == 0, out
    assert tool.pid("ferretdb") is None
    assert not _listening(port)
    assert not _alive(first)

    code, out = tool("status", "--only", "ferretdb")
    assert code == 1
    assert "stopped" in out


def test_port_taken_by_someone_else_is_named_not_crashed(tool: Tool) -> None:
    port = int(tool.env["COMMERCE_STACK_FERRETDB_PORT"])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        code, out = tool("up", "--only", "ferretdb")
    assert code == 1
    flat = " ".join(out.split())
    assert f"port {port} is already in use by pid {os.getpid()}" in flat
    assert "COMMERCE_STACK_FERRETDB_PORT" in flat
    assert "Traceback" not in out
    assert tool.pid("ferretdb") is None


def test_failed_start_names_component_shows_log_and_stops_the_rest(tool: Tool) -> None:
    # kube-apiserver needs a few seconds to become ready: half a second is a certain failure,
    # after etcd (its dependency) has been started by this same run.
    code, out = tool(
        "up", "--only", "kube-apiserver", extra={"COMMERCE_STACK_START_TIMEOUT_S": "0.5"}
    )
    assert code == 1, out
    flat = " ".join(out.split())
    assert "not healthy after" in flat
    assert "last lines of" in flat
    assert str(tool.state / "logs") in flat
    assert "were stopped again" in flat
    assert tool.pid("etcd") is None
    assert tool.pid("kube-apiserver") is None
    for name in ("COMMERCE_STACK_ETCD_PORT", "COMMERCE_STACK_APISERVER_PORT"):
        assert not _listening(int(tool.env[name]))
    assert _processes_mentioning(str(tool.state)) == []
