"""Running a service entry point as a real process for a test, until it answers /health/ready."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from commerce_devstack.local_shop import free_ports

__all__ = ["free_ports", "start_service", "stop"]


def start_service(module: str, env: dict[str, str], http_port: int) -> subprocess.Popen[str]:
    """`python -m <module> serve`; returns once it is ready, fails with its output if not."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/health/ready", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{module} never became ready:\n{output[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
