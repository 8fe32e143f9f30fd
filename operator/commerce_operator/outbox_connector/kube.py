"""The Kubernetes calls of the OutboxConnector reconciler: read the credentials Secret, write
status and post Events (through the operator's shared `kube` module), remove the restart
annotation. The `kubernetes` client is synchronous, so every call runs in a worker thread."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from contextlib import suppress
from functools import partial
from typing import Any, cast

from kubernetes import client

from commerce_operator import kube
from commerce_operator.resource import GROUP, RESTART_ANNOTATION, VERSION

PLURAL = "outboxconnectors"
OUTBOX_CONNECTOR = kube.kind_of(f"{GROUP}/{VERSION}", "OutboxConnector")
log = logging.getLogger(__name__)


class SecretMissing(Exception):
    pass


class KubeApi:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._objects = client.CustomObjectsApi(api)

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
        with suppress(kube.NotFound):
            await asyncio.to_thread(
                kube.patch_status, self._api, OUTBOX_CONNECTOR, namespace, name, dict(status)
            )

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
        post = partial(
            kube.post_event,
            self._api,
            involved,
            reason=reason,
            message=message,
            warning=kind == "Warning",
        )
        try:
            await asyncio.to_thread(post)
        except Exception:  # an Event is informative only
            log.warning("could not post the event %s %s", reason, message, exc_info=True)
