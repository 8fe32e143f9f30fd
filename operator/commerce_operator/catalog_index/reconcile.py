"""One reconcile of a CatalogIndex, and its clean-up on deletion, independent of Kopf.

Steps, in order, each ending in a `StepResult` that `conditions.summarize` turns into status:
1. index: observe the alias and every `<alias>-v<N>`; create the first version when none
   exists; point the alias back at the current version when it was removed or moved (drift);
   apply a compatible change of settings or mappings in place, or carry out a version change
   (`migration.py`: create, copy, swap, clean up, with its progress in `status.migration`);
   delete versions beyond `retention.previousVersions`;
2. worker: the source Secrets must exist with their keys; then the sync worker's ServiceAccount
   and Deployment are applied and its rollout observed.

An Elasticsearch error makes the index step RETRYING (temporary); settings, mappings or
documents Elasticsearch refuses make it STALLED (`InvalidSpec`, with Elasticsearch's reason):
only a spec change helps, and the alias stays on the last good version meanwhile. Nothing is
changed while the resource is paused. The handlers (handlers.py) turn the `Report` into Kopf's
retry decisions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError
from kubernetes import client

from commerce_operator.catalog_index.desired import (
    index_version,
    indices_to_delete,
    next_index,
    worker_name,
    worker_objects,
    worker_problems,
)
from commerce_operator.catalog_index.elasticsearch_indices import (
    CopyProgress,
    ElasticsearchIndices,
    ElasticsearchUnavailable,
    IndexRefused,
    ObservedIndices,
)
from commerce_operator.catalog_index.kube import KubeApi
from commerce_operator.catalog_index.mapping_changes import (
    ChangeKind,
    IndexChange,
    plan_index_change,
)
from commerce_operator.catalog_index.migration import (
    Phase,
    abandoned_target,
    current_index,
    migration_record,
    resume_target,
)
from commerce_operator.catalog_index.settings import ElasticsearchSettings
from commerce_operator.catalog_index.spec import DELETE, RETAIN, CatalogIndexSpec
from commerce_operator.conditions import READY, Outcome, Report, StepResult, summarize
from commerce_operator.resource import ResourceMeta
from commerce_operator.rollout import rollout_result
from commerce_services.search.engine import START

log = logging.getLogger(__name__)

INVALID_SPEC = "InvalidSpec"
ELASTICSEARCH_UNAVAILABLE = "ElasticsearchUnavailable"
# Elasticsearch answered a read with an unexpected 4xx (e.g. a permission of its own missing).
ELASTICSEARCH_ERROR = "ElasticsearchError"
KUBERNETES_API_ERROR = "KubernetesApiError"
MIGRATION_IN_PROGRESS = "MigrationInProgress"

# How soon to look again while the worker rolls out (its Deployment's events also trigger one).
PROGRESS_DELAY_S = 3.0
# Backoff of temporary errors, by the count of passes in a row that did not finish.
ERROR_BACKOFF_BASE_S = 2.0
ERROR_BACKOFF_CAP_S = 60.0
# A copy's progress is written to status at most this often.
PROGRESS_EVERY_S = 2.0

# Status fields this reconciler owns besides observedGeneration and conditions.
INDEX_FIELDS = (
    "alias",
    "currentIndex",
    "currentVersion",
    "documentCount",
    "previousIndices",
    "lastIndexedChangeTime",
    "migration",
)


class InvalidSpec(Exception):
    """A spec the schema let through but that cannot be reconciled; needs a spec change."""


@dataclass
class Clients:
    settings: ElasticsearchSettings
    indices: ElasticsearchIndices
    kube: KubeApi

    @classmethod
    def create(cls, settings: ElasticsearchSettings, api: client.ApiClient) -> Clients:
        return cls(settings, ElasticsearchIndices.for_settings(settings), KubeApi(api))

    async def close(self) -> None:
        await self.indices.close()


def parse_spec(body: Mapping[str, Any]) -> CatalogIndexSpec:
    """The spec as typed values; InvalidSpec for what the schema could not refuse."""
    try:
        spec = CatalogIndexSpec.from_dict(body["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSpec(f"spec cannot be read: {exc!r}") from exc
    if not isinstance(spec.mappings.get("properties", {}), Mapping):
        raise InvalidSpec("spec.mappings.properties must be an object of fields")
    if spec.deletion_policy not in (RETAIN, DELETE):
        raise InvalidSpec(f"spec.deletionPolicy {spec.deletion_policy!r} is not Retain or Delete")
    return spec


async def reconcile(
    body: Mapping[str, Any],
    clients: Clients,
    *,
    now: Callable[[], datetime] | None = None,
    retry: int = 0,
    backoff: Callable[[int], float] | None = None,
) -> Report:
    """One pass over the steps; writes status (also while a copy runs) and posts Events.
    `retry` is how many passes in a row did not finish, for `backoff` (retry -> seconds)."""
    run = _Run(body, clients, now or (lambda: datetime.now(UTC)))
    meta = run.meta
    if meta.paused:
        report = Report((), run.status_with([], paused=True), paused=True)
        await run.write(report.status, worst=None)
        return report
    try:
        spec = parse_spec(body)
    except InvalidSpec as exc:
        result = StepResult("spec", Outcome.STALLED, INVALID_SPEC, str(exc))
        report = Report((result,), run.status_with([result]))
        await run.write(report.status, worst=Outcome.STALLED)
        return report

    results = (await run.index_step(spec), await run.worker_step(spec))
    error_delay = (backoff or error_backoff)(retry)
    report = Report(
        results,
        run.status_with(list(results)),
        retry_after=_retry_after(results, error_delay),
        changes=tuple(run.changes),
    )
    await run.write(report.status, worst=report.worst)
    return report


async def finalize(body: Mapping[str, Any], clients: Clients) -> list[str]:
    """Under `deletionPolicy: Delete`: deletes every version, the alias with them, and the
    worker's checkpoints; under Retain, nothing (the garbage collector removes the worker).
    What is already gone is not an error. Returns what was removed, in words. Elasticsearch
    errors propagate (the finalizer stays, retried)."""
    spec = body.get("spec") or {}
    if spec.get("deletionPolicy", RETAIN) != DELETE:
        return []
    alias = str(spec["alias"])
    indices = clients.indices
    observed = await indices.observe(alias)
    removed: list[str] = []
    for name in sorted(observed.versions):
        if await indices.delete(alias, name):
            removed.append(f"deleted index {name}")
    if await indices.remove_alias(alias):
        removed.append(f"removed alias {alias}")
    if await indices.delete_checkpoints(alias):
        removed.append(f"deleted the sync checkpoints of {alias}")
    for what in removed:
        await clients.kube.event(body, "Deleted", what)
    return removed


def error_backoff(retry: int) -> float:
    return float(min(ERROR_BACKOFF_BASE_S * 2 ** min(retry, 16), ERROR_BACKOFF_CAP_S))


def _retry_after(results: tuple[StepResult, ...], error_delay: float) -> float | None:
    worst = max(r.outcome for r in results)
    if worst is Outcome.DONE or worst is Outcome.STALLED:
        return None
    if worst is Outcome.PROGRESSING:
        return PROGRESS_DELAY_S
    return error_delay


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Run:
    """The state of one reconcile: the resource, what was written to its status so far (a
    copy writes its progress before the reconcile ends), the changes made and their Events."""

    def __init__(
        self, body: Mapping[str, Any], clients: Clients, now: Callable[[], datetime]
    ) -> None:
        self.body = body
        self.clients = clients
        self.now = now
        self.meta = ResourceMeta.from_body(body)
        self.written: dict[str, Any] = dict(body.get("status") or {})
        # The index fields as the last pass left them; a failed step keeps them.
        self.fields: dict[str, Any] = {k: self.written.get(k) for k in INDEX_FIELDS}
        self.changes: list[str] = []

    # ---- status -----------------------------------------------------------------------

    def status_with(self, results: list[StepResult], *, paused: bool = False) -> dict[str, Any]:
        conditions = summarize(
            results,
            generation=self.meta.generation,
            previous=self.written.get("conditions") or (),
            now=self.now(),
            paused=paused,
        )
        return {
            **self.fields,
            "observedGeneration": self.meta.generation,
            "conditions": conditions,
        }

    async def write(self, status: dict[str, Any], *, worst: Outcome | None) -> None:
        """Writes the status when it changed, and an Event when Ready's status or reason did."""
        before = _ready(self.written)
        after = _ready(status)
        if (before["status"], before["reason"]) != (after["status"], after["reason"]):
            if before["reason"] == "Paused" and worst is not None:
                await self.clients.kube.event(self.body, "Resumed", "reconciliation resumed")
            warning = worst is not None and worst >= Outcome.RETRYING
            await self.clients.kube.event(
                self.body, after["reason"], after["message"], warning=warning
            )
        if any(self.written.get(k) != v for k, v in status.items()):
            await self.clients.kube.patch_status(self.meta.namespace, self.meta.name, status)
            self.written.update(status)
            log.info(
                "CatalogIndex %s/%s: %s: %s",
                self.meta.namespace,
                self.meta.name,
                after["reason"],
                after["message"],
            )

    async def announce(self, reason: str, message: str) -> None:
        self.changes.append(message)
        await self.clients.kube.event(self.body, reason, message)

    # ---- step 1: the index ------------------------------------------------------------

    async def index_step(self, spec: CatalogIndexSpec) -> StepResult:
        try:
            current = await self._index(spec)
        except IndexRefused as exc:
            return StepResult(
                "index", Outcome.STALLED, INVALID_SPEC, f"Elasticsearch refused it: {exc}"
            )
        except ElasticsearchUnavailable as exc:
            return StepResult("index", Outcome.RETRYING, ELASTICSEARCH_UNAVAILABLE, str(exc))
        except ApiError as exc:
            return StepResult(
                "index", Outcome.RETRYING, ELASTICSEARCH_ERROR, f"{exc.meta.status} {exc.message}"
            )
        return StepResult("index", Outcome.DONE, message=f"alias {spec.alias} -> {current}")

    async def _index(self, spec: CatalogIndexSpec) -> str:
        indices, alias = self.clients.indices, spec.alias
        self.fields["alias"] = alias
        observed = await indices.observe(alias)
        migrating_to = (self.written.get("migration") or {}).get("toIndex")
        current = current_index(observed, self.written.get("currentIndex"), migrating_to)
        if current is None:
            current = next_index(alias, observed.versions)
            await indices.create(current, spec.settings, spec.mappings)
            # Explicitly from the start of the catalog: a checkpoint left by an earlier index of
            # this name (deleted behind our back) must not make the worker skip changes.
            await indices.save_checkpoint(alias, current, START)
            await indices.point_alias(alias, current, observed.alias_targets)
            await self.announce("IndexCreated", f"created {current} behind alias {alias}")
            observed = await indices.observe(alias)
        elif observed.alias_targets != (current,):
            await indices.point_alias(alias, current, observed.alias_targets)
            await self.announce(
                "AliasRepaired",
                f"alias {alias} pointed at [{', '.join(observed.alias_targets)}]; now at {current}",
            )

        live = observed.versions[current]
        change = plan_index_change(spec.settings, spec.mappings, live.settings, live.mappings)
        if change.kind is ChangeKind.NEW_VERSION:
            current = await self._migrate(spec, observed, current, change, migrating_to)
            observed = await indices.observe(alias)
        else:
            if change.kind is ChangeKind.IN_PLACE:
                await self._update_in_place(current, spec, change)
            if migrating_to is not None:
                # An interrupted version change the spec no longer needs.
                abandoned = abandoned_target(observed, current, migrating_to, keep=None)
                if abandoned is not None and await indices.delete(alias, abandoned):
                    await self.announce(
                        "IndexDeleted", f"deleted {abandoned}, an unfinished version"
                    )
                self.fields["migration"] = None

        kept = set(observed.versions)
        for old in indices_to_delete(alias, observed.versions, current, spec.previous_versions):
            kept.discard(old)
            if await indices.delete(alias, old):
                await self.announce("IndexDeleted", f"deleted {old} (retention)")
        await self._observe_current(alias, current, kept)
        return current

    async def _update_in_place(
        self, current: str, spec: CatalogIndexSpec, change: IndexChange
    ) -> None:
        mappings = spec.mappings if change.mapping_changed else None
        await self.clients.indices.update_in_place(current, change.settings_update, mappings)
        updated = []
        if change.settings_update:
            updated.append(f"settings {', '.join(sorted(change.settings_update))}")
        if change.mapping_changed:
            updated.append("mappings")
        await self.announce(
            "IndexUpdated", f"updated {' and '.join(updated)} of {current} in place"
        )

    async def _observe_current(self, alias: str, current: str, versions: set[str]) -> None:
        indices = self.clients.indices
        version = index_version(alias, current) or 0
        checkpoint = await indices.checkpoint(alias, current)
        self.fields.update(
            currentIndex=current,
            currentVersion=version,
            documentCount=await indices.document_count(current),
            previousIndices=sorted(
                (name for name in versions if (index_version(alias, name) or 0) < version),
                key=lambda name: index_version(alias, name) or 0,
                reverse=True,
            ),
            lastIndexedChangeTime=None
            if checkpoint is None or checkpoint.updated_at_ms == 0
            else _timestamp(datetime.fromtimestamp(checkpoint.updated_at_ms / 1000, UTC)),
        )

    async def _migrate(
        self,
        spec: CatalogIndexSpec,
        observed: ObservedIndices,
        source: str,
        change: IndexChange,
        migrating_to: str | None,
    ) -> str:
        """The version change (`migration.py`); answers the new current index."""
        indices, alias = self.clients.indices, spec.alias
        target = resume_target(observed, source, migrating_to, spec.settings, spec.mappings)
        abandoned = abandoned_target(observed, source, migrating_to, keep=target)
        if abandoned is not None and await indices.delete(alias, abandoned):
            await self.announce("IndexDeleted", f"deleted {abandoned}, an unfinished version")
        previous = self.written.get("migration") or {}
        if target is not None:
            started_at = str(previous.get("startedAt") or _timestamp(self.now()))
            await self.announce("MigrationResumed", f"resuming the copy {source} -> {target}")
        else:
            target = next_index(alias, [v for v in observed.versions if v != abandoned])
            started_at = _timestamp(self.now())
            await self.announce(
                "MigrationStarted",
                f"{source} -> {target}: a new version is needed ({'; '.join(change.reasons)})",
            )
        total = await indices.document_count(source)

        async def phase(now: Phase, copied: int = 0) -> None:
            self.fields["migration"] = migration_record(
                now, source, target, copied=copied, total=total, started_at=started_at
            )
            message = f"{now.value.lower()} {source} -> {target}: {copied} of {total} documents"
            step = StepResult("index", Outcome.PROGRESSING, MIGRATION_IN_PROGRESS, message)
            await self.write(self.status_with([step]), worst=Outcome.PROGRESSING)

        await phase(Phase.CREATING)
        await indices.create(target, spec.settings, spec.mappings)
        if await indices.checkpoint(alias, target) is None:
            # Taken before the first document is copied: after the swap the worker replays
            # from here whatever the copy could have missed (revisions and stock changes; a
            # source without a stock checkpoint leaves the worker to look at all stock once).
            checkpoint = await indices.checkpoint(alias, source) or START
            stock = await indices.checkpoint(alias, source, "stock")
            if stock is not None:
                await indices.save_checkpoint(alias, target, stock, "stock")
            await indices.save_checkpoint(alias, target, checkpoint)

        await phase(Phase.COPYING)
        last_write = time.monotonic()

        async def progress(done: CopyProgress) -> None:
            nonlocal last_write, total
            total = done.total
            if time.monotonic() - last_write >= PROGRESS_EVERY_S:
                last_write = time.monotonic()
                await phase(Phase.COPYING, done.copied)

        copied = await indices.copy(source, target, progress)
        total = copied.total
        await phase(Phase.SWAPPING, copied.copied)
        await indices.point_alias(alias, target, (source,))
        await self.announce(
            "IndexMigrated",
            f"alias {alias} -> {target}: {copied.copied} documents copied from {source}",
        )
        await phase(Phase.CLEANING_UP, copied.copied)
        self.fields["migration"] = None
        return target

    # ---- step 2: the sync worker -------------------------------------------------------

    async def worker_step(self, spec: CatalogIndexSpec) -> StepResult:
        kube, meta = self.clients.kube, self.meta
        try:
            secrets = await kube.secrets(
                meta.namespace, (spec.document_store_secret, spec.product_database_secret)
            )
        except client.ApiException as exc:
            return StepResult("worker", Outcome.RETRYING, KUBERNETES_API_ERROR, _api_message(exc))
        problems = worker_problems(spec, secrets)
        if problems:
            return StepResult(
                "worker",
                Outcome.RETRYING,
                problems[0].reason,
                "; ".join(p.message for p in problems),
            )
        objects = worker_objects(spec, meta, self.clients.settings.url, secrets)
        try:
            await kube.apply(objects)
            deployment = await kube.deployment(meta, worker_name(meta))
        except client.ApiException as exc:
            if exc.status in (400, 422):
                return StepResult("worker", Outcome.STALLED, INVALID_SPEC, _api_message(exc))
            return StepResult("worker", Outcome.RETRYING, KUBERNETES_API_ERROR, _api_message(exc))
        return rollout_result("worker", spec.worker.replicas, deployment)


def _ready(status: Mapping[str, Any]) -> dict[str, str]:
    for condition in status.get("conditions") or ():
        if condition.get("type") == READY:
            return {
                "status": str(condition.get("status")),
                "reason": str(condition.get("reason")),
                "message": str(condition.get("message", "")),
            }
    return {"status": "", "reason": "", "message": ""}


def _api_message(exc: client.ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"
