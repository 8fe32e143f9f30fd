"""One replica of a Deployment as a local process: started with its container's command, args
and env; probed for readiness like the kubelet would (HTTP GET on its mapped port); restarted
with capped exponential backoff when it exits; stopped with SIGTERM, then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    env: dict[str, str]
    # The port and path of the readiness probe, mapped to loopback; None: ready once started.
    probe: tuple[int, str] | None
    log: Path


@dataclass
class Replica:
    name: str
    template: str
    launch: Launch
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        self.launch.log.parent.mkdir(parents=True, exist_ok=True)
        with self.launch.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.launch.argv),
                env=self.launch.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() reaches its children too
            )
        self.ready = False

    async def tend(self, now: float, http: httpx.AsyncClient) -> None:
        """Restarts a process that exited (after its backoff) and refreshes readiness."""
        if self.proc is not None and self.proc.poll() is not None:
            self.restarts += 1
            delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (self.restarts - 1))
            self.next_start = now + delay
            self.proc = None
            self.ready = False
        if self.proc is None:
            if now >= self.next_start:
                self.start()
            return
        self.ready = await self._probe(http)

    async def _probe(self, http: httpx.AsyncClient) -> bool:
        if self.launch.probe is None:
            return True
        port, path = self.launch.probe
        try:
            return (await http.get(f"http://127.0.0.1:{port}{path}", timeout=1.0)).is_success
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        """Blocks up to STOP_GRACE_S: call it from a thread in async code."""
        proc, self.proc, self.ready = self.proc, None, False
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
