"""The Kubernetes calls of the CatalogIndex reconciler, through the operator's shared `kube`
module: read the resource and its source Secrets (keys and resourceVersion only, never a
value), apply the sync worker's objects, read its Deployment, write status, post Events. The
`kubernetes` client is blocking, so every call runs in a worker thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from kubernetes import client

from commerce_operator import kube
from commerce_operator.bindings import SecretInfo
from commerce_operator.resource import API_VERSION, ResourceMeta

PLURAL = "catalogindexes"
CATALOG_INDEX = kube.kind_of(API_VERSION, "CatalogIndex")
SECRET = kube.kind_of("v1", "Secret")
DEPLOYMENT = kube.kind_of("apps/v1", "Deployment")

log = logging.getLogger(__name__)


class KubeApi:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    async def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(kube.get_or_none, self._api, CATALOG_INDEX, namespace, name)

    async def secrets(self, namespace: str, names: Iterable[str]) -> dict[str, SecretInfo]:
        """The named Secrets that exist: their keys and resourceVersion."""
        found: dict[str, SecretInfo] = {}
        for name in sorted(set(names)):
            secret = await asyncio.to_thread(kube.get_or_none, self._api, SECRET, namespace, name)
            if secret is not None:
                keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
                version = str(secret["metadata"].get("resourceVersion", ""))
                found[name] = SecretInfo(frozenset(keys), version)
        return found

    async def apply(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Server-side apply, in order (the ServiceAccount before the Deployment using it)."""
        for obj in objects:
            await asyncio.to_thread(kube.apply, self._api, obj)

    async def deployment(self, meta: ResourceMeta, name: str) -> dict[str, Any] | None:
        """The worker's Deployment as it is now, None when absent or not this resource's."""
        found = await asyncio.to_thread(
            kube.get_or_none, self._api, DEPLOYMENT, meta.namespace, name
        )
        if found is None:
            return None
        owners = found["metadata"].get("ownerReferences") or ()
        return found if any(ref.get("uid") == meta.uid for ref in owners) else None

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """A merge patch of the status subresource; a resource deleted meanwhile is left."""
        try:
            await asyncio.to_thread(
                kube.patch_status, self._api, CATALOG_INDEX, namespace, name, dict(status)
            )
        except kube.NotFound:
            log.debug("CatalogIndex %s/%s is gone; status not written", namespace, name)

    async def event(
        self, involved: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        """A core/v1 Event on the resource; failing to post one never fails a reconcile."""
        post = partial(
            kube.post_event, self._api, involved, reason=reason, message=message, warning=warning
        )
        try:
            await asyncio.to_thread(post)
        except Exception:  # an Event is informative only
            log.warning("could not post the event %s %s", reason, message, exc_info=True)
