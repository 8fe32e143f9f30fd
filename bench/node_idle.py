"""What the stack's Kubernetes node costs when nothing happens: memory (PSS, so pages shared
between processes count once) and CPU of each of its components over a window, with the shop's
pods and the stack's other servers beside them for scale.

Processes are found the way the stack knows them: the servers by their pid files (with their
children), the containerd shims by the socket they name, every pod's processes by their cgroup
under the node's cgroup root, named after their pod. CPU is the processes' user + system time
over the window, as a share of one core.
Results: bench/results/node_idle.json, docs/benchmarks/node-idle.md.
Run: `.venv/bin/python bench/node_idle.py [--seconds 60]` with `make up`'s shop running and
nothing else using it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commerce_devstack import endpoints
from commerce_devstack.components.containerd import socket_path
from commerce_devstack.node.leftovers import shim_processes
from commerce_devstack.node.network import cgroup_processes
from commerce_devstack.settings import StackSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "node_idle.json"
DOC = ROOT / "docs" / "benchmarks" / "node-idle.md"
TICK = os.sysconf("SC_CLK_TCK")
NODE = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "containerd",
)
SERVERS = ("mariadb", "kafka", "connect", "elasticsearch", "ferretdb")
POD_UID = re.compile(r"pod([0-9a-f-]{36})")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            tree[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    return tree


def _with_descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in tree.get(parent, [])]
        found += frontier
    return found


def _pid_file(settings: StackSettings, component: str) -> int | None:
    try:
        return int(json.loads((settings.run_dir / f"{component}.pid").read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _pod_names(settings: StackSettings) -> dict[str, str]:
    """Pod UID -> namespace/name."""
    stack = endpoints.load(settings)
    kube = stack["kube-apiserver"]
    listed = subprocess.run(
        [kube["kubectl"], f"--kubeconfig={kube['kubeconfig']}", "get", "pods", "-A", "-o=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {
        p["metadata"]["uid"]: f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in json.loads(listed)["items"]
    }


def _pod_of(pid: int) -> str | None:
    try:
        found = POD_UID.search(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError:
        return None
    return found[1] if found else None


def groups(settings: StackSettings) -> dict[str, list[int]]:
    """Component or pod -> its processes."""
    tree = _children()
    found: dict[str, list[int]] = {}
    for component in (*NODE, *SERVERS):
        pid = _pid_file(settings, component)
        if pid is not None:
            found[component] = _with_descendants(pid, tree)
    found["containerd shims"] = shim_processes(socket_path(settings))
    names = _pod_names(settings)
    for pid in cgroup_processes():
        uid = _pod_of(pid)
        if uid is None:
            continue
        # Named after the Deployment: a pod's name is <deployment>-<template hash>-<suffix>.
        name = names.get(uid, f"{uid}-?-?").rsplit("-", 2)[0]
        found.setdefault(f"pod {name}", []).append(pid)
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def _pss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
        total += int(found[1]) if found else 0
    return total / 1024


def measure(settings: StackSettings, seconds: float) -> list[dict[str, Any]]:
    found = groups(settings)
    before = {name: _cpu_seconds(pids) for name, pids in found.items()}
    began = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    rows = []
    for name, pids in found.items():
        rows.append(
            {
                "name": name,
                "kind": "node"
                if name in NODE
                or name == "containerd shims"
                or name.startswith(("pod kube-system/", "pod ingress/"))
                else "server"
                if name in SERVERS
                else "pod",
                "processes": len(pids),
                "pss_mib": round(_pss_mib(pids), 1),
                "cpu_percent_of_a_core": round(
                    100 * (_cpu_seconds(pids) - before[name]) / elapsed, 2
                ),
            }
        )
    return rows


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# The node at rest",
        "",
        "Generated by bench/node_idle.py; raw results in bench/results/node_idle.json.",
        "",
        f"Machine: {m['cpus']} cores, kernel {m['kernel']}, load average "
        f"{m['load_average_at_start']} at the start, {m['at']}. Window: {doc['seconds']:.0f} s "
        "with `make up`'s shop running and no requests. Memory is PSS (a page shared by "
        "several processes counted once, split between them); CPU is user + system time over "
        "the window, in percent of one core.",
        "",
    ]
    for kind, title in (
        ("node", "The node's components"),
        ("pod", "The shop's pods"),
        ("server", "The stack's servers, for scale"),
    ):
        rows = [r for r in doc["rows"] if r["kind"] == kind]
        lines += [
            f"## {title}",
            "",
            "| component | processes | memory MiB | CPU % of a core |",
            "|---|---|---|---|",
            *(
                f"| {r['name']} | {r['processes']} | {r['pss_mib']} | "
                f"{r['cpu_percent_of_a_core']} |"
                for r in sorted(rows, key=lambda r: -r["pss_mib"])
            ),
            f"| **total** | {sum(r['processes'] for r in rows)} | "
            f"{sum(r['pss_mib'] for r in rows):.0f} | "
            f"{sum(r['cpu_percent_of_a_core'] for r in rows):.1f} |",
            "",
        ]
    return "\n".join([*lines, *doc.get("notes", []), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    settings = StackSettings()
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "seconds": args.seconds,
        "rows": measure(settings, args.seconds),
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    DOC.write_text(_markdown(doc))
    print(DOC.read_text())


if __name__ == "__main__":
    main()
