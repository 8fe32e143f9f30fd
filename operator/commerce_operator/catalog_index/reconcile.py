"""A CatalogIndex's steps, run by the driver (`driver.py`), and its clean-up on deletion.

1. index: observe the alias and every `<alias>-v<N>`; create the first version when none
   exists; point the alias back at the current version when it was removed or moved (drift);
   apply a compatible change of settings or mappings in place, or carry out a version change
   (`migration.py`: create, copy, swap, clean up, each phase written to `status.migration`
   before it starts); delete versions beyond `retention.previousVersions`;
2. worker: the source Secrets (from the watched state) must exist with their keys; then the
   sync worker's ServiceAccount and Deployment, each applied only when not up to date
   (`owned_objects.py`), and its rollout as watched.

An Elasticsearch error makes the index step RETRYING; settings, mappings or documents
Elasticsearch refuses make it STALLED (`InvalidSpec`, with Elasticsearch's reason): only a
spec change helps, and the alias stays on the last good version meanwhile. The driver looks
again after `--resync-seconds` in any case, which is how drift on Elasticsearch is caught; the
worker's Deployment events bring a pass at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from commerce_operator.bindings import SecretInfo
from commerce_operator.cache import WatchedState
from commerce_operator.catalog_index.desired import (
    indices_to_delete,
    next_index,
    worker_name,
    worker_objects,
    worker_problems,
)
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
from commerce_operator.catalog_index.ports import (
    CopyProgress,
    ElasticsearchError,
    ElasticsearchUnavailable,
    IndexRefused,
    Indices,
    ObservedIndices,
)
from commerce_operator.catalog_index.spec import DELETE, RETAIN, CatalogIndexSpec
from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.driver import INVALID_SPEC, InvalidSpec, Run
from commerce_operator.kube import (
    CATALOG_INDEX,
    DEPLOYMENT,
    OUTBOX_CONNECTOR,
    SECRET,
    SERVICE_ACCOUNT,
    Kind,
)
from commerce_operator.kube_api import KubeApi
from commerce_operator.owned_objects import OwnedObjects, apply_error, controlled_by
from commerce_operator.rollout import rollout_result
from commerce_services.contracts import START, index_version

log = logging.getLogger(__name__)

OWNED_KINDS = (SERVICE_ACCOUNT, DEPLOYMENT)

ELASTICSEARCH_UNAVAILABLE = "ElasticsearchUnavailable"
# Elasticsearch answered a read with an unexpected 4xx (e.g. a permission of its own missing).
ELASTICSEARCH_ERROR = "ElasticsearchError"
MIGRATION_IN_PROGRESS = "MigrationInProgress"

# A copy's progress is written to status at most this often.
PROGRESS_EVERY_S = 2.0

STATUS_FIELDS = (
    "alias",
    "currentIndex",
    "currentVersion",
    "documentCount",
    "previousIndices",
    "lastIndexedChangeTime",
    "migration",
)


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


def needs_finalizer(body: Mapping[str, Any]) -> bool:
    """Only under Delete: a Retain resource carries no finalizer, so deleting it, or its
    namespace, never waits for the operator."""
    return (body.get("spec") or {}).get("deletionPolicy") == DELETE


@dataclass
class CatalogIndexFlow:
    indices: Indices
    kube: KubeApi
    state: WatchedState
    owned: OwnedObjects
    elasticsearch_url: str
    observe_every: float
    kind: Kind = CATALOG_INDEX
    owns: tuple[Kind, ...] = OWNED_KINDS
    status_fields: tuple[str, ...] = STATUS_FIELDS
    cleans_up: bool = True
    temporary: tuple[type[Exception], ...] = (
        ElasticsearchUnavailable,
        ElasticsearchError,
        OSError,
    )

    def parse(self, body: Mapping[str, Any]) -> CatalogIndexSpec:
        return parse_spec(body)

    def binds(self, body: Mapping[str, Any]) -> list[tuple[Kind, str]]:
        source = (body.get("spec") or {}).get("source") or {}
        refs = (source.get(key) for key in ("documentStore", "productDatabase", "broker"))
        names = {
            str(ref["secretName"])
            for ref in refs
            if isinstance(ref, Mapping) and "secretName" in ref
        }
        targets: list[tuple[Kind, str]] = [(SECRET, name) for name in sorted(names)]
        events = source.get("productEvents")
        if isinstance(events, Mapping) and "outboxConnector" in events:
            targets.append((OUTBOX_CONNECTOR, str(events["outboxConnector"])))
        return targets

    def published(self, body: Mapping[str, Any]) -> object:
        """What a CommerceService's catalogIndex binding reads of it."""
        return (body.get("status") or {}).get("alias")

    def needs_finalizer(self, body: Mapping[str, Any]) -> bool:
        return needs_finalizer(body)

    def forget(self, namespace: str, name: str) -> None:
        self.owned.forget(namespace, [name, f"{name}-sync"])

    def while_paused(self, run: Run) -> None:
        return None

    async def steps(self, run: Run, spec: CatalogIndexSpec) -> Sequence[StepResult]:
        await run.publish(alias=spec.alias)
        index = await _IndexStep(self.indices, run, spec).run()
        return [index, await self._worker(run, spec)]

    async def _worker(self, run: Run, spec: CatalogIndexSpec) -> StepResult:
        meta = run.meta
        secrets: dict[str, SecretInfo] = {}
        for name in (spec.document_store_secret, spec.product_database_secret, spec.broker_secret):
            found = self.state.secret(meta.namespace, name)
            if found is not None:
                secrets[name] = found
        connector = self.state.get(OUTBOX_CONNECTOR, meta.namespace, spec.events_connector)
        topics = ((connector or {}).get("status") or {}).get("eventTopics")
        event_topics = dict(topics) if isinstance(topics, Mapping) else None
        problems = worker_problems(spec, secrets, event_topics)
        if problems:
            return StepResult(
                "worker",
                Outcome.RETRYING,
                problems[0].reason,
                "; ".join(p.message for p in problems),
            )
        assert event_topics is not None
        objects = worker_objects(
            spec, meta, self.elasticsearch_url, secrets, event_topics[spec.events_aggregate]
        )
        try:
            stored = await self.owned.ensure(objects)
        except client.ApiException as exc:
            return apply_error("worker", exc)
        deployment = stored.get(f"Deployment/{worker_name(meta)}")
        if deployment is not None and not controlled_by(deployment, meta.uid):
            deployment = None
        return rollout_result("worker", spec.worker.replicas, deployment)

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        """Under `deletionPolicy: Delete`: deletes every version, the alias with them, and the
        worker's checkpoints; under Retain, nothing (the garbage collector removes the worker).
        What is already gone is not an error; Elasticsearch errors propagate (the finalizer
        stays, retried)."""
        spec = body.get("spec") or {}
        if spec.get("deletionPolicy", RETAIN) != DELETE:
            return []
        alias = str(spec["alias"])
        observed = await self.indices.observe(alias)
        removed: list[str] = []
        for name in sorted(observed.versions):
            if await self.indices.delete(alias, name):
                removed.append(f"deleted index {name}")
        if await self.indices.remove_alias(alias):
            removed.append(f"removed alias {alias}")
        if await self.indices.delete_checkpoints(alias):
            removed.append(f"deleted the sync checkpoints of {alias}")
        for what in removed:
            await self.kube.post_event(body, "Deleted", what, warning=False)
        return removed


class _IndexStep:
    """The index step of one pass: the alias, the versions, a version change."""

    def __init__(self, indices: Indices, run: Run, spec: CatalogIndexSpec) -> None:
        self.indices = indices
        self.run_ = run
        self.spec = spec

    async def run(self) -> StepResult:
        try:
            current = await self._index()
        except IndexRefused as exc:
            return StepResult(
                "index", Outcome.STALLED, INVALID_SPEC, f"Elasticsearch refused it: {exc}"
            )
        except ElasticsearchUnavailable as exc:
            return StepResult("index", Outcome.RETRYING, ELASTICSEARCH_UNAVAILABLE, str(exc))
        except ElasticsearchError as exc:
            return StepResult("index", Outcome.RETRYING, ELASTICSEARCH_ERROR, f"{exc.status} {exc}")
        return StepResult("index", Outcome.DONE, message=f"alias {self.spec.alias} -> {current}")

    async def _index(self) -> str:
        run, spec, indices, alias = self.run_, self.spec, self.indices, self.spec.alias
        observed = await indices.observe(alias)
        migrating_to = (run.written.get("migration") or {}).get("toIndex")
        current = current_index(observed, run.written.get("currentIndex"), migrating_to)
        if current is None:
            current = next_index(alias, observed.versions)
            await indices.create(current, spec.settings, spec.mappings)
            # Explicitly from the start of the catalog: a checkpoint left by an earlier index of
            # this name (deleted behind our back) must not make the worker skip changes.
            await indices.save_checkpoint(alias, current, START)
            await indices.point_alias(alias, current, observed.alias_targets)
            await run.announce("IndexCreated", f"created {current} behind alias {alias}")
            observed = await indices.observe(alias)
        elif observed.alias_targets != (current,):
            await indices.point_alias(alias, current, observed.alias_targets)
            await run.announce(
                "AliasRepaired",
                f"alias {alias} pointed at [{', '.join(observed.alias_targets)}]; now at {current}",
            )

        live = observed.versions[current]
        change = plan_index_change(spec.settings, spec.mappings, live.settings, live.mappings)
        if change.kind is ChangeKind.NEW_VERSION:
            current = await self._migrate(observed, current, change, migrating_to)
            observed = await indices.observe(alias)
        else:
            if change.kind is ChangeKind.IN_PLACE:
                await self._update_in_place(current, change)
            if migrating_to is not None:
                # An interrupted version change the spec no longer needs.
                abandoned = abandoned_target(observed, current, migrating_to, keep=None)
                if abandoned is not None and await indices.delete(alias, abandoned):
                    await run.announce(
                        "IndexDeleted", f"deleted {abandoned}, an unfinished version"
                    )
                run.fields["migration"] = None

        kept = set(observed.versions)
        for old in indices_to_delete(alias, observed.versions, current, spec.previous_versions):
            kept.discard(old)
            if await indices.delete(alias, old):
                await run.announce("IndexDeleted", f"deleted {old} (retention)")
        await self._observe_current(current, kept)
        return current

    async def _update_in_place(self, current: str, change: IndexChange) -> None:
        mappings = self.spec.mappings if change.mapping_changed else None
        await self.indices.update_in_place(current, change.settings_update, mappings)
        updated = []
        if change.settings_update:
            updated.append(f"settings {', '.join(sorted(change.settings_update))}")
        if change.mapping_changed:
            updated.append("mappings")
        await self.run_.announce(
            "IndexUpdated", f"updated {' and '.join(updated)} of {current} in place"
        )

    async def _observe_current(self, current: str, versions: set[str]) -> None:
        alias = self.spec.alias
        version = index_version(alias, current) or 0
        checkpoint = await self.indices.checkpoint(alias, current)
        self.run_.fields.update(
            currentIndex=current,
            currentVersion=version,
            documentCount=await self.indices.document_count(current),
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
        observed: ObservedIndices,
        source: str,
        change: IndexChange,
        migrating_to: str | None,
    ) -> str:
        """The version change (`migration.py`); answers the new current index."""
        run, spec, indices, alias = self.run_, self.spec, self.indices, self.spec.alias
        target = resume_target(observed, source, migrating_to, spec.settings, spec.mappings)
        abandoned = abandoned_target(observed, source, migrating_to, keep=target)
        if abandoned is not None and await indices.delete(alias, abandoned):
            await run.announce("IndexDeleted", f"deleted {abandoned}, an unfinished version")
        previous = run.written.get("migration") or {}
        if target is not None:
            started_at = str(previous.get("startedAt") or _timestamp(run.now()))
            await run.announce("MigrationResumed", f"resuming the copy {source} -> {target}")
        else:
            target = next_index(alias, [v for v in observed.versions if v != abandoned])
            started_at = _timestamp(run.now())
            await run.announce(
                "MigrationStarted",
                f"{source} -> {target}: a new version is needed ({'; '.join(change.reasons)})",
            )
        total = await indices.document_count(source)

        async def phase(now: Phase, copied: int = 0) -> None:
            run.fields["migration"] = migration_record(
                now, source, target, copied=copied, total=total, started_at=started_at
            )
            message = f"{now.value.lower()} {source} -> {target}: {copied} of {total} documents"
            await run.write(
                [StepResult("index", Outcome.PROGRESSING, MIGRATION_IN_PROGRESS, message)]
            )

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
        await run.announce(
            "IndexMigrated",
            f"alias {alias} -> {target}: {copied.copied} documents copied from {source}",
        )
        await phase(Phase.CLEANING_UP, copied.copied)
        run.fields["migration"] = None
        return target


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
