"""Kopf handlers of OutboxConnector: thin, everything else is in reconcile.py.

`register(registry, context)` declares, on the operator run's registry:
- create, update (spec or annotations: the restart and pause annotations count) and resume
  (operator start): reconcile at once;
- a timer every `resync_seconds` (the runtime's, or `OPERATOR_OUTBOX_RESYNC_SECONDS`)
  that repairs drift: a connector config changed or deleted on Connect, a topic deleted, a
  failed task (restarted with the capped backoff);
- deletion (Kopf's finalizer): removes the connector, and the topics under
  `deletionPolicy: Delete`.

A reconcile that did not finish raises `kopf.TemporaryError` with the delay the reconcile chose
(a short one while a connector starts, the restart backoff for a failed one, the runtime's
backoff for Kafka, Connect or Kubernetes errors); a stalled one raises `kopf.PermanentError`
(retrying cannot help until the spec changes; the timer still repairs drift). One reconcile of
a resource at a time (the runtime's lock per uid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client

from commerce_operator import metrics
from commerce_operator.external_handlers import Context, ExternalHandlers
from commerce_operator.outbox_connector.connect_client import ConnectError
from commerce_operator.outbox_connector.kafka_topics import KafkaTopicsError
from commerce_operator.outbox_connector.kube import PLURAL
from commerce_operator.outbox_connector.reconcile import Clients, finalize, reconcile
from commerce_operator.outbox_connector.settings import OutboxSettings, SettingsError
from commerce_operator.resource import GROUP, VERSION

KIND = "OutboxConnector"

TEMPORARY = (client.ApiException, KafkaTopicsError, ConnectError, OSError)


class _Handlers(ExternalHandlers[Clients]):
    kind = KIND
    temporary = TEMPORARY

    def make_clients(self) -> Clients:
        return Clients.create(OutboxSettings.from_env(), self.context.api)

    async def finalize(self, body: Mapping[str, Any], clients: Clients) -> list[str]:
        return await finalize(body, clients)

    async def run(self, body: kopf.Body) -> None:
        clients = self.clients()
        uid = body["metadata"]["uid"]
        failures = self.failures.get(uid, 0)
        async with self.context.lock(uid):
            with metrics.observe(KIND) as observation:
                try:
                    report = await reconcile(
                        body, clients, retry=failures, backoff=self.context.retry_delay
                    )
                except TEMPORARY as exc:
                    self.failures[uid] = failures + 1
                    delay = self.context.retry_delay(failures)
                    raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=delay) from exc
                if report.paused:
                    observation.finish(None)
                else:
                    worst = max(report.results, key=lambda r: r.outcome)
                    observation.finish(worst.outcome, worst.reason)
        self.failures[uid] = 0 if report.retry_after is None else failures + 1
        if report.stalled:
            raise kopf.PermanentError(report.summary())
        if report.retry_after is not None:
            raise kopf.TemporaryError(report.summary(), delay=report.retry_after)


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    handlers = _Handlers(context)
    try:
        interval = OutboxSettings.resync_from_env() or context.resync_seconds
    except SettingsError:
        interval = context.resync_seconds

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    async def outbox_connector_changed(body: kopf.Body, **_: Any) -> None:
        await handlers.run(body)

    @kopf.timer(
        GROUP, VERSION, PLURAL, registry=registry, interval=interval, initial_delay=interval
    )
    async def outbox_connector_resync(body: kopf.Body, **_: Any) -> None:
        await handlers.run(body)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    async def outbox_connector_deleted(body: kopf.Body, retry: int, **_: Any) -> None:
        await handlers.delete(body, retry)

    @kopf.on.cleanup(registry=registry)
    async def outbox_connector_clients_closed(**_: Any) -> None:
        await handlers.close()
