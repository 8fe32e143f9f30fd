"""The Kubernetes calls of the OutboxConnector reconciler: read the credentials Secret, write
status, remove the restart annotation, post Events. The `kubernetes` client is synchronous, so
every call runs in a worker thread."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client

from commerce_operator.resource import GROUP, MANAGED_BY, RESTART_ANNOTATION, VERSION

PLURAL = "outboxconnectors"
log = logging.getLogger(__name__)


class SecretMissing(Exception):
    pass


class KubeApi:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._objects = client.CustomObjectsApi(api)
        self._instance = socket.gethostname()

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The Secret's keys and decoded values; SecretMissing when it does not exist."""

        def read() -> dict[str, str]:
            try:
                secret = self._core.read_namespaced_secret(name, namespace)
            except client.ApiException as exc:
                if exc.status == 404:
                    raise SecretMissing(f"Secret {namespace}/{name} not found") from None
                raise
            data = cast(Mapping[str, str], secret.data or {})
            return {k: base64.b64decode(v).decode() for k, v in data.items()}

        return await asyncio.to_thread(read)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """A merge patch of the status subresource; a resource deleted meanwhile is left."""

        def patch() -> None:
            try:
                self._objects.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)}
                )
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

        await asyncio.to_thread(patch)

    async def remove_restart_annotation(self, namespace: str, name: str) -> None:
        def patch() -> None:
            body = {"metadata": {"annotations": {RESTART_ANNOTATION: None}}}
            try:
                self._objects.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, body
                )
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

        await asyncio.to_thread(patch)

    async def event(
        self, involved: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on the resource; failing to post one never fails a reconcile."""
        metadata = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": involved.get("kind", "OutboxConnector"),
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": MANAGED_BY},
            "reportingComponent": MANAGED_BY,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

        def post() -> None:
            self._core.create_namespaced_event(metadata["namespace"], cast(Any, body))

        try:
            await asyncio.to_thread(post)
        except Exception:  # an Event is informative only
            log.warning("could not post the event %s %s", reason, message, exc_info=True)
