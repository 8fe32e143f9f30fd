"""In-memory fakes of the operator's ports, for the unit tests of the driver and of each
kind's flow: the Kubernetes API with its watched state (`FakeCluster`), Kafka's topics
(`FakeTopics`), Kafka Connect (`FakeConnect`), Elasticsearch's indices (`FakeIndices`).

They keep what the real systems keep and count what the real ones would be asked, so a test
can say "this pass wrote nothing" or "this pass asked the API server for nothing"."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client

from commerce_operator.bindings import SecretInfo
from commerce_operator.catalog_index.ports import (
    CopyProgress,
    ElasticsearchUnavailable,
    ObservedIndex,
    ObservedIndices,
)
from commerce_operator.kube import Kind, kind_of
from commerce_operator.outbox_connector.connector_changes import ObservedConnector, TaskState
from commerce_operator.outbox_connector.ports import ConnectError, KafkaTopicsError
from commerce_operator.outbox_connector.topic_changes import ObservedTopic, TopicPlan
from commerce_services.contracts import Checkpoint, Stream, index_version

Json = dict[str, Any]
SECRET = kind_of("v1", "Secret")
# A field the API server adds to every Deployment it stores: the up-to-date decision must not
# take a server default for drift.
SERVER_DEFAULT = {"revisionHistoryLimit": 10}


@dataclass(frozen=True)
class Call:
    verb: str  # RBAC's: get, list, watch, create, patch, delete
    group: str
    resource: str  # plural, with "/status" for the status subresource


class FakeCluster:
    """The API server and the watched state of one test: what is written is watched at once,
    unless `lagging` (then only after `catch_up`), as a watch can be behind a write."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Json] = {}
        self.watched: dict[tuple[str, str, str], Json] = {}
        self.calls: list[Call] = []
        self.events: list[tuple[str, str, str, str]] = []  # object name, type, reason, message
        self.status_patches: list[tuple[str, Json]] = []  # object name, the patch
        self.lagging = False
        # kind -> an ApiException the next apply of that kind answers.
        self.refuse: dict[str, client.ApiException] = {}
        self._versions = itertools.count(1)
        self.state = FakeWatch(self)

    # ---- the test's own moves (as another client would make them) ------------------------

    def put(self, obj: Mapping[str, Any]) -> Json:
        """Creates or replaces an object as someone else would (not counted); its status
        stays unless `obj` has one (the status subresource is written on its own)."""
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        key = _key(stored)
        before = self.objects.get(key)
        if before is not None and "status" in before and "status" not in stored:
            stored["status"] = copy.deepcopy(before["status"])
        meta.setdefault("uid", before["metadata"]["uid"] if before else str(uuid.uuid4()))
        meta["generation"] = (
            int(before["metadata"].get("generation", 1))
            + (before.get("spec") != stored.get("spec"))
            if before
            else 1
        )
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[key] = stored
        if not self.lagging:
            self.watched[key] = copy.deepcopy(stored)
        return stored

    def remove(self, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, namespace, name), None)
        if not self.lagging:
            self.watched.pop((kind, namespace, name), None)

    def catch_up(self) -> None:
        self.watched = copy.deepcopy(self.objects)

    def find(self, kind: str, namespace: str, name: str) -> Json | None:
        return self.objects.get((kind, namespace, name))

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.verb in ("create", "patch", "delete")]

    def reasons(self, name: str) -> list[str]:
        return [reason for obj, _, reason, _ in self.events if obj == name]

    # ---- KubeApi -------------------------------------------------------------------------

    def _count(self, verb: str, kind: Kind, subresource: str = "") -> None:
        resource = f"{kind.plural}/{subresource}" if subresource else kind.plural
        self.calls.append(Call(verb, kind.group, resource))

    async def get(self, kind: Kind, namespace: str, name: str) -> Json | None:
        self._count("get", kind)
        found = self.objects.get((kind.kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def apply(self, obj: Mapping[str, Any]) -> Json:
        kind = kind_of(obj["apiVersion"], obj["kind"])
        key = _key(obj)
        self._count("patch", kind)
        if key not in self.objects:
            self._count("create", kind)
        refusal = self.refuse.pop(kind.kind, None)
        if refusal is not None:
            raise refusal
        wanted = copy.deepcopy(dict(obj))
        before = self.objects.get(key)
        if kind.kind == "Deployment":
            wanted["spec"] = {**SERVER_DEFAULT, **wanted["spec"]}
        if before is not None:
            wanted["metadata"]["uid"] = before["metadata"]["uid"]
            if "status" in before:
                wanted["status"] = before["status"]
        return copy.deepcopy(self.put(wanted))

    async def delete(self, kind: Kind, namespace: str, name: str, uid: str) -> bool:
        self._count("delete", kind)
        found = self.objects.get((kind.kind, namespace, name))
        if found is None or found["metadata"]["uid"] != uid:
            return False
        self.remove(kind.kind, namespace, name)
        return True

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Json | None:
        self._count("patch", kind, "status")
        self.status_patches.append((name, copy.deepcopy(dict(status))))
        found = self.objects.get((kind.kind, namespace, name))
        if found is None:
            return None
        merged = _merge(found.get("status") or {}, status)
        return copy.deepcopy(self.put({**found, "status": merged}))

    async def patch_metadata(
        self, kind: Kind, namespace: str, name: str, metadata: Mapping[str, Any]
    ) -> Json | None:
        self._count("patch", kind)
        found = self.objects.get((kind.kind, namespace, name))
        if found is None:
            return None
        return copy.deepcopy(self.put({**found, "metadata": _merge(found["metadata"], metadata)}))

    async def post_event(
        self, subject: Mapping[str, Any], reason: str, message: str, *, warning: bool
    ) -> None:
        self.calls.append(Call("create", "", "events"))
        kind = "Warning" if warning else "Normal"
        self.events.append((subject["metadata"]["name"], kind, reason, message))

    async def secret_values(self, namespace: str, name: str) -> dict[str, str] | None:
        self._count("get", SECRET)
        found = self.objects.get(("Secret", namespace, name))
        return None if found is None else dict(found.get("stringData") or {})


class FakeWatch:
    """The watched state of a FakeCluster (reads of it are not the API server's)."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def get(self, kind: Kind, namespace: str, name: str) -> Json | None:
        found = self.cluster.watched.get((kind.kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def secret(self, namespace: str, name: str) -> SecretInfo | None:
        found = self.cluster.watched.get(("Secret", namespace, name))
        if found is None:
            return None
        keys = set(found.get("data") or {}) | set(found.get("stringData") or {})
        return SecretInfo(frozenset(keys), found["metadata"]["resourceVersion"])

    def binders(self, binder: Kind, target: Kind, namespace: str, name: str) -> list[str]:
        return []


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta.get("namespace", "")), str(meta["name"]))


def _merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> Json:
    """A JSON merge patch: a null deletes."""
    merged = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ---- Kafka and Connect ---------------------------------------------------------------------


@dataclass
class FakeTopics:
    topics: dict[str, ObservedTopic] = field(default_factory=dict)
    newest: dict[str, datetime] = field(default_factory=dict)
    down: bool = False
    asked: list[str] = field(default_factory=list)

    def _answer(self, what: str) -> None:
        self.asked.append(what)
        if self.down:
            raise KafkaTopicsError("Kafka unreachable: connection refused")

    async def observe(self, names: Iterable[str]) -> dict[str, ObservedTopic]:
        self._answer("observe")
        return {name: self.topics[name] for name in names if name in self.topics}

    async def apply(self, plan: TopicPlan) -> list[str]:
        self._answer("apply")
        if plan.create is not None:
            spec = plan.create
            self.topics[plan.name] = ObservedTopic(
                plan.name, spec.partitions, spec.replication_factor, dict(spec.configs)
            )
            return [f"created topic {plan.name}"]
        done = []
        topic = self.topics[plan.name]
        if plan.grow_partitions_to is not None:
            topic = ObservedTopic(
                topic.name, plan.grow_partitions_to, topic.replication_factor, topic.configs
            )
            done.append(f"grew topic {plan.name}")
        if plan.alter_configs:
            configs = {**topic.configs, **plan.alter_configs}
            topic = ObservedTopic(topic.name, topic.partitions, topic.replication_factor, configs)
            done.append(f"set configs on topic {plan.name}")
        self.topics[plan.name] = topic
        return done

    async def delete(self, names: Iterable[str]) -> list[str]:
        self._answer("delete")
        deleted = [name for name in names if self.topics.pop(name, None) is not None]
        return sorted(deleted)

    async def last_record_time(self, topic: str, partitions: int) -> datetime | None:
        self._answer("last_record_time")
        return self.newest.get(topic)

    async def close(self) -> None:
        return None


@dataclass
class FakeConnect:
    connectors: dict[str, ObservedConnector] = field(default_factory=dict)
    down: bool = False
    # Connect refuses these requests with this status (e.g. "restart" -> 409 while rebalancing).
    refuse: dict[str, int] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def _answer(self, what: str) -> None:
        self.asked.append(what)
        if self.down:
            raise ConnectError("Kafka Connect unreachable: connection refused")
        if what in self.refuse:
            raise ConnectError(f"Kafka Connect answered {self.refuse[what]}", self.refuse[what])

    async def observe(self, name: str) -> ObservedConnector | None:
        self._answer("observe")
        return self.connectors.get(name)

    async def put_config(self, name: str, config: Mapping[str, str]) -> bool:
        self._answer("put_config")
        created = name not in self.connectors
        state = self.connectors[name].state if not created else "RUNNING"
        tasks = (TaskState(0, "RUNNING", "worker-1"),)
        self.connectors[name] = ObservedConnector({**config, "name": name}, state, tasks)
        return created

    def _state(self, name: str, state: str) -> None:
        found = self.connectors[name]
        tasks = tuple(TaskState(t.id, state, t.worker_id) for t in found.tasks)
        self.connectors[name] = ObservedConnector(found.config, state, tasks)

    async def pause(self, name: str) -> None:
        self._answer("pause")
        self._state(name, "PAUSED")

    async def resume(self, name: str) -> None:
        self._answer("resume")
        self._state(name, "RUNNING")

    async def stop(self, name: str) -> None:
        self._answer("stop")
        self._state(name, "STOPPED")

    async def restart_failed(self, name: str) -> None:
        self._answer("restart")
        self._state(name, "RUNNING")

    async def delete(self, name: str) -> bool:
        self._answer("delete")
        return self.connectors.pop(name, None) is not None

    async def close(self) -> None:
        return None

    def fail_task(self, name: str, trace: str = "java.lang.Exception: boom") -> None:
        found = self.connectors[name]
        self.connectors[name] = ObservedConnector(
            found.config, found.state, (TaskState(0, "FAILED", "worker-1", trace),)
        )


# ---- Elasticsearch -------------------------------------------------------------------------


@dataclass
class FakeIndices:
    """Versioned indices behind aliases, their documents (id -> version) and checkpoints."""

    indices: dict[str, tuple[Json, Json]] = field(default_factory=dict)  # settings, mappings
    documents: dict[str, dict[str, int]] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    checkpoints: dict[tuple[str, str, str], Checkpoint] = field(default_factory=dict)
    down: bool = False

    def _answer(self) -> None:
        if self.down:
            raise ElasticsearchUnavailable("Elasticsearch unreachable: connection refused")

    async def observe(self, alias: str) -> ObservedIndices:
        self._answer()
        versions = {}
        for name, (settings, mappings) in self.indices.items():
            version = index_version(alias, name)
            if version is not None:
                versions[name] = ObservedIndex(name, version, settings, mappings)
        return ObservedIndices(alias, tuple(sorted(self.aliases.get(alias, ()))), versions)

    async def document_count(self, index: str) -> int:
        self._answer()
        return len(self.documents.get(index, {}))

    async def create(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> bool:
        self._answer()
        if index in self.indices:
            return False
        number = {"number_of_shards": "1", "number_of_replicas": "1"}
        self.indices[index] = (
            {"index": {**number, **{k: str(v) for k, v in settings.items()}}},
            dict(mappings),
        )
        self.documents[index] = {}
        return True

    async def update_in_place(
        self, index: str, settings: Mapping[str, str], mappings: Mapping[str, Any] | None
    ) -> None:
        self._answer()
        old_settings, old_mappings = self.indices[index]
        self.indices[index] = (
            {"index": {**old_settings["index"], **settings}},
            dict(mappings) if mappings is not None else old_mappings,
        )

    async def point_alias(self, alias: str, index: str, current: tuple[str, ...]) -> None:
        self._answer()
        self.aliases[alias] = (index,)

    async def delete(self, alias: str, index: str) -> bool:
        self._answer()
        for key in [k for k in self.checkpoints if k[1] == index]:
            del self.checkpoints[key]
        self.documents.pop(index, None)
        return self.indices.pop(index, None) is not None

    async def delete_checkpoints(self, alias: str) -> bool:
        self._answer()
        gone = [k for k in self.checkpoints if k[0] == alias]
        for key in gone:
            del self.checkpoints[key]
        return bool(gone)

    async def remove_alias(self, alias: str) -> bool:
        self._answer()
        return self.aliases.pop(alias, None) is not None

    async def checkpoint(
        self, alias: str, index: str, stream: Stream = "revisions"
    ) -> Checkpoint | None:
        self._answer()
        return self.checkpoints.get((alias, index, stream))

    async def save_checkpoint(
        self, alias: str, index: str, checkpoint: Checkpoint, stream: Stream = "revisions"
    ) -> None:
        self._answer()
        self.checkpoints[(alias, index, stream)] = checkpoint

    async def copy(
        self, source: str, target: str, progress: Callable[[CopyProgress], Awaitable[None]]
    ) -> CopyProgress:
        self._answer()
        documents = self.documents[source]
        for doc_id, version in documents.items():
            held = self.documents[target].get(doc_id, 0)
            self.documents[target][doc_id] = max(held, version)
        done = CopyProgress(len(documents), len(documents))
        await progress(done)
        return done

    async def close(self) -> None:
        return None
