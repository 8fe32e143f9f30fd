"""What the reconcilers ask of the Kubernetes API besides the watches (`cache.py`), as a
protocol: the flows are written against it and unit-tested with an in-memory fake; the
adapter runs the blocking `kubernetes` client calls of `kube.py` in the thread pool.

Reads go through the watched state; the API is read only where the watch may be behind a
write this process made (the driver's re-read) or for what is never watched (a Secret's
values in literal credentials mode, the peering objects).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kubernetes import client

from commerce_operator import kube
from commerce_operator.kube import Kind

Json = dict[str, Any]

log = logging.getLogger(__name__)


class KubeApi(Protocol):
    async def get(self, kind: Kind, namespace: str, name: str) -> Json | None: ...

    async def apply(self, obj: Mapping[str, Any]) -> Json:
        """Server-side apply under the operator's field manager; the object as stored."""
        ...

    async def delete(self, kind: Kind, namespace: str, name: str, uid: str) -> bool:
        """Only if it is still the object `uid`; False when it was gone."""
        ...

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Json | None:
        """A merge patch of the status subresource; None when the object is gone."""
        ...

    async def patch_metadata(
        self, kind: Kind, namespace: str, name: str, metadata: Mapping[str, Any]
    ) -> Json | None:
        """A merge patch of labels or annotations; None when the object is gone."""
        ...

    async def post_event(
        self, subject: Mapping[str, Any], reason: str, message: str, *, warning: bool
    ) -> None:
        """An Event on `subject`; failing to post one never fails a reconcile."""
        ...

    async def secret_values(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's decoded values (literal credentials mode only); None when missing."""
        ...


class KubernetesApi:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    async def get(self, kind: Kind, namespace: str, name: str) -> Json | None:
        return await asyncio.to_thread(kube.get_or_none, self._api, kind, namespace, name)

    async def apply(self, obj: Mapping[str, Any]) -> Json:
        return await asyncio.to_thread(kube.apply, self._api, obj)

    async def delete(self, kind: Kind, namespace: str, name: str, uid: str) -> bool:
        return await asyncio.to_thread(kube.delete, self._api, kind, namespace, name, uid)

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Json | None:
        return await _unless_gone(kube.patch_status, self._api, kind, namespace, name, status)

    async def patch_metadata(
        self, kind: Kind, namespace: str, name: str, metadata: Mapping[str, Any]
    ) -> Json | None:
        return await _unless_gone(kube.patch_metadata, self._api, kind, namespace, name, metadata)

    async def post_event(
        self, subject: Mapping[str, Any], reason: str, message: str, *, warning: bool
    ) -> None:
        try:
            await asyncio.to_thread(
                kube.post_event,
                self._api,
                subject,
                reason=reason,
                message=message,
                warning=warning,
            )
        except Exception as exc:  # an Event is informative only
            log.warning("could not post the event %s: %s", reason, exc)

    async def secret_values(self, namespace: str, name: str) -> dict[str, str] | None:
        found = await self.get(kube.SECRET, namespace, name)
        if found is None:
            return None
        data: Mapping[str, str] = found.get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}


async def _unless_gone(
    patch: Callable[[client.ApiClient, Kind, str, str, Json], Json],
    api: client.ApiClient,
    kind: Kind,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
) -> Json | None:
    """A patch in the thread pool; None when the object is gone."""
    try:
        return await asyncio.to_thread(patch, api, kind, namespace, name, dict(body))
    except kube.NotFound:
        return None
