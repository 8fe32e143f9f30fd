"""Running a service entry point as a real process for a test, until it answers /health/ready."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from typing import IO

import httpx

from commerce_devstack.local_shop import free_ports

__all__ = ["free_ports", "output", "start_service", "stop"]

# Each started process's output file, by pid.
_OUTPUTS: dict[int, IO[str]] = {}


def start_service(module: str, env: dict[str, str], http_port: int) -> subprocess.Popen[str]:
    """`python -m <module> serve`; returns once it is ready, fails with its output if not.
    The output goes to a file: a pipe nobody reads fills up and stops the process."""
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  # open as long as the process runs
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _OUTPUTS[proc.pid] = log
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/health/ready", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{module} never became ready:\n{output(proc)[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def output(proc: subprocess.Popen[str]) -> str:
    """What the process wrote so far."""
    log = _OUTPUTS[proc.pid]
    log.seek(0)
    return log.read()
