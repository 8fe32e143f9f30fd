"""Kopf handlers of CatalogIndex: thin, everything else is in reconcile.py.

`register(registry, context)` declares, on the operator run's registry:
- create, update (spec or annotations: pause counts) and resume (operator start): reconcile;
- a timer every `resync_seconds` that repairs drift (the alias removed or moved, an index
  deleted, the worker's objects changed) and refreshes the document count and checkpoint time.
  Without a finalizer (`timers.py`);
- an event of the sync worker's Deployment (labelled managed-by commerce-operator, controlled
  by a CatalogIndex): the status follows its rollout at once, a deleted one comes back;
- deletion, only under `deletionPolicy: Delete`: Kopf holds its finalizer on exactly those
  resources (the handler's filter), deletes the indices, the alias and the checkpoints, then
  releases it. A Retain resource carries no finalizer, so deleting it, or its namespace, never
  waits for the operator.

Each reconcile reads the resource again under the resource's lock (Kopf's copy may predate the
status the last one wrote, a copy's progress included). A temporary error raises
`kopf.TemporaryError` with the runtime's backoff; a stalled reconcile `kopf.PermanentError`
(retrying cannot help until the spec changes; the timer still repairs drift); a rollout in
progress returns (the Deployment's events bring the next reconcile).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from elasticsearch import ApiError
from kubernetes import client

from commerce_operator import metrics
from commerce_operator.catalog_index.elasticsearch_indices import ElasticsearchUnavailable
from commerce_operator.catalog_index.kube import PLURAL
from commerce_operator.catalog_index.reconcile import Clients, finalize, reconcile
from commerce_operator.catalog_index.settings import ElasticsearchSettings
from commerce_operator.catalog_index.spec import DELETE
from commerce_operator.conditions import Outcome, Report
from commerce_operator.external_handlers import Context, ExternalHandlers
from commerce_operator.resource import GROUP, MANAGED_BY, VERSION, controlling_owner
from commerce_operator.timers import timer_without_finalizer

log = logging.getLogger(__name__)

KIND = "CatalogIndex"
TEMPORARY = (client.ApiException, ElasticsearchUnavailable, ApiError, OSError)


class _Handlers(ExternalHandlers[Clients]):
    kind = KIND
    temporary = TEMPORARY

    def make_clients(self) -> Clients:
        return Clients.create(ElasticsearchSettings.from_env(), self.context.api)

    async def finalize(self, body: Mapping[str, Any], clients: Clients) -> list[str]:
        return await finalize(body, clients)

    async def run(self, namespace: str, name: str, uid: str) -> None:
        clients = self.clients()
        failures = self.failures.get(uid, 0)
        async with self.context.lock(uid):
            with metrics.observe(KIND) as observation:
                try:
                    body = await clients.kube.read(namespace, name)
                    if body is None or body["metadata"]["uid"] != uid:
                        observation.finish(None)
                        self.forget(uid)
                        return
                    if body["metadata"].get("deletionTimestamp"):
                        observation.finish(None)
                        return  # the deletion handler's, or the garbage collector's
                    report = await reconcile(
                        body, clients, retry=failures, backoff=self.context.retry_delay
                    )
                except TEMPORARY as exc:
                    self.failures[uid] = failures + 1
                    delay = self.context.retry_delay(failures)
                    raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=delay) from exc
                _finish(observation, report)
        self.failures[uid] = 0 if report.worst < Outcome.RETRYING else failures + 1
        if report.stalled:
            raise kopf.PermanentError(report.summary())
        if report.worst is Outcome.RETRYING and report.retry_after is not None:
            raise kopf.TemporaryError(report.summary(), delay=report.retry_after)


def _finish(observation: metrics.Observation, report: Report) -> None:
    if report.paused:
        observation.finish(None)
        return
    worst = max(report.results, key=lambda r: r.outcome)
    observation.finish(worst.outcome, worst.reason)


def _deletion_policy_is_delete(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("deletionPolicy") == DELETE


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    handlers = _Handlers(context)

    async def changed(body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        await handlers.run(meta["namespace"], meta["name"], meta["uid"])

    for decorate, handler_id in (
        (kopf.on.create, "catalogindex-create"),
        (kopf.on.update, "catalogindex-update"),
        (kopf.on.resume, "catalogindex-resume"),
    ):
        decorate(GROUP, VERSION, PLURAL, registry=registry, id=handler_id)(changed)

    async def resync(body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        try:
            await handlers.run(meta["namespace"], meta["name"], meta["uid"])
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            # The next tick retries; the status already says why.
            log.debug("CatalogIndex %s/%s resync: %s", meta["namespace"], meta["name"], exc)

    timer_without_finalizer(
        registry,
        resync,
        group=GROUP,
        version=VERSION,
        plural=PLURAL,
        interval=context.resync_seconds,
        initial_delay=context.resync_seconds,
        handler_id="catalogindex-resync",
    )

    async def worker_event(body: kopf.Body, **_: Any) -> None:
        owner = controlling_owner(body, KIND)
        if owner is not None:
            try:
                await handlers.run(str(body.metadata.namespace), owner["name"], owner["uid"])
            except (kopf.TemporaryError, kopf.PermanentError) as exc:
                log.debug("CatalogIndex %s: %s", owner["name"], exc)

    kopf.on.event(
        "apps",
        "v1",
        "deployments",
        registry=registry,
        labels={"app.kubernetes.io/managed-by": MANAGED_BY},
        id="catalogindex-worker-deployment",
    )(worker_event)

    @kopf.on.delete(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        id="catalogindex-delete",
        when=_deletion_policy_is_delete,
    )
    async def deleted(body: kopf.Body, retry: int, **_: Any) -> None:
        await handlers.delete(body, retry)

    @kopf.on.cleanup(registry=registry)
    async def clients_closed(**_: Any) -> None:
        await handlers.close()
