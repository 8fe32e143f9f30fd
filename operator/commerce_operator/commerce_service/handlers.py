"""Kopf handlers of CommerceService: thin, every one of them runs the same `reconcile`.

- create / update / resume: a change of the resource (spec, labels, annotations such as pause),
  or the operator starting. A temporary error is retried by Kopf with backoff (TemporaryError);
  a permanent one ends the handler (PermanentError) until the spec changes.
- a timer every `resync_seconds`: drift of owned objects, a bound Secret created or rotated,
  a binding target that appeared. It puts no finalizer on the resource (`timers.py`).
- an event of an owned Deployment (its status moving, or it being edited or deleted): the
  owner's status follows the rollout at once and a deleted Deployment comes back.

`reconcile` reads the bindings, builds the objects (`desired.py`), applies them, observes the
Deployment, summarizes the steps into conditions (`conditions.py`) and writes status only when
it changed; a change of the Ready condition, a pause, a config change rolling the pods and a
pruned object are Kubernetes Events on the resource. The reconciles of one resource never
overlap (one lock per uid).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
import urllib3
from kubernetes import client

from commerce_operator import metrics
from commerce_operator.catalog_index.settings import SettingsError, elasticsearch_url
from commerce_operator.commerce_service.client import CommerceServiceClient
from commerce_operator.commerce_service.desired import (
    CONFIG_HASH_ANNOTATION,
    bindings_result,
    desired_state,
    rollout_result,
    status_fields,
)
from commerce_operator.commerce_service.spec import CommerceServiceSpec
from commerce_operator.conditions import (
    PAUSED,
    READY,
    RECONCILED,
    Outcome,
    StepResult,
    summarize,
)
from commerce_operator.context import OperatorContext
from commerce_operator.resource import GROUP, MANAGED_BY, VERSION, ResourceMeta, controlling_owner
from commerce_operator.rollout import ROLLOUT_IN_PROGRESS
from commerce_operator.timers import timer_without_finalizer

log = logging.getLogger(__name__)

KIND = "CommerceService"
PLURAL = "commerceservices"

# The API server refused an object built from the spec (a value the CRD's schema let through
# but the Deployment's or PDB's validation does not): retrying cannot help.
INVALID_SPEC = "InvalidSpec"
# The API server failed or is unreachable, or the operator lacks a permission: retried.
KUBERNETES_API_ERROR = "KubernetesApiError"

Json = dict[str, Any]


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    try:
        search_url = elasticsearch_url()
    except SettingsError as exc:
        # Only the roles that use Elasticsearch need it; they report it in their conditions.
        log.error("%s", exc)
        search_url = None
    reconciler = Reconciler(CommerceServiceClient(context.api), context, search_url)

    async def on_change(body: kopf.Body, retry: int, **_: Any) -> None:
        try:
            worst = await reconciler.reconcile(body)
        except (client.ApiException, urllib3.exceptions.HTTPError) as exc:
            # Reading failed before anything could be decided (the API server restarting, a
            # permission missing): no status can be trusted, so only retry.
            raise kopf.TemporaryError(str(exc), delay=context.retry_delay(retry)) from exc
        if worst is None or worst.outcome in (Outcome.DONE, Outcome.PROGRESSING):
            return
        message = f"{worst.reason}: {worst.message}"
        if worst.outcome is Outcome.STALLED:
            raise kopf.PermanentError(message)
        raise kopf.TemporaryError(message, delay=context.retry_delay(retry))

    for decorate, handler_id in (
        (kopf.on.create, "commerceservice-create"),
        (kopf.on.update, "commerceservice-update"),
        (kopf.on.resume, "commerceservice-resume"),
    ):
        decorate(GROUP, VERSION, PLURAL, registry=registry, id=handler_id)(on_change)

    async def on_timer(body: kopf.Body, **_: Any) -> None:
        await reconciler.reconcile(body)

    timer_without_finalizer(
        registry,
        on_timer,
        group=GROUP,
        version=VERSION,
        plural=PLURAL,
        interval=context.resync_seconds,
        initial_delay=context.resync_seconds,
        handler_id="commerceservice-resync",
    )

    async def on_deployment_event(body: kopf.Body, **_: Any) -> None:
        owner = controlling_owner(body, KIND)
        if owner is not None:
            # The reconcile reads the owner itself; its identity is all it needs.
            meta = {**owner, "namespace": str(body.metadata.namespace)}
            await reconciler.reconcile({"kind": KIND, "metadata": meta})

    kopf.on.event(
        "apps",
        "v1",
        "deployments",
        registry=registry,
        labels={"app.kubernetes.io/managed-by": MANAGED_BY},
        id="commerceservice-deployment",
    )(on_deployment_event)


class Reconciler:
    def __init__(
        self,
        commerce_client: CommerceServiceClient,
        context: OperatorContext,
        elasticsearch_url: str | None = None,
    ) -> None:
        self.client = commerce_client
        self._context = context
        self._elasticsearch_url = elasticsearch_url

    async def reconcile(self, body: Mapping[str, Any]) -> StepResult | None:
        """One reconcile of the resource `body`; answers the worst step
        (None when paused or gone)."""
        meta = ResourceMeta.from_body(body)
        async with self._context.lock(meta.uid):
            # Kopf's copy may predate the last status written under this lock: read it again,
            # so transitions (events) and lastTransitionTimes are judged against the truth.
            fresh = await asyncio.to_thread(self.client.read, meta.namespace, meta.name)
            if fresh is None or fresh["metadata"]["uid"] != meta.uid:
                self._context.forget(meta.uid)
                return None
            if fresh["metadata"].get("deletionTimestamp"):
                return None  # the garbage collector takes the owned objects with it
            meta = ResourceMeta.from_body(fresh)
            with metrics.observe(KIND) as observation:
                worst = await self._reconcile(fresh, meta)
                if worst is None:
                    observation.finish(None)
                else:
                    observation.finish(worst.outcome, worst.reason)
                return worst

    async def _reconcile(self, body: Mapping[str, Any], meta: ResourceMeta) -> StepResult | None:
        spec = CommerceServiceSpec.from_dict(body["spec"])
        view = await asyncio.to_thread(self.client.cluster_view, spec, meta)
        state = desired_state(spec, meta, view, elasticsearch_url=self._elasticsearch_url)
        steps = [bindings_result(state)]
        applied = False
        pruned: list[str] = []
        if not meta.paused and state.objects:
            try:
                await asyncio.to_thread(self.client.apply, state.objects)
                pruned = await asyncio.to_thread(self.client.prune, meta, state.objects)
                applied = True
                steps.append(StepResult("objects", Outcome.DONE))
            except client.ApiException as exc:
                steps.append(_api_error("objects", exc))
        deployment = await asyncio.to_thread(self.client.deployment, meta)
        if applied:
            steps.append(rollout_result(spec, deployment))

        previous: Json = dict(body.get("status") or {})
        conditions = summarize(
            steps,
            generation=meta.generation,
            previous=previous.get("conditions") or (),
            now=datetime.now(UTC),
            paused=meta.paused,
        )
        status: Json = {
            **status_fields(spec, meta, state, deployment),
            "observedGeneration": meta.generation,
            "conditions": conditions,
        }
        template = ((deployment or {}).get("spec") or {}).get("template") or {}
        running_hash = (
            (template.get("metadata") or {}).get("annotations", {}).get(CONFIG_HASH_ANNOTATION)
        )
        # The hash on the pod template that runs, not of a configuration not applied.
        status["configHash"] = running_hash
        if any(previous.get(key) != value for key, value in status.items()):
            await asyncio.to_thread(self.client.write_status, meta, status)
        await self._announce(body, previous, status, pruned)

        worst = max(steps, key=lambda s: s.outcome)
        if meta.paused:
            return None
        log.debug(
            "reconciled %s/%s: %s %s", meta.namespace, meta.name, worst.outcome.name, worst.reason
        )
        return worst

    async def _announce(
        self, body: Mapping[str, Any], previous: Json, status: Json, pruned: list[str]
    ) -> None:
        """Events for what changed meaningfully; never one per reconcile."""
        events: list[tuple[str, str, bool]] = []
        before = _ready(previous)
        after = _ready(status)
        if (before["status"], before["reason"]) != (after["status"], after["reason"]):
            reason = after["reason"]
            warning = after["status"] != "True" and reason not in (
                PAUSED,
                RECONCILED,
                ROLLOUT_IN_PROGRESS,
            )
            if before["reason"] == PAUSED and reason != PAUSED:
                events.append(("Resumed", "reconciliation resumed", False))
            events.append((reason, after["message"], warning))
        old_hash, new_hash = previous.get("configHash"), status.get("configHash")
        if old_hash and new_hash and old_hash != new_hash:
            events.append(
                ("ConfigChanged", f"configuration changed ({old_hash} -> {new_hash})", False)
            )
        events += [("Pruned", f"deleted {name}, no longer in the spec", False) for name in pruned]
        for reason, message, warning in events:
            try:
                await asyncio.to_thread(self.client.event, body, reason, message, warning)
            except client.ApiException as exc:  # an Event is worth a log line, no more
                log.warning("could not post event %s: %s", reason, exc.reason)


def _ready(status: Mapping[str, Any]) -> dict[str, str]:
    for condition in status.get("conditions") or ():
        if condition.get("type") == READY:
            return {
                "status": str(condition.get("status")),
                "reason": str(condition.get("reason")),
                "message": str(condition.get("message", "")),
            }
    return {"status": "", "reason": "", "message": ""}


def _api_error(step: str, exc: client.ApiException) -> StepResult:
    message = _api_message(exc)
    if exc.status in (400, 422):
        return StepResult(step, Outcome.STALLED, INVALID_SPEC, message)
    return StepResult(step, Outcome.RETRYING, KUBERNETES_API_ERROR, message)


def _api_message(exc: client.ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"
