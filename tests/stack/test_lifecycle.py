"""The stack tool itself: idempotent up, clean down, clear port clashes, no orphans on failure.

Each test runs `commerce-stack` in its own state folder on free ports, so the shared stack the
other tests use is never touched. The binaries come from the same cache.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from commerce_devstack.pki import ensure_pki
from commerce_devstack.process import proc_stat
from tests.stack.processes import free_ports


def _state_of(out: str, component: str) -> str:
    """The state column of a component's row in the summary table."""
    match = re.search(rf"│ {re.escape(component)}\s+│ (\w+)", out)
    assert match, out
    return match.group(1)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    stat = proc_stat(pid)
    return stat is not None and stat.running


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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "(gone)"


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
    names = (
        "COMMERCE_STACK_FERRETDB_PORT",
        "COMMERCE_STACK_ETCD_PORT",
        "COMMERCE_STACK_ETCD_PEER_PORT",
        "COMMERCE_STACK_APISERVER_PORT",
        "COMMERCE_STACK_CONTROLLER_MANAGER_PORT",
    )
    ports = dict(zip(names, map(str, free_ports(len(names))), strict=True))
    # Loopback only: the node (its bridge, chains, cgroups) is one per machine and the shared
    # stack's; these servers need none of it.
    t = Tool(tmp_path / "state", {**ports, "COMMERCE_STACK_NODE_ADDRESS": "127.0.0.1"})
    yield t
    code, out = t("down")  # whatever a failed assertion left running
    # A stopped process may take a moment to leave /proc on a loaded machine; one still there
    # after that is a leak (its command line says which).
    deadline = time.monotonic() + 10
    while (left := _processes_mentioning(str(t.state))) and time.monotonic() < deadline:
        time.sleep(0.2)
    # down's own account goes with a leak: a leak seen once under load told nothing without it.
    assert {pid: _cmdline(pid) for pid in left} == {}, f"down exited {code}:\n{out}"


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
    assert _state_of(out, "ferretdb") == "healthy"

    code, out = tool("down", "--only", "ferretdb")
    assert code == 0, out
    assert tool.pid("ferretdb") is None
    assert not _listening(port)
    assert not _alive(first)

    code, out = tool("status", "--only", "ferretdb")
    assert code == 1
    assert _state_of(out, "ferretdb") == "stopped"


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
    # A broken serving certificate makes kube-apiserver exit at once, after etcd (its
    # dependency) was started and found healthy by this same run.
    pki = tool.state / "kube" / "pki"
    ensure_pki(pki, ["127.0.0.1"])
    (pki / "apiserver.crt").write_text("not a certificate\n")
    code, out = tool("up", "--only", "kube-apiserver")
    assert code == 1, out
    flat = " ".join(out.split())
    assert re.search(r"etcd +ok: healthy", out), out
    assert "kube-apiserver: exited with status" in flat
    assert f"last lines of {tool.state / 'logs' / 'kube-apiserver.log'}" in flat
    assert "were stopped again" in flat
    assert tool.pid("etcd") is None
    assert tool.pid("kube-apiserver") is None
    for name in ("COMMERCE_STACK_ETCD_PORT", "COMMERCE_STACK_APISERVER_PORT"):
        assert not _listening(int(tool.env[name]))
    assert _processes_mentioning(str(tool.state)) == []


def test_partial_up_and_down_keep_the_other_endpoints(tool: Tool) -> None:
    assert tool("up", "--only", "ferretdb")[0] == 0
    assert tool("up", "--only", "etcd")[0] == 0
    listed = json.loads((tool.state / "endpoints.json").read_text())["components"]
    assert set(listed) == {"ferretdb", "etcd"}

    code, out = tool("down", "--only", "etcd")
    assert code == 0, out
    listed = json.loads((tool.state / "endpoints.json").read_text())["components"]
    assert set(listed) == {"ferretdb"}
    assert tool.pid("ferretdb") is not None


def test_a_server_running_with_other_settings_is_not_trusted(tool: Tool) -> None:
    assert tool("up", "--only", "ferretdb")[0] == 0
    (other,) = free_ports(1)
    code, out = tool("up", "--only", "ferretdb", extra={"COMMERCE_STACK_FERRETDB_PORT": str(other)})
    assert code == 1
    assert "running with other settings" in " ".join(out.split())
    assert not _listening(other)
