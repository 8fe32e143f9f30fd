"""A work queue of resource keys per kind, as controller-runtime's: watch events, periodic
looks and retries all end up here, and workers take the keys from it.

- A key is queued at most once: many events about one resource before a worker takes it
  (its Deployment, ConfigMap and Service applied together) make one reconcile.
- A key is processed by one worker at a time; added meanwhile, it runs once more afterwards.
- `add_after` queues a key later (a retry, the next periodic look); the earliest wins, and a
  run of the key cancels what was scheduled (the run says when to look again).
- Workers take keys only while the gate is open: the replica Kopf's peering lets run
  (`peering_gate.py`); keys wait while it is paused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import Gauge

log = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name
# Processes a key; answers when to look at it again (seconds), None for "on the next event".
Process = Callable[[Key], Awaitable[float | None]]

# A bug in a reconcile must not stop its worker nor forget the key: it is looked at again.
AFTER_A_BUG_S = 60.0

DEPTH = Gauge("commerce_operator_queue_depth", "Resources waiting for a worker, by kind", ["kind"])


class Gate(Protocol):
    async def wait(self) -> None: ...


class AlwaysOpen:
    """The gate of a standalone operator: no peers to defer to."""

    async def wait(self) -> None:
        return None


class WorkQueue:
    def __init__(self, kind: str, process: Process, *, workers: int, gate: Gate) -> None:
        self.kind = kind
        self._process = process
        self._workers = workers
        self._gate = gate
        self._pending: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._again: set[Key] = set()
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}

    def add(self, key: Key) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._pending.put_nowait(key)
            DEPTH.labels(self.kind).set(len(self._queued))

    def add_after(self, key: Key, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        scheduled = self._timers.get(key)
        if scheduled is not None:
            if scheduled[0] <= due:
                return
            scheduled[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._due, key))

    def scheduled(self, key: Key) -> float | None:
        """Seconds until `key` is queued again, None when nothing is scheduled."""
        scheduled = self._timers.get(key)
        return None if scheduled is None else scheduled[0] - asyncio.get_running_loop().time()

    def _due(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def run(self) -> None:
        """Runs the workers until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for number in range(self._workers):
                    group.create_task(self._work(), name=f"{self.kind}-worker-{number}")
        finally:
            for _, handle in self._timers.values():
                handle.cancel()
            self._timers.clear()

    async def _work(self) -> None:
        while True:
            key = await self._pending.get()
            await self._gate.wait()
            self._queued.discard(key)
            DEPTH.labels(self.kind).set(len(self._queued))
            self._active.add(key)
            scheduled = self._timers.pop(key, None)
            if scheduled is not None:
                scheduled[1].cancel()
            try:
                again_in = await self._process(key)
            except Exception:
                log.exception("%s %s/%s: reconcile failed unexpectedly", self.kind, *key)
                again_in = AFTER_A_BUG_S
            finally:
                self._active.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.add(key)
            elif again_in is not None:
                self.add_after(key, again_in)
