"""What the runtime hands to every kind's handlers: the API client, the resync interval, and one
lock per resource so that the reconciles of one object (a change, the periodic resync, an event
of an owned object) never overlap.

A handler module (listed in `commerce_operator.main.HANDLER_MODULES`) exposes
`register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None` and declares its
handlers on that registry (`@kopf.on.create(..., registry=registry)`), closing over `context`.
A fresh registry per operator run keeps runs independent (tests start and restart operators
in one process) and makes the set of handlers exactly the modules listed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import kopf
from kubernetes import client


@dataclass
class OperatorContext:
    api: client.ApiClient
    # Every resource is reconciled at least this often: drift of owned objects, a bound Secret
    # created or rotated, status of what has no watch.
    resync_seconds: float = 60.0
    # Backoff of a temporary error: first delay, doubled per retry, capped.
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 60.0
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)

    def retry_delay(self, retry: int) -> float:
        return float(min(self.retry_max_seconds, self.retry_base_seconds * 2 ** min(retry, 16)))


class HandlerModule(Protocol):
    def register(self, registry: kopf.OperatorRegistry, context: OperatorContext) -> None: ...
