"""What the node leaves behind once its servers are stopped, or after a run that was killed:
the pods' processes (in the node's cgroups), containerd's shims (their own sessions, so
stopping containerd's process group does not reach them) and the mounts under the state
folder (container root filesystems, network namespaces, Secret volumes). Clearing them is
what lets `down` remove the cgroups, the bridge and the folders afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from commerce_devstack.node.network import (
    BRIDGE,
    CGROUP_ROOT,
    GUARD,
    OWNER,
    HostNetwork,
    NodeOwnedElsewhere,
    cgroup_hierarchies,
    cgroup_processes,
    node_owner,
)
from commerce_devstack.settings import StackSettings


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def shim_processes(containerd_socket: Path) -> list[int]:
    """containerd-shim processes started for our containerd (their command line names its
    socket); never those of another containerd on the machine."""
    wanted = str(containerd_socket).encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            cmdline = _cmdline(int(entry.name))
            if b"containerd-shim" in cmdline and wanted in cmdline:
                found.append(int(entry.name))
    return found


def kill_pods(containerd_socket: Path, timeout_s: float = 20.0) -> list[int]:
    """SIGKILLs the pods' processes, then the shims; returns what survived."""
    deadline = time.monotonic() + timeout_s
    while (pids := cgroup_processes()) and time.monotonic() < deadline:
        _kill(pids)
        time.sleep(0.2)
    while (shims := shim_processes(containerd_socket)) and time.monotonic() < deadline:
        _kill(shims)
        time.sleep(0.2)
    return cgroup_processes() + shim_processes(containerd_socket)


def mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any of `roots`, deepest first."""
    prefixes = [str(root.resolve()) for root in roots]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces and the like octal-escaped.
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_under(*roots: Path) -> list[str]:
    """Detaches every mount below `roots`; returns those still mounted."""
    for point in mounts_under(*roots):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    return mounts_under(*roots)


def processes_naming(state_dir: Path) -> list[int]:
    """Processes whose command line names the state folder: its servers, shims and pods."""
    state = str(state_dir.resolve()).encode()
    return [
        int(entry.name)
        for entry in os.scandir("/proc")
        if entry.name.isdigit() and state in _cmdline(int(entry.name))
    ]


def release_abandoned_node(settings: StackSettings) -> None:
    """Another stack's node that nothing runs any more (its session or machine ended without
    `make down`) is undone from its own record, so that this stack can have the node. A node
    whose servers or pods still run is left alone, and `up` refuses to start a second one."""
    owner = node_owner()
    if not owner or Path(owner) == settings.state_dir.resolve():
        return
    if not (Path(owner) / "node" / "host.json").exists():
        return
    if processes_naming(Path(owner)) or cgroup_processes():
        return
    problems = [f"still mounted: {point}" for point in unmount_under(Path(owner))]
    problems += HostNetwork(settings, Path(owner)).restore()
    if problems:
        raise NodeOwnedElsewhere(f"undoing the abandoned node of {owner}", "; ".join(problems))


def host_leftovers(state_dir: Path) -> list[str]:
    """What of a node is still on the host (empty after a complete `down`): its bridge and
    routes, iptables rules, cgroups, ownership marker, processes naming the state folder and
    mounts under it."""
    found = []
    links = subprocess.run(["ip", "link", "show"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    found += [f"bridge {BRIDGE}" for line in links.splitlines() if f" {BRIDGE}:" in line]
    found += [f"route {line}" for line in routes.splitlines() if f"dev {BRIDGE}" in line]
    for tool in ("iptables-save", "ip6tables-save"):
        rules = subprocess.run([tool], capture_output=True, text=True).stdout.splitlines()
        found += [f"{tool}: {line}" for line in rules if "KUBE-" in line or GUARD in line]
    roots = [hierarchy / CGROUP_ROOT for hierarchy in cgroup_hierarchies()]
    found += [f"cgroup {root}" for root in roots if root.exists()]
    if OWNER.exists():
        found.append(str(OWNER))
    for pid in processes_naming(state_dir):
        found.append(f"pid {pid}: {_cmdline(pid)[:120]!r}")
    found += [f"mounted: {point}" for point in mounts_under(state_dir)]
    return found
