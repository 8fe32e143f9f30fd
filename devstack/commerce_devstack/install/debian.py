"""Debian packages the stack needs (MariaDB), installed by apt-get when missing (as root)."""

from __future__ import annotations

import os
import shutil

from commerce_devstack.install.commands import SetupError, run


def ensure_packages(binary: str, packages: list[str]) -> str:
    """Path of `binary`, installing `packages` first if it is missing."""
    found = shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found:
        return found
    if os.geteuid() != 0:
        raise SetupError(
            f"installing {' '.join(packages)}",
            f"{binary} is not installed; run: sudo apt-get install -y {' '.join(packages)}",
        )
    # RUNLEVEL=1 keeps invoke-rc.d from starting a system-wide server on the default port:
    # the stack runs its own instance.
    env = {"DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    run(["apt-get", "update", "-q"], what="apt-get update", env=env, timeout_s=900)
    run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        what=f"installing {' '.join(packages)}",
        env=env,
        timeout_s=1800,
    )
    found = shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not found:
        raise SetupError(
            f"installing {' '.join(packages)}", f"{binary} still missing after install"
        )
    return found
