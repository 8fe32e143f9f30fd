"""`commerce-dataset load` against the real servers, with a small count into databases and an
alias of the test's own: an interrupted load goes on where it stopped, the product service's
store reads what it loaded, the category listing finds it, prices come from the projection, the
index holds every live product with facet counts that match the generated data, and the sync
worker follows the target's events after the loaded data instead of loading it again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.dataset.categories import category_tree
from commerce_devstack.dataset.loader import LoadReport, load
from commerce_devstack.dataset.products import GeneratedProduct, ProductGenerator
from commerce_devstack.dataset.target import Target, drop
from commerce_devstack.endpoints import Endpoints
from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.migrations import upgrade
from commerce_services.runtime.clock import utc_now
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.engine import SearchQuery
from commerce_services.search.product_events import ProductEvents
from commerce_services.search.revisions import CatalogRevisions
from commerce_services.search.sync import CatalogSync

COUNT = 2000
SEED = 3


@pytest.fixture(scope="module")
def generated() -> list[GeneratedProduct]:
    return list(ProductGenerator(category_tree(SEED), SEED).stream(COUNT))


class _Interrupted(Exception):
    pass


@pytest.fixture
async def loaded(stack: Endpoints, tmp_path: Path) -> AsyncIterator[tuple[Target, LoadReport]]:
    """The data set, loaded in two runs: the first is interrupted after two batches."""
    target = Target(f"dstest_{uuid.uuid4().hex[:8]}")
    batches = 0

    def interrupt(_: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise _Interrupted

    try:
        with pytest.raises(_Interrupted):
            await load(stack, target, COUNT, SEED, tmp_path, batch_size=500, on_batch=interrupt)
        yield target, await load(stack, target, COUNT, SEED, tmp_path, batch_size=500)
    finally:
        await drop(stack, target)


@pytest.fixture
async def target_db(
    stack: Endpoints, loaded: tuple[Target, LoadReport]
) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(loaded[0].database_settings(stack).database_url())
    yield engine
    await engine.dispose()


@pytest.fixture
async def mongo(stack: Endpoints) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000
    )
    yield client
    await client.close()


async def test_the_loaded_catalog_is_what_the_services_read(
    stack: Endpoints,
    loaded: tuple[Target, LoadReport],
    generated: list[GeneratedProduct],
    target_db: AsyncEngine,
    mongo: AsyncMongoClient[dict[str, Any]],
    es: AsyncElasticsearch,
) -> None:
    target, report = loaded
    live = [p for p in generated if p.content is not None]
    assert (report.products, report.deleted) == (COUNT, COUNT // 100)
    assert report.index == f"{target.alias}-v1"

    # The product service's own store reads a generated product back, whole.
    store = CatalogStore(mongo, target.mongo_database, target_db, utc_now)
    product = live[17]
    assert product.content is not None
    stored = await store.get(product.product_id)
    assert (stored.version, stored.content, stored.updated_at) == (
        product.version,
        product.content,
        product.updated_at,
    )
    # The category mapping lists it under its department (the whole subtree).
    tree = category_tree(SEED)
    root = int(tree[product.content.primary_category_id - 1].path.split("/")[0])
    listed: list[str] = []
    after = None
    while True:
        listing = await store.list_category(root, True, after, 100)
        listed += [p.product_id for p in listing.products]
        if listing.next_after is None:
            break
        after = listing.next_after
    assert product.product_id in listed
    # Stock is in the inventory, prices in the projection.
    sku, units = next(iter(product.stock.items()))
    assert (await CatalogReads(target_db).sellable([sku])) == {sku: units}
    assert await store.prices(product.content.skus) == {
        v.sku: v.price for v in product.content.variants
    }
    assert await CatalogReads(target_db).titles_starting(product.content.title, 1) == [
        product.content.title
    ]

    # The index holds every live product; search finds a title, facets count the data.
    assert (await es.count(index=target.alias))["count"] == len(live)
    engine = ElasticsearchEngine(es)
    found = await engine.search(target.alias, SearchQuery(text=product.content.title), None)
    assert found.hits[0].product_id == product.product_id
    page = await engine.search(target.alias, SearchQuery(category=root), None)
    assert page.facets is not None
    in_department = [
        p
        for p in live
        if p.content is not None
        and any(tree[c - 1].path.split("/")[0] == str(root) for c in p.content.category_ids)
    ]
    assert page.total == len(in_department)
    brands = Counter(p.content.brand for p in in_department if p.content is not None)
    assert {b.value: b.count for b in page.facets.brands} == {
        b.value: brands[b.value] for b in page.facets.brands
    }
    assert page.facets.brands[0].count == max(brands.values())

    # The worker follows the target's events from their start: no load, nothing to write.
    feed = ProductEvents(stack["kafka"]["bootstrap_servers"], target.events_topic)
    sync = CatalogSync(
        feed,
        CatalogRevisions(mongo, target.mongo_database),
        engine,
        CatalogReads(target_db),
        target.alias,
        utc_now,
    )
    try:
        report_after = await sync.run_once()
    finally:
        await feed.close()
    assert (report_after.loaded, report_after.written, report_after.rejected) == (0, 0, 0)


def test_the_console_script_refuses_a_bad_target_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "commerce_devstack.dataset", "drop", "--target", "Bad-Name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "target name" in done.stdout + done.stderr


async def test_the_target_is_granted_as_a_service_database_is(
    stack: Endpoints, loaded: tuple[Target, LoadReport]
) -> None:
    """A shop pointed at the target migrates it as the product's migration account (as
    `make bench-catalog` does) and serves it as the serving account, which cannot change the
    schema."""
    target, report = loaded
    migrator = target.database_settings(stack, migrations=True)
    await asyncio.to_thread(upgrade, migrator)  # at head already: Alembic still connects
    serving = stack.mariadb_dsn("product")
    with (
        pymysql.connect(**{**serving, "database": target.mariadb_database}) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT COUNT(*) FROM product_mappings")
        assert cur.fetchone() == (report.products + report.deleted,)  # a head each
        with pytest.raises(pymysql.err.OperationalError) as denied:
            cur.execute("ALTER TABLE product_mappings ADD COLUMN intruder INT")
        assert denied.value.args[0] == 1142  # ALTER command denied
