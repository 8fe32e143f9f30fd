"""Components install Debian packages from parallel threads: apt-get holds dpkg's lock, so
two at once fail (seen on a fresh machine: MariaDB's and containerd's installs collided).
`ensure_packages` runs one apt-get at a time, fetches the package lists once, waits for a lock
another process holds, and skips a package another thread brought."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from commerce_devstack.install import debian


def test_parallel_installs_never_overlap_and_a_package_is_installed_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed: set[str] = set()
    running = 0
    overlaps = 0
    installs: list[tuple[str, ...]] = []
    updates: list[tuple[str, ...]] = []
    guard = threading.Lock()

    def which(binary: str) -> str | None:
        return f"/usr/bin/{binary}" if binary in installed else None

    def run(argv: Sequence[str], **_: Any) -> str:
        nonlocal running, overlaps
        with guard:
            running += 1
            overlaps += running > 1
        time.sleep(0.02)  # long enough for the other threads to arrive
        if "install" in argv:
            packages = argv[argv.index("--no-install-recommends") + 1 :]
            installs.append(tuple(packages))
            installed.update(packages)
        else:
            updates.append(tuple(argv))
        with guard:
            running -= 1
        return ""

    monkeypatch.setattr(debian, "_which", which)
    monkeypatch.setattr(debian, "run", run)
    monkeypatch.setattr(debian, "POLICY_RC_D", tmp_path / "policy-rc.d")
    monkeypatch.setattr(debian, "_updated", False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)

    wanted = ["iptables", "iptables", "containerd", "mariadbd", "iptables"]
    found: list[str] = []
    threads = [
        threading.Thread(target=lambda b=b: found.append(debian.ensure_packages(b, [b])))
        for b in wanted
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert overlaps == 0
    assert sorted(installs) == [("containerd",), ("iptables",), ("mariadbd",)]
    assert len(updates) == 1  # the package lists once
    assert all("DPkg::Lock::Timeout=300" in argv for argv in updates)
    assert sorted(found) == sorted(f"/usr/bin/{b}" for b in wanted)
