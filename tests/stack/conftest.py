"""Fixtures for tests against the real servers of the local stack.

There is no skip here: when the stack is not up, or a component does not answer, the test
fails with a message that says what to run. `make test` brings the stack up first.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack import endpoints
from commerce_devstack.endpoints import Endpoints, StackNotRunning
from commerce_services.product.catalog.mappings import CategoryMappings
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.migrations import upgrade
from commerce_services.product.settings import ProductSettings
from commerce_services.runtime.clock import utc_now


@pytest.fixture(scope="session")
def stack() -> Endpoints:
    try:
        return endpoints.load()
    except StackNotRunning as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests never collide with earlier runs on the same stack."""
    return uuid.uuid4().hex[:8]


# ---- product service ----------------------------------------------------------------------


TTL = timedelta(minutes=15)


@pytest.fixture(scope="session")
def product_settings(stack: Endpoints) -> ProductSettings:
    product_settings = ProductSettings.from_values(
        {**stack.service_settings("product"), "db_pool_size": 40}
    )
    upgrade(product_settings)  # the schema comes from the migrations, as in production
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
    store = CatalogStore(catalog_db.client, catalog_db.name, CategoryMappings(engine, clock), clock)
    await store.ensure_indexes()
    return store
