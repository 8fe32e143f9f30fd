"""Debian packages the stack needs (MariaDB), installed by apt-get when missing (as root)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from commerce_devstack.install.commands import SetupError, run

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# Components install in parallel threads; apt-get holds dpkg's lock, so a second one fails.
_APT = threading.Lock()
_updated = False  # the package lists were fetched by this process
# Waits for dpkg's lock held by another process (a package timer on a new machine).
_APT_GET = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]


def _which(binary: str) -> str | None:
    return shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


@contextmanager
def _no_service_starts() -> Iterator[None]:
    """Package scripts must not start a system-wide server on the port our own instance uses.

    policy-rc.d answering 101 ("action forbidden") is honoured by invoke-rc.d and by
    deb-systemd-invoke alike. An existing policy is left as it is.
    """
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text(
        "#!/bin/sh\n# commerce-stack: no service starts during install\nexit 101\n"
    )
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC_D.unlink(missing_ok=True)


def ensure_packages(binary: str, packages: list[str]) -> str:
    """Path of `binary`, installing `packages` first if it is missing."""
    found = _which(binary)
    if found:
        return found
    names = " ".join(packages)
    if os.geteuid() != 0:
        raise SetupError(
            f"installing {names}",
            f"{binary} is not installed; run: sudo apt-get install -y {names}"
            + (
                " && sudo systemctl disable --now mariadb  (the stack runs its own instance)"
                if binary == "mariadbd"
                else ""
            ),
        )
    with _APT:
        return _install(binary, packages)


def _install(binary: str, packages: list[str]) -> str:
    found = _which(binary)  # again: another thread may have installed it meanwhile
    if found:
        return found
    names = " ".join(packages)
    global _updated
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    with _no_service_starts():
        if not _updated:
            run([*_APT_GET, "update", "-q"], what="apt-get update", env=env, timeout_s=900)
            _updated = True
        run(
            [*_APT_GET, "install", "-y", "-q", "--no-install-recommends", *packages],
            what=f"installing {names}",
            env=env,
            timeout_s=1800,
        )
    found = _which(binary)
    if not found:
        raise SetupError(f"installing {names}", f"{binary} still missing after install")
    return found
