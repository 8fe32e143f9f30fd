"""The CatalogIndex flow against the real kube-apiserver and Elasticsearch (no reindex
module: version changes copy documents in the operator's own code).

Most tests run the driver one pass at a time (`Passes`: the flow on the real adapters, the
watched state read from the API server), so every step is observable between passes; the
passes write status and Events as the operator does, and the sync worker, `commerce-search
run`, runs as a real pod on the stack's node. The last test runs the operator as a process,
with a real catalog being written while the index changes version. Every resource and index
is named after the `unique` fixture and removed afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from elasticsearch import AsyncElasticsearch
from kubernetes import client
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_devstack import connect_secrets
from commerce_devstack.endpoints import Endpoints
from commerce_operator.catalog_index.elasticsearch_indices import ElasticsearchIndices
from commerce_operator.catalog_index.reconcile import CatalogIndexFlow
from commerce_operator.kube import CATALOG_INDEX, Kind
from commerce_operator.kube_api import KubernetesApi
from commerce_operator.outbox_connector.connect_client import ConnectClient
from commerce_operator.outbox_connector.kafka_topics import KafkaTopics
from commerce_operator.owned_objects import OwnedObjects
from commerce_operator.resource import PAUSED_ANNOTATION
from commerce_operator.settings import ElasticsearchSettings
from commerce_services.contracts import START, Checkpoint, checkpoint_index, heartbeat_topic
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.categories.store import CategoryStore
from commerce_services.runtime.clock import utc_now
from commerce_services.search.documents import epoch_ms
from commerce_services.search.product_events import ProductEvents, decode_position, encode_position
from tests.stack.connect_secret_mounts import (
    create_secret,
    operator_env,
    outbox_settings,
    released_namespace,
    replication_values,
)
from tests.stack.node_image import project_image
from tests.stack.operator_runs import ApiState, OperatorProcess, Passes
from tests.stack.test_search_sync import _content

GROUP, VERSION, PLURAL = "commerce.io", "v1alpha1", "catalogindexes"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "30-catalog-index.yaml"
SAMPLE_SPEC: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())["spec"]
# Small pages, so that a copy of a few hundred documents takes many bulk requests.
COPY_BATCH = 40


@pytest.fixture
def namespace(
    kube: client.ApiClient,
    commerce_crds: list[str],
    stack: Endpoints,
    unique: str,
    product_events_topic: str,
) -> Iterator[str]:
    """A namespace with the Secrets of the catalog's MongoDB, the product database and Kafka,
    and the product outbox's OutboxConnector `product-outbox` publishing the topic of the
    session's own relay of the product database (a stopped connector of its own, when an
    operator process reconciles it, its replication Secret mounted on Connect; the passes
    here only read its status). Afterwards that connector is gone from Connect, whatever
    became of the test."""
    with released_namespace(kube, stack, f"cidx-{unique}") as name:
        yield _secrets_and_product_outbox(kube, stack, name, product_events_topic)


def _secrets_and_product_outbox(
    kube: client.ApiClient, stack: Endpoints, name: str, product_events_topic: str
) -> str:
    dsn = stack.mariadb_dsn("product")
    create_secret(kube, stack, name, "replication", replication_values(stack))
    core = client.CoreV1Api(kube)
    for secret, data in (
        ("catalog-mongo", {"uri": stack["ferretdb"]["uri"]}),
        ("kafka", {"bootstrapServers": stack["kafka"]["bootstrap_servers"]}),
        (
            "product-db",
            {
                "host": dsn["host"],
                "port": str(dsn["port"]),
                "database": dsn["database"],
                "username": dsn["user"],
                "password": dsn["password"],
            },
        ),
    ):
        body = {"metadata": {"name": secret}, "stringData": data}
        core.create_namespaced_secret(name, cast(Any, body))
    objects = client.CustomObjectsApi(kube)
    prefix = product_events_topic.removesuffix(".product.events")
    outbox = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "OutboxConnector",
        "metadata": {"name": "product-outbox"},
        "spec": {
            "database": {
                "host": dsn["host"],
                "port": dsn["port"],
                "name": dsn["database"],
                "credentialsSecretRef": {"name": "replication"},
            },
            "aggregateTypes": ["product"],
            "topicPrefix": prefix,
            "state": "stopped",
        },
    }
    objects.create_namespaced_custom_object(GROUP, VERSION, name, "outboxconnectors", outbox)
    objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        name,
        "outboxconnectors",
        "product-outbox",
        {"status": {"eventTopics": {"product": product_events_topic}}},
    )
    return name


@pytest.fixture
def worker_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sync worker's image, which the node holds, in place of the samples' placeholder."""
    image = project_image(tmp_path)
    monkeypatch.setitem(SAMPLE_SPEC["syncWorker"], "image", image)
    return image


class RecordingApi(KubernetesApi):
    """The API server, with every status written kept in order (a copy writes its progress
    before the pass ends)."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(api)
        self.statuses: list[dict[str, Any]] = []

    async def patch_status(
        self, kind: Kind, namespace: str, name: str, status: Any
    ) -> dict[str, Any] | None:
        self.statuses.append(json.loads(json.dumps(status)))
        return await super().patch_status(kind, namespace, name, status)


class Outside:
    """Elasticsearch as the flow sees it, the settings it runs with, the API server."""

    def __init__(self, stack: Endpoints, kube: client.ApiClient) -> None:
        self.settings = ElasticsearchSettings(
            url=stack["elasticsearch"]["url"], copy_batch_size=COPY_BATCH
        )
        self.indices = ElasticsearchIndices.for_settings(self.settings)
        self.kube = RecordingApi(kube)
        state = ApiState(kube)
        flow = CatalogIndexFlow(
            self.indices,
            self.kube,
            state,
            OwnedObjects(self.kube, state),
            elasticsearch_url=self.settings.url,
            observe_every=60,
        )
        self.passes = Passes(flow, self.kube, state)
        self.apps = client.AppsV1Api(kube)

    async def finalize(self, body: dict[str, Any]) -> list[str]:
        return await self.passes.reconciler.finalize(body)


@pytest.fixture
async def outside(stack: Endpoints, kube: client.ApiClient) -> AsyncIterator[Outside]:
    found = Outside(stack, kube)
    yield found
    await found.indices.close()


@pytest.fixture
def objects(kube: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


class Resource:
    """One CatalogIndex on the API server and the operations the tests do on it."""

    def __init__(
        self,
        objects: client.CustomObjectsApi,
        outside: Outside,
        namespace: str,
        name: str,
        spec: dict[str, Any],
    ) -> None:
        self.objects, self.outside, self.namespace, self.name = objects, outside, namespace, name
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CatalogIndex",
            "metadata": {"name": name},
            "spec": spec,
        }
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    @property
    def statuses(self) -> list[dict[str, Any]]:
        return self.outside.kube.statuses

    def body(self) -> dict[str, Any]:
        answer = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )
        assert isinstance(answer, dict)
        return answer

    def status(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.body().get("status") or {})

    def patch(self, patch: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, patch
        )

    def set_mappings(self, mappings: dict[str, Any]) -> None:
        """The whole mapping replaced (a merge patch would keep the fields it leaves out)."""
        self.objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
            [{"op": "replace", "path": "/spec/mappings", "value": mappings}],
            _content_type="application/json-patch+json",
        )

    def condition(self, kind: str = "Ready") -> dict[str, Any]:
        conditions = {c["type"]: c for c in self.status().get("conditions") or ()}
        return cast(dict[str, Any], conditions.get(kind, {}))

    def ready(self) -> bool:
        return bool(self.condition().get("status") == "True")

    async def reconcile(self) -> float | None:
        """One pass; when the driver would look again."""
        return await self.outside.passes.once(self.namespace, self.name)

    async def converge(self, done: Callable[[Resource], bool], timeout_s: float = 60) -> None:
        """Passes, as the work queue and the Deployment's events would run them, until
        `done`."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.reconcile()
            if done(self):
                return
            assert time.monotonic() < deadline, f"never converged: {self.condition()}"
            await asyncio.sleep(0.5)

    def events(self) -> list[str]:
        return [reason for reason, _ in self.event_messages()]

    def event_messages(self) -> list[tuple[str, str]]:
        answer = client.CoreV1Api(self.objects.api_client).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        )
        return [(e.reason or "", e.message or "") for e in answer.items]

    def worker(self) -> dict[str, Any]:
        found = self.outside.apps.read_namespaced_deployment(f"{self.name}-sync", self.namespace)
        return cast(dict[str, Any], self.objects.api_client.sanitize_for_serialization(found))


def ready(resource: Resource) -> bool:
    return resource.ready()


def _spec(alias: str, catalog: str, **changes: Any) -> dict[str, Any]:
    source = {**SAMPLE_SPEC["source"], "database": catalog}
    return {**SAMPLE_SPEC, "alias": alias, "source": source, **changes}


def _mappings(**fields: Any) -> dict[str, Any]:
    """The sample's mapping with some fields replaced or added."""
    mappings = json.loads(json.dumps(SAMPLE_SPEC["mappings"]))
    mappings["properties"].update(fields)
    return cast(dict[str, Any], mappings)


async def _aliased(es: AsyncElasticsearch, alias: str) -> list[str]:
    answer = await es.options(ignore_status=404).indices.get_alias(name=alias)
    return [] if answer.meta.status == 404 else sorted(answer.body)


async def _versions(es: AsyncElasticsearch, alias: str) -> list[str]:
    found = await es.indices.get(index=f"{alias}-v*", expand_wildcards="all")
    return sorted(found.body)


async def _seed(es: AsyncElasticsearch, index: str, count: int) -> None:
    """Documents as the sync writes them: the mapping's fields, external versions."""
    operations: list[dict[str, Any]] = []
    for n in range(count):
        operations.append(
            {
                "index": {
                    "_index": index,
                    "_id": f"p{n}",
                    "version": 1000 + n,
                    "version_type": "external",
                }
            }
        )
        operations.append(
            {
                "product_id": f"p{n}",
                "title": f"mug number {n}",
                "brand": "Acme",
                "prices": [990],
                "price_min": 990,
                "price_max": 990,
                "currency": ["EUR"],
                "available": True,
                "suggest": {"input": [f"mug number {n}"]},
            }
        )
    answer = await es.bulk(operations=operations, refresh=True)
    assert not answer["errors"]


async def test_ready_with_index_alias_and_worker_then_in_place_changes_drift_and_pause(
    stack: Endpoints,
    namespace: str,
    worker_image: str,
    outside: Outside,
    objects: client.CustomObjectsApi,
    es: AsyncElasticsearch,
    alias: str,
    unique: str,
    product_events_topic: str,
) -> None:
    created_ms = epoch_ms(utc_now())
    resource = Resource(objects, outside, namespace, "products", _spec(alias, f"cidx_{unique}"))
    events = (stack["kafka"]["bootstrap_servers"], product_events_topic)
    index = f"{alias}-v1"

    # The first version behind the alias, the worker running: Ready.
    await resource.converge(ready)
    assert await _aliased(es, alias) == [index]
    live = (await es.indices.get_mapping(index=index))[index]["mappings"]
    assert live["dynamic"] == "strict"
    assert live["properties"]["suggest"]["type"] == "completion"
    settings = (await es.indices.get_settings(index=index))[index]["settings"]["index"]
    assert (settings["number_of_shards"], settings["refresh_interval"]) == ("1", "1s")
    # The operator set the worker's checkpoint: from the start of the catalog.
    await _from_the_start(outside, alias, index, created_ms, events)
    status = resource.status()
    assert status["observedGeneration"] == resource.body()["metadata"]["generation"]
    assert (status["alias"], status["currentIndex"], status["currentVersion"]) == (alias, index, 1)
    assert (status["documentCount"], status["previousIndices"]) == (0, [])
    assert "migration" not in status
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert {"IndexCreated", "Reconciled"} <= set(resource.events())

    deployment = resource.worker()
    meta = deployment["metadata"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "commerce-operator"
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("CatalogIndex", "products", True)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["commerce-search", "run"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["SEARCH_CREATE_INDEX"] == "false"
    assert env["SEARCH_ALIAS"] == alias
    assert env["SEARCH_ELASTICSEARCH_URL"] == outside.settings.url
    assert env["SEARCH_DB_PASSWORD"] == {"name": "product-db", "key": "password"}
    assert env["SEARCH_MONGO_URI"] == {"name": "catalog-mongo", "key": "uri"}
    # A real `commerce-search run`, waiting for catalog changes.
    assert resource.worker()["status"]["readyReplicas"] == 1

    # Another pass with nothing to do changes nothing, not even the status.
    written = len(resource.statuses)
    await resource.reconcile()
    assert resource.ready()
    assert len(resource.statuses) == written

    # A compatible change (a new field, a dynamic setting) is applied to the same index.
    resource.patch(
        {
            "spec": {
                "mappings": _mappings(color={"type": "keyword"}),
                "settings": {"refresh_interval": "2s"},
            }
        }
    )
    await resource.converge(ready)
    assert await _versions(es, alias) == [index]
    live = (await es.indices.get_mapping(index=index))[index]["mappings"]
    assert live["properties"]["color"] == {"type": "keyword"}
    settings = (await es.indices.get_settings(index=index))[index]["settings"]["index"]
    assert settings["refresh_interval"] == "2s"
    assert "IndexUpdated" in resource.events()

    # Drift: the alias removed, then the index deleted: both come back.
    await _seed(es, index, 3)
    await es.indices.delete_alias(index=index, name=alias)
    await resource.converge(ready)
    assert await _aliased(es, alias) == [index]
    assert "AliasRepaired" in resource.events()
    await es.indices.delete(index=index)
    # What an earlier index of that name left: a checkpoint far along, which would make the
    # worker skip the changes before it.
    stale = Checkpoint(1_600_000_000_000, encode_position({0: 10**9, 1: 10**9, 2: 10**9}))
    await outside.indices.save_checkpoint(alias, index, stale)
    await resource.converge(ready)
    assert await _aliased(es, alias) == [index]
    # Empty again, and its checkpoint back at the start: the worker refills it.
    await _from_the_start(outside, alias, index, created_ms, events)
    assert resource.status()["documentCount"] == 0

    # Paused: nothing is repaired; the conditions say so. Resumed: repaired.
    resource.patch({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}})
    await es.indices.delete_alias(index=index, name=alias)
    await resource.reconcile()
    assert await _aliased(es, alias) == []
    reconciling = resource.condition("Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("False", "Paused")
    assert resource.condition()["status"] == "True"  # the index is still there
    resource.patch({"metadata": {"annotations": {PAUSED_ANNOTATION: None}}})
    await resource.converge(ready)
    assert await _aliased(es, alias) == [index]
    assert {"Paused", "Resumed"} <= set(resource.events())

    # Retain: deleting keeps the index and the alias.
    assert await outside.finalize(resource.body()) == []
    assert await _aliased(es, alias) == [index]


async def _from_the_start(
    outside: Outside, alias: str, index: str, since_ms: int, events: tuple[str, str]
) -> None:
    """`index`'s checkpoint is START, where the operator puts a new index's, or where the real
    sync worker got to from there: a worker seeing START loads the catalog, then saves the
    position it took from the topic before the scan (events:<partition>=<offset>,...) and the
    load's start time (sync.py), later moving both forward only. So a position within the
    topic, from after `since_ms` (before the operator made the index); never one left from
    before. `events`: the bootstrap servers and topic the worker reads."""
    checkpoint = await outside.indices.checkpoint(alias, index)
    assert checkpoint is not None, f"{index} has no checkpoint"
    if checkpoint == START:
        return
    position = decode_position(checkpoint.revision_id)
    assert position is not None, f"{checkpoint} holds no position in the product events"
    assert checkpoint.updated_at_ms >= since_ms, f"{checkpoint} is older than {index}"
    topic = ProductEvents(*events)
    try:
        end = await topic.end()
    finally:
        await topic.close()
    beyond = {p: o for p, o in position.items() if o > end.get(p, 0)}
    assert not beyond, f"{checkpoint} is past the end of {topic.topic}: {end}"


async def test_an_incompatible_change_copies_every_document_and_swaps_while_searches_go_on(
    namespace: str,
    worker_image: str,
    outside: Outside,
    objects: client.CustomObjectsApi,
    es: AsyncElasticsearch,
    alias: str,
    unique: str,
) -> None:
    spec = _spec(alias, f"cidx_{unique}", syncWorker={"image": "i", "replicas": 0})
    resource = Resource(objects, outside, namespace, "products", spec)
    await resource.converge(ready)
    v1, v2, v3 = (f"{alias}-v{n}" for n in (1, 2, 3))
    documents = 400
    await _seed(es, v1, documents)
    # Where the worker had got to in v1: v2 must start from there.
    worker_checkpoint = Checkpoint(1_700_000_000_000, "rev-42")
    await outside.indices.save_checkpoint(alias, v1, worker_checkpoint)
    stock_checkpoint = Checkpoint(1_700_000_000_500, "SKU-7")
    await outside.indices.save_checkpoint(alias, v1, stock_checkpoint, "stock")

    # Searches through the alias, all along: never an error, never an empty answer.
    stop = asyncio.Event()
    answers: list[int] = []
    errors: list[str] = []

    async def search_loop() -> None:
        while not stop.is_set():
            try:
                answer = await es.search(index=alias, size=0, track_total_hits=True)
                answers.append(int(answer["hits"]["total"]["value"]))
            except Exception as exc:  # counted, then asserted on
                errors.append(repr(exc))
            await asyncio.sleep(0.005)

    searching = asyncio.create_task(search_loop())
    try:
        # brand: text -> keyword cannot be changed in place.
        resource.set_mappings(_mappings(brand={"type": "keyword"}))
        await resource.converge(ready)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await searching
    assert errors == []
    assert answers
    assert min(answers) == documents

    assert await _aliased(es, alias) == [v2]
    live = (await es.indices.get_mapping(index=v2))[v2]["mappings"]
    assert live["properties"]["brand"] == {"type": "keyword"}
    # Every document, with its own version (the sync's external version).
    copied = await es.search(index=v2, size=documents, version=True, query={"match_all": {}})
    versions = {h["_id"]: h["_version"] for h in copied["hits"]["hits"]}
    assert versions == {f"p{n}": 1000 + n for n in range(documents)}
    assert await outside.indices.checkpoint(alias, v2) == worker_checkpoint
    assert await outside.indices.checkpoint(alias, v2, "stock") == stock_checkpoint
    status = resource.status()
    assert (status["currentIndex"], status["currentVersion"]) == (v2, 2)
    assert (status["documentCount"], status["previousIndices"]) == (documents, [v1])
    assert "migration" not in status
    phases = [s["migration"]["phase"] for s in resource.statuses if s.get("migration")]
    assert (phases[0], phases[-1]) == ("Creating", "CleaningUp")
    assert {"Copying", "Swapping"} <= set(phases)
    copying = [s["migration"] for s in resource.statuses if s.get("migration")]
    assert copying[-1]["copiedDocuments"] == copying[-1]["totalDocuments"] == documents
    assert {"MigrationStarted", "IndexMigrated", "MigrationInProgress"} <= set(resource.events())
    assert any("brand changes type" in message for _, message in resource.event_messages())

    # The next version deletes the oldest (one previous version kept)...
    resource.patch({"spec": {"settings": {**SAMPLE_SPEC["settings"], "number_of_shards": 2}}})
    await resource.converge(ready)
    assert await _versions(es, alias) == [v2, v3]
    assert await _aliased(es, alias) == [v3]
    assert (await es.count(index=alias))["count"] == documents
    assert "IndexDeleted" in resource.events()
    # ...and with none kept, only the current one stays; its checkpoints are gone with them.
    resource.patch({"spec": {"retention": {"previousVersions": 0}}})
    await resource.converge(lambda r: r.status().get("previousIndices") == [])
    assert await _versions(es, alias) == [v3]
    await es.indices.refresh(index=checkpoint_index(alias))
    held = await es.search(index=checkpoint_index(alias), query={"match_all": {}})
    assert sorted(h["_id"] for h in held["hits"]["hits"]) == [v3, f"{v3}:stock"]


async def test_an_interrupted_version_change_is_resumed_into_the_same_index(
    namespace: str,
    worker_image: str,
    outside: Outside,
    objects: client.CustomObjectsApi,
    es: AsyncElasticsearch,
    alias: str,
    unique: str,
) -> None:
    spec = _spec(alias, f"cidx_{unique}", syncWorker={"image": "i", "replicas": 0})
    resource = Resource(objects, outside, namespace, "products", spec)
    await resource.converge(ready)
    v1, v2 = f"{alias}-v1", f"{alias}-v2"
    await _seed(es, v1, 50)
    new_mappings = _mappings(brand={"type": "keyword"})
    # What an operator stopped half-way leaves: the target with part of the documents, its
    # checkpoint, and status.migration naming it.
    await outside.indices.create(v2, spec["settings"], new_mappings)
    await outside.indices.save_checkpoint(alias, v2, Checkpoint(5, "early"))
    await _seed(es, v2, 20)
    migration = {
        "phase": "Copying",
        "fromIndex": v1,
        "toIndex": v2,
        "copiedDocuments": 20,
        "totalDocuments": 50,
        "startedAt": "2026-01-01T00:00:00Z",
    }
    await outside.kube.patch_status(CATALOG_INDEX, namespace, "products", {"migration": migration})
    resource.set_mappings(new_mappings)

    await resource.converge(ready)
    assert await _versions(es, alias) == [v1, v2]
    assert await _aliased(es, alias) == [v2]
    assert (await es.count(index=v2))["count"] == 50
    # The checkpoint of the first attempt is kept: it is older than anything either missed.
    assert await outside.indices.checkpoint(alias, v2) == Checkpoint(5, "early")
    assert "MigrationResumed" in resource.events()
    assert "migration" not in resource.status()


async def test_refusals_stall_and_delete_removes_indices_alias_and_checkpoints(
    namespace: str,
    worker_image: str,
    outside: Outside,
    objects: client.CustomObjectsApi,
    es: AsyncElasticsearch,
    alias: str,
    unique: str,
) -> None:
    spec = _spec(
        alias,
        f"cidx_{unique}",
        syncWorker={"image": "i", "replicas": 0},
        mappings={"properties": {"title": {"type": "txt"}}},
        deletionPolicy="Delete",
    )
    resource = Resource(objects, outside, namespace, "products", spec)
    # A mapping Elasticsearch refuses: Stalled, with its reason; nothing is created, and it is
    # not retried: only the periodic look comes back (its period, jittered by +-10%).
    again = await resource.reconcile()
    observe_every = outside.passes.reconciler.flow.observe_every
    assert again is not None
    assert 0.9 * observe_every <= again <= 1.1 * observe_every
    ready_now = resource.condition()
    assert (ready_now["status"], ready_now["reason"]) == ("False", "InvalidSpec")
    assert "The mapper type [txt] declared on" in ready_now["message"]
    assert resource.condition("Stalled")["status"] == "True"
    assert await _aliased(es, alias) == []

    resource.set_mappings(SAMPLE_SPEC["mappings"])
    await resource.converge(ready)
    await _seed(es, f"{alias}-v1", 5)
    # A change whose documents the new version refuses stalls too; searches stay on v1.
    resource.set_mappings(_mappings(title={"type": "long"}))
    await resource.reconcile()
    assert resource.condition("Stalled")["status"] == "True"
    assert "refused document" in resource.condition()["message"]
    assert await _aliased(es, alias) == [f"{alias}-v1"]
    # Back to a good spec: the unfinished version is deleted.
    resource.set_mappings(SAMPLE_SPEC["mappings"])
    await resource.converge(ready)
    assert await _versions(es, alias) == [f"{alias}-v1"]

    # A missing source Secret is reported, retried.
    client.CoreV1Api(objects.api_client).delete_namespaced_secret("product-db", namespace)
    assert await resource.reconcile() == 2  # retried with the backoff
    ready_now = resource.condition()
    assert (ready_now["reason"], ready_now["status"]) == ("BindingNotFound", "False")
    assert "'product-db' not found" in ready_now["message"]

    # Delete: every version, the alias and the checkpoints; twice is no error.
    removed = await outside.finalize(resource.body())
    assert f"deleted index {alias}-v1" in removed
    assert f"deleted the sync checkpoints of {alias}" in removed
    assert await _aliased(es, alias) == []
    assert await _versions(es, alias) == []
    assert not await es.indices.exists(index=checkpoint_index(alias))
    assert await outside.finalize(resource.body()) == []


def test_an_invalid_spec_is_refused_by_the_api_server(
    namespace: str, objects: client.CustomObjectsApi, alias: str
) -> None:
    for spec, message in (
        (_spec("Products", "c"), "alias must be lowercase"),
        (_spec(f"{alias}-v3", "c"), "alias must not end in -v<N>"),
        (_spec(alias, "c", syncWorker={"image": "i", "replicas": 2}), "spec.syncWorker.replicas"),
        (
            _spec(alias, "c", retention={"previousVersions": 11}),
            "spec.retention.previousVersions",
        ),
        (_spec(alias, "c", deletionPolicy="Purge"), "spec.deletionPolicy"),
    ):
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CatalogIndex",
            "metadata": {"name": "invalid"},
            "spec": spec,
        }
        with pytest.raises(client.ApiException) as refused:
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        assert refused.value.status == 422
        assert message in json.loads(refused.value.body or "{}")["message"]


async def _eventually(
    what: str, probe: Callable[[], Awaitable[bool]], timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def test_the_operator_process_indexes_a_catalog_written_during_a_version_change(
    stack: Endpoints,
    namespace: str,
    worker_image: str,
    objects: client.CustomObjectsApi,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPERATOR_ELASTICSEARCH_URL", stack["elasticsearch"]["url"])
    monkeypatch.setenv("OPERATOR_CATALOG_COPY_BATCH", "10")
    # The product outbox's OutboxConnector is reconciled too (a stopped connector of its own,
    # its password named by reference to the mounted Secret).
    outbox = outbox_settings(stack)
    for variable, value in operator_env(outbox).items():
        monkeypatch.setenv(variable, value)
    operator = OperatorProcess(stack, namespace, tmp_path / "operator.log", resync_seconds=2)
    connector = f"{namespace}.product-outbox"
    store = CatalogStore(catalog_db.client, catalog_db.name, engine, utc_now)
    category = (await CategoryStore(engine, utc_now).create(f"Mugs {unique}", None)).id
    written = [
        (await store.create(_content(category, f"A{n}-{unique}"))).product_id for n in range(30)
    ]

    def get() -> dict[str, Any]:
        found = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "products")
        return cast(dict[str, Any], found)

    def status() -> dict[str, Any]:
        return cast(dict[str, Any], get().get("status") or {})

    def ready() -> bool:
        conditions = {c["type"]: c for c in status().get("conditions", [])}
        return bool(conditions.get("Ready", {}).get("status") == "True")

    async def indexed() -> set[str]:
        """What searches through the alias find (nothing while there is no alias yet)."""
        if not await _aliased(es, alias):
            return set()
        await es.indices.refresh(index=alias)
        found = await es.search(index=alias, size=1000, source=False, query={"match_all": {}})
        return {h["_id"] for h in found["hits"]["hits"]}

    try:
        operator.start()
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CatalogIndex",
            "metadata": {"name": "products"},
            "spec": _spec(alias, catalog_db.name),
        }
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        # The real worker fills the index the operator created, through the alias.
        await _eventually(
            "Ready and every product indexed",
            lambda: _all_of(asyncio.to_thread(ready), _equal(indexed(), set(written))),
        )
        assert not get()["metadata"].get("finalizers")  # Retain: deleting never waits for us

        # The catalog keeps changing while the index changes version.
        stop = asyncio.Event()

        async def write_products() -> None:
            n = 0
            while not stop.is_set():
                product = await store.create(_content(category, f"B{n}-{unique}"))
                written.append(product.product_id)
                n += 1
                await asyncio.sleep(0.05)

        writing = asyncio.create_task(write_products())
        try:
            await asyncio.sleep(0.5)
            objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                "products",
                [
                    {
                        "op": "replace",
                        "path": "/spec/mappings",
                        "value": _mappings(brand={"type": "keyword"}),
                    }
                ],
                _content_type="application/json-patch+json",
            )
            await _eventually(
                "the alias on v2, Ready",
                lambda: asyncio.to_thread(
                    lambda: status().get("currentIndex") == f"{alias}-v2" and ready()
                ),
            )
            await asyncio.sleep(1)
        finally:
            stop.set()
            await writing
        # Every product, those written during the copy and after the swap included.
        await _eventually("every product indexed", lambda: _equal(indexed(), set(written)), 30)
        assert "IndexMigrated" in [
            e.reason
            for e in client.CoreV1Api(objects.api_client)
            .list_namespaced_event(namespace, field_selector="involvedObject.name=products")
            .items
        ]

        # Delete: the finalizer comes with the policy, and the indices go with the resource.
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "products", {"spec": {"deletionPolicy": "Delete"}}
        )
        await _eventually(
            "the finalizer",
            lambda: asyncio.to_thread(lambda: bool(get()["metadata"].get("finalizers"))),
            30,
        )
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "products")
        await _eventually("the indices deleted", lambda: _equal(_versions(es, alias), []), 30)
        assert await _aliased(es, alias) == []

        # The product outbox's connector, made by the same operator, names its credentials by
        # reference to the mounted Secret: the password shows nowhere on Connect.
        connect = ConnectClient.for_url(outbox.connect_url)
        try:
            await _eventually(
                f"connector {connector}", lambda: _present(connect.get_config(connector))
            )
            config = await connect.get_config(connector)
        finally:
            await connect.close()
        assert config is not None
        mounted = Path(outbox.secrets_mount_root)
        reference = connect_secrets.reference(mounted, f"{namespace}/replication", "password")
        assert config["database.password"] == reference
        assert stack.secret(stack["mariadb"]["replication"]["password_ref"]) not in str(config)
    finally:
        operator.stop()
        # The connector goes with the namespace (its fixture); its own topics go here.
        topics = KafkaTopics(outbox.bootstrap_servers)
        try:
            await topics.delete([heartbeat_topic(connector), f"{connector}.schema-history"])
        finally:
            await topics.close()


async def _equal(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _present(value: Awaitable[object]) -> bool:
    return await value is not None


async def _all_of(*checks: Awaitable[bool]) -> bool:
    return all([await check for check in checks])
