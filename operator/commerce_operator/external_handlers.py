"""What the Kopf handlers of the kinds that drive outside systems share (OutboxConnector: Kafka
and Kafka Connect; CatalogIndex: Elasticsearch): their clients, made once from the operator's
settings; the count per resource of passes in a row that did not finish; the deletion handler's
clean-up. Each kind's `run` (how a pass reads its resource and turns the report into Kopf's
errors) stays in its own handlers module."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import kopf
from kubernetes import client

log = logging.getLogger(__name__)


class Context(Protocol):
    """What the handlers need of the runtime's `OperatorContext`."""

    api: client.ApiClient
    resync_seconds: float

    def lock(self, uid: str) -> asyncio.Lock: ...

    def forget(self, uid: str) -> None: ...

    def retry_delay(self, retry: int) -> float: ...


class Clients(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=Clients)


class ExternalHandlers(ABC, Generic[C]):
    kind: ClassVar[str]
    # Errors of the outside systems and of the API server: retried with the runtime's backoff.
    temporary: ClassVar[tuple[type[Exception], ...]]

    def __init__(self, context: Context) -> None:
        self.context = context
        self._clients: C | None = None
        # Passes in a row that did not finish, per resource: Kopf counts retries for change
        # handlers but not for timers, and both share one backoff.
        self.failures: dict[str, int] = {}

    @abstractmethod
    def make_clients(self) -> C:
        """The clients from the operator's settings; ValueError when a setting is wrong."""

    @abstractmethod
    async def finalize(self, body: Mapping[str, Any], clients: C) -> list[str]:
        """Removes what the resource owns outside; returns what was removed, in words."""

    def clients(self) -> C:
        if self._clients is None:
            try:
                self._clients = self.make_clients()
            except ValueError as exc:
                # Fixed by configuring the operator: retried, not stalled.
                raise kopf.TemporaryError(f"operator settings: {exc}", delay=60) from exc
        return self._clients

    async def close(self) -> None:
        if self._clients is not None:
            await self._clients.close()
            self._clients = None

    async def delete(self, body: kopf.Body, retry: int) -> None:
        """Also when paused: deleting the resource is an explicit request, and a paused
        resource must not wedge its namespace's deletion."""
        clients = self.clients()
        uid = body["metadata"]["uid"]
        try:
            async with self.context.lock(uid):
                removed = await self.finalize(body, clients)
        except self.temporary as exc:
            delay = self.context.retry_delay(retry)
            raise kopf.TemporaryError(f"clean-up failed: {exc}", delay=delay) from exc
        self.forget(uid)
        meta = body["metadata"]
        log.info(
            "%s %s/%s removed: %s",
            self.kind,
            meta["namespace"],
            meta["name"],
            "; ".join(removed) or "nothing was left",
        )

    def forget(self, uid: str) -> None:
        self.context.forget(uid)
        self.failures.pop(uid, None)
