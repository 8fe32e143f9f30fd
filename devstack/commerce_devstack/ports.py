"""Who listens on a loopback TCP port, so a clash is reported as such rather than as a crash."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def is_local(host: str) -> bool:
    """Whether `host` is an address of this machine (binding to it succeeds)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            return True
    except OSError:
        return False


def is_listening(host: str, port: int, timeout_s: float = 0.5) -> bool:
    # An address that is not ours (the node address once its bridge is gone) would be routed
    # off the machine: nothing of ours can listen there, so never connect.
    if not is_local(host):
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def listener_pids(port: int) -> list[int]:
    """Pids whose open sockets listen on `port` (only those this user may inspect)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    found.append(int(entry.name))
                    break
        except OSError:
            continue
    return found


def describe_listener(port: int) -> str:
    pids = listener_pids(port)
    if not pids:
        return "another process (not visible to this user)"
    names = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            cmd = "?"
        names.append(f"pid {pid} ({os.path.basename(cmd)})")
    return ", ".join(names)
