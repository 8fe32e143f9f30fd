"""One replica of a Deployment as a local process: its init containers run first, one after
the other, each to a successful exit; then the container's command, args and env, probed for
readiness like the kubelet would (HTTP GET on its mapped port). A process that exits (or an init
container that fails) is restarted with capped exponential backoff; a restarted service does not
run its init containers again. Stopped with SIGTERM, then SIGKILL; and sent SIGTERM by the
kernel if the runtime itself dies without stopping it (Linux parent-death signal), so a
runtime killed with SIGKILL leaves no orphans behind."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
STOP_GRACE_S = 10.0

log = logging.getLogger(__name__)

# util-linux's setpriv sets the parent-death signal and then execs the command, so the process
# keeps its pid; it runs on the runtime's event-loop thread, whose end the signal is tied to.
# Without it (not Linux) processes still stop with the runtime, only not when it is SIGKILLed.
_SETPRIV = shutil.which("setpriv")


def _with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    if _SETPRIV is None:
        return list(argv)
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]


@dataclass(frozen=True)
class InitStep:
    """An init container: run to a successful exit before the service starts."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]


@dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    env: dict[str, str]
    # The port and path of the readiness probe, mapped to loopback; None: ready once started.
    probe: tuple[int, str] | None
    log: Path  # the init containers' output too, before the service's
    init: tuple[InitStep, ...] = ()


@dataclass
class Replica:
    name: str
    template: str
    launch: Launch
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    restarts: int = 0
    next_start: float = 0.0
    initialized: int = 0  # init containers that succeeded

    @property
    def initializing(self) -> InitStep | None:
        """The init container to run (or running), None once all succeeded."""
        init = self.launch.init
        return init[self.initialized] if self.initialized < len(init) else None

    def start(self) -> None:
        step = self.initializing
        argv, env = (self.launch.argv, self.launch.env) if step is None else (step.argv, step.env)
        self.launch.log.parent.mkdir(parents=True, exist_ok=True)
        with self.launch.log.open("ab") as out:
            self.proc = subprocess.Popen(
                _with_parent_death_signal(argv),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() reaches its children too
            )
        self.ready = False

    async def tend(self, now: float, http: httpx.AsyncClient) -> None:
        """Moves on from a finished init container, restarts a process that failed (after its
        backoff) and refreshes readiness."""
        code = None if self.proc is None else self.proc.poll()
        if code is not None:
            step = self.initializing
            self.proc = None
            self.ready = False
            if step is not None and code == 0:
                self.initialized += 1
                self.next_start = now  # the next one, or the service, at once
            else:
                self.restarts += 1
                delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (self.restarts - 1))
                self.next_start = now + delay
                if step is not None:
                    log.warning(
                        "%s: init container %s exited %s, again in %.0f s (log: %s)",
                        self.name,
                        step.name,
                        code,
                        delay,
                        self.launch.log,
                    )
        if self.proc is None:
            if now >= self.next_start:
                self.start()
            return
        self.ready = self.initializing is None and await self._probe(http)

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
