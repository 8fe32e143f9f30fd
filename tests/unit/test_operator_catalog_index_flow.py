"""A CatalogIndex's flow through the driver, with Elasticsearch and the API server faked: the
first version and its checkpoint, the alias repaired, a version change with each phase in
status before it runs, the worker waiting for its Secrets, Elasticsearch down."""

from __future__ import annotations

from typing import Any

from commerce_operator.backoff import Backoff
from commerce_operator.catalog_index.reconcile import CatalogIndexFlow
from commerce_operator.driver import Reconciler
from commerce_operator.kube import CATALOG_INDEX
from commerce_operator.owned_objects import OwnedObjects
from commerce_services.contracts import START, Checkpoint
from tests.unit.operator_fakes import FakeCluster, FakeIndices

NS, NAME, ALIAS = "shop", "products", "products"
MAPPINGS = {"properties": {"title": {"type": "text"}}}


class Catalog:
    def __init__(self) -> None:
        self.cluster, self.indices = FakeCluster(), FakeIndices()
        self.flow = CatalogIndexFlow(
            self.indices,
            self.cluster,
            self.cluster.state,
            OwnedObjects(self.cluster, self.cluster.state),
            elasticsearch_url="http://es:9200",
            observe_every=60,
        )
        self.driver: Reconciler[Any] = Reconciler(
            self.flow, self.cluster, self.cluster.state, Backoff(), jitter=lambda: 0.5
        )
        for secret, keys in (
            ("mongo", ["uri"]),
            ("product-db", ["host", "port", "database", "username", "password"]),
            ("kafka", ["bootstrapServers"]),
        ):
            self.cluster.put(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": secret, "namespace": NS},
                    "stringData": dict.fromkeys(keys, "x"),
                }
            )
        # What the CatalogIndex reads of the product outbox's OutboxConnector: its status.
        self.cluster.put(
            {
                "apiVersion": "commerce.io/v1alpha1",
                "kind": "OutboxConnector",
                "metadata": {"name": "product-outbox", "namespace": NS},
                "status": {"eventTopics": {"product": "commerce.product.events"}},
            }
        )
        self.resource(MAPPINGS)

    def resource(self, mappings: dict[str, Any]) -> None:
        self.cluster.put(
            {
                "apiVersion": CATALOG_INDEX.api_version,
                "kind": "CatalogIndex",
                "metadata": {"name": NAME, "namespace": NS},
                "spec": {
                    "alias": ALIAS,
                    "mappings": mappings,
                    "source": {
                        "documentStore": {"secretName": "mongo"},
                        "productDatabase": {"secretName": "product-db"},
                        "broker": {"secretName": "kafka"},
                        "productEvents": {"outboxConnector": "product-outbox"},
                    },
                    "syncWorker": {"image": "commerce:1", "replicas": 0},
                },
            }
        )

    def worker_rolled_out(self) -> None:
        """What the Deployment controller writes for a worker with no replicas."""
        found = self.cluster.find("Deployment", NS, "products-sync")
        assert found is not None
        generation = found["metadata"]["generation"]
        self.cluster.put({**found, "status": {"observedGeneration": generation}})

    async def reconcile(self) -> float | None:
        return await self.driver.reconcile((NS, NAME))

    def status(self) -> dict[str, Any]:
        found = self.cluster.find("CatalogIndex", NS, NAME)
        assert found is not None
        status: dict[str, Any] = found["status"]
        return status

    def ready(self) -> tuple[str, str]:
        ready = {c["type"]: c for c in self.status()["conditions"]}["Ready"]
        return ready["status"], ready["reason"]


async def test_the_first_version_its_checkpoint_the_alias_and_the_worker() -> None:
    catalog = Catalog()
    await catalog.reconcile()
    assert set(catalog.indices.indices) == {"products-v1"}
    assert catalog.indices.aliases == {ALIAS: ("products-v1",)}
    # The worker starts from the catalog's beginning in a new version, whatever was left.
    assert catalog.indices.checkpoints[(ALIAS, "products-v1", "revisions")] == START
    status = catalog.status()
    assert (status["currentIndex"], status["currentVersion"], status["alias"]) == (
        "products-v1",
        1,
        ALIAS,
    )
    worker = catalog.cluster.find("Deployment", NS, "products-sync")
    assert worker is not None
    assert worker["spec"]["replicas"] == 0
    assert "IndexCreated" in catalog.cluster.reasons(NAME)


async def test_the_alias_moved_behind_the_operators_back_is_repaired() -> None:
    catalog = Catalog()
    await catalog.reconcile()
    catalog.indices.aliases[ALIAS] = ()
    await catalog.reconcile()
    assert catalog.indices.aliases[ALIAS] == ("products-v1",)
    assert "AliasRepaired" in catalog.cluster.reasons(NAME)


async def test_a_version_change_writes_each_phase_before_it_runs() -> None:
    catalog = Catalog()
    await catalog.reconcile()
    catalog.worker_rolled_out()
    catalog.indices.documents["products-v1"] = {"p1": 3, "p2": 5}
    catalog.indices.checkpoints[(ALIAS, "products-v1", "revisions")] = Checkpoint(1000, "r9")
    catalog.cluster.status_patches.clear()
    # A field's type changed: Elasticsearch cannot change it in place.
    catalog.resource({"properties": {"title": {"type": "keyword"}}})
    await catalog.reconcile()
    phases = [
        patch["migration"]["phase"]
        for _, patch in catalog.cluster.status_patches
        if patch.get("migration")
    ]
    assert phases == ["Creating", "Copying", "Swapping", "CleaningUp"]
    assert catalog.indices.aliases[ALIAS] == ("products-v2",)
    assert catalog.indices.documents["products-v2"] == {"p1": 3, "p2": 5}
    # The new version's checkpoint is the old one's, taken before the copy.
    assert catalog.indices.checkpoints[(ALIAS, "products-v2", "revisions")] == Checkpoint(
        1000, "r9"
    )
    status = catalog.status()
    assert (status["currentIndex"], status["previousIndices"]) == ("products-v2", ["products-v1"])
    assert "migration" not in status
    assert catalog.ready() == ("True", "Reconciled")


async def test_the_worker_waits_for_its_secrets_and_elasticsearch_down_is_retried() -> None:
    catalog = Catalog()
    catalog.cluster.remove("Secret", NS, "mongo")
    assert await catalog.reconcile() == 2
    assert catalog.ready() == ("False", "BindingNotFound")
    assert catalog.cluster.find("Deployment", NS, "products-sync") is None
    catalog.indices.down = True
    assert await catalog.reconcile() == 4
    assert catalog.ready() == ("False", "ElasticsearchUnavailable")
