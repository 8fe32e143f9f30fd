"""Fixtures for tests against the real servers of the local stack.

There is no skip here: when the stack is not up, or a component does not answer, the test
fails with a message that says what to run. `make test` brings the stack up first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from elasticsearch import AsyncElasticsearch
from kubernetes import client, config
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack import endpoints
from commerce_devstack.endpoints import Endpoints, StackNotRunning
from commerce_devstack.local_shop import PARTITIONS, outbox_relays
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.inventory.model import Reservation
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.migrations import upgrade
from commerce_services.product.settings import ProductSettings
from commerce_services.runtime.clock import utc_now
from tests.stack.access_tokens import AUTH_SETTINGS, jwks_served
from tests.stack.migrations import migrator as _migrator

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def stack() -> Endpoints:
    try:
        return endpoints.load()
    except StackNotRunning as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def jwks_url() -> Iterator[str]:
    """Where services run as processes fetch the test session's JWKS (access_tokens.KEYS)."""
    with jwks_served() as url:
        yield url


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests never collide with earlier runs on the same stack."""
    return uuid.uuid4().hex[:8]


# ---- product service ----------------------------------------------------------------------


TTL = timedelta(minutes=15)


@pytest.fixture(scope="session")
def product_settings(stack: Endpoints) -> ProductSettings:
    product_settings = ProductSettings.from_values(
        {**stack.service_settings("product"), **AUTH_SETTINGS, "db_pool_size": 40}
    )
    upgrade(_migrator(stack, "product"))  # the schema comes from the migrations, as in production
    return product_settings


@pytest.fixture
async def engine(product_settings: ProductSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        product_settings.database_url(),
        pool_size=product_settings.db_pool_size,
        max_overflow=0,
    )
    yield engine
    await engine.dispose()


class Clock:
    """A settable clock, so expiry is tested without waiting."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: AsyncEngine, clock: Clock) -> InventoryStore:
    return InventoryStore(engine, clock)


async def confirm(store: InventoryStore, order_id: str) -> Reservation:
    """Confirms in a unit of work of its own, as the gRPC adapter does."""
    return await store.units.run(lambda unit: store.confirm(unit, order_id))


async def release(store: InventoryStore, order_id: str) -> Reservation:
    """Releases in a unit of work of its own, as the gRPC adapter does."""
    return await store.units.run(lambda unit: store.release(unit, order_id))


@pytest.fixture
def sku(unique: str) -> str:
    return f"SKU-{unique}"


# ---- product catalog ----------------------------------------------------------------------


@pytest.fixture
async def catalog_db(stack: Endpoints, unique: str) -> AsyncIterator[AsyncDatabase[Document]]:
    """A MongoDB database of its own per test, dropped afterwards; tests read it directly
    where they check what the store wrote."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000
    )
    yield client[f"catalog_test_{unique}"]
    await client.drop_database(f"catalog_test_{unique}")
    await client.close()


@pytest.fixture
async def catalog(
    catalog_db: AsyncDatabase[Document], engine: AsyncEngine, clock: Clock
) -> CatalogStore:
    return CatalogStore(catalog_db.client, catalog_db.name, engine, clock)


@pytest.fixture(scope="session")
async def product_events_topic(
    stack: Endpoints, product_settings: ProductSettings
) -> AsyncIterator[str]:
    """The catalog's product_changed events of the product database the tests share, relayed
    by a real Debezium connector of the session's own to a topic of its own: every test's
    catalog writes land there (a sync reads its own catalog's revisions by key and skips the
    others')."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.product.events"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack["kafka"]["bootstrap_servers"])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    engine = create_async_engine(product_settings.database_url())
    try:
        async with outbox_relays(stack, prefix, {"product": engine}):
            yield topic
    finally:
        await engine.dispose()


# ---- Kubernetes -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube(stack: Endpoints) -> client.ApiClient:
    """A client of the stack's API server, as its admin."""
    kubeconfig = stack["kube-apiserver"]["kubeconfig"]
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return cast(client.ApiClient, api)


@pytest.fixture(scope="session")
def commerce_crds(kube: client.ApiClient) -> list[str]:
    """The three CRDs from crds/, created or replaced, Established. Left installed: they are
    cluster-wide and shared by every test (and by an operator started by hand)."""
    extensions = client.ApiextensionsV1Api(kube)
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        name = manifest["metadata"]["name"]
        names.append(name)
        try:
            extensions.create_custom_resource_definition(cast(Any, manifest))
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            current = extensions.read_custom_resource_definition(name).metadata
            assert current is not None
            manifest["metadata"]["resourceVersion"] = current.resource_version
            extensions.replace_custom_resource_definition(name, cast(Any, manifest))
    for name in names:
        deadline = time.monotonic() + 30
        while True:
            status = extensions.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"CRD {name} never became Established: {conditions}")
            time.sleep(0.2)
    return names


# ---- Elasticsearch --------------------------------------------------------------------------


@pytest.fixture
async def es(stack: Endpoints) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=30)
    yield client
    await client.close()


@pytest.fixture
async def alias(es: AsyncElasticsearch, unique: str) -> AsyncIterator[str]:
    """A search alias of the test's own; its indices are deleted afterwards."""
    name = f"search-test-{unique}"
    yield name
    # Deleting by wildcard is refused (action.destructive_requires_name): by name, then.
    created = await es.indices.get(index=f"{name}-*", expand_wildcards="all")
    if created.body:
        await es.indices.delete(index=",".join(created.body))
