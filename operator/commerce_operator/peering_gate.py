"""Whether this replica may reconcile: open while Kopf's peering lets it run.

Kopf pauses a replica (its watch streams, its own handlers) while another live peer has a
higher priority, or one of the same priority is there too; it does not tell anything outside
its handlers. The work queues (`workqueue.py`) run outside them, so they follow the same
record Kopf does: each replica's keep-alive in the status of the peering object
(`{identity: {priority, lifetime, lastseen}}`, kopf/_core/engines/peering.py), read every few
seconds and judged by Kopf's rule. The gate starts closed and opens after the first look;
while the API server cannot be read it keeps what it last knew.

Why not Kopf's timers, which Kopf itself pauses: every timer puts Kopf's finalizer on the
resource, so deleting a resource or its namespace would wait for the operator; Kopf's
maintainer decided against timers without finalizers (nolar/kopf#896), and editing Kopf's
registry to drop it was not a supported way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

# Peering records, one per peering object Kopf keeps (cluster-wide, or per watched namespace).
ReadPeerings = Callable[[], Awaitable[list[Mapping[str, Any]]]]


def may_run(
    peerings: Iterable[Mapping[str, Any]], identity: str, priority: int, now: datetime
) -> bool:
    """Kopf's rule: pause while any other live peer has a higher or the same priority."""
    for status in peerings:
        for peer, record in status.items():
            if peer == identity or not isinstance(record, Mapping):
                continue
            lastseen = record.get("lastseen")
            if lastseen is None:
                continue  # Kopf counts a peer without one as just seen; it writes one always
            seen = datetime.fromisoformat(str(lastseen).replace("Z", "+00:00"))
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=UTC)
            alive = seen + timedelta(seconds=int(record.get("lifetime", 60))) > now
            if alive and int(record.get("priority", 0)) >= priority:
                return False
    return True


class PeeringGate:
    def __init__(
        self,
        read: ReadPeerings,
        identity: str,
        priority: int,
        *,
        interval_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._read = read
        self._identity = identity
        self._priority = priority
        self._interval = interval_seconds
        self._clock = clock
        self._open = asyncio.Event()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait(self) -> None:
        await self._open.wait()

    async def look(self) -> None:
        try:
            peerings = await self._read()
        except Exception as exc:  # keep what was known: the queues wait or go on as they did
            log.warning("could not read the peering objects: %s", exc)
            return
        if may_run(peerings, self._identity, self._priority, self._clock()):
            if not self._open.is_set():
                log.info("reconciling: no peer with a higher or the same priority")
            self._open.set()
        else:
            if self._open.is_set():
                log.info("pausing the reconciles: a peer with a higher priority runs")
            self._open.clear()

    async def run(self) -> None:
        while True:
            await self.look()
            await asyncio.sleep(self._interval)
