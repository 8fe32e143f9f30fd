"""No hot path asks MongoDB for anything but a key: every command the catalog's reads, writes,
repairs and upkeep, the search sync's event handling and the degraded search send is recorded
(PyMongo's command monitoring) and must be an insert, or a find, update or delete whose filter
is a bare `_id` equality. FerretDB 1.24 answers anything else by reading the whole collection
(about 9 s per query at a million revisions); a bare `_id` it answers from its `_id` index,
as explain shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_devstack.endpoints import Endpoints
from commerce_services.product.catalog.model import Price, ProductContent, Variant
from commerce_services.product.catalog.projection import CatalogProjection, Commit
from commerce_services.product.catalog.store import (
    REPAIR_GRACE,
    STUB_HORIZON,
    CatalogStore,
    Document,
)
from commerce_services.product.catalog.tables import product_mappings
from commerce_services.product.categories.store import CategoryStore
from commerce_services.runtime.clock import utc_now
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.engine import SearchQuery
from commerce_services.search.fallback import MongoFallback
from commerce_services.search.product_events import ProductEvents
from commerce_services.search.revisions import CatalogRevisions
from commerce_services.search.sync import CatalogSync
from tests.stack.conftest import Clock
from tests.stack.mongo_key_access import Recorder, not_by_key


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (("find", {"filter": {"_id": "p:1"}}), False),
        (("find", {"filter": {"_id": "p:1"}, "projection": {"images": 0}}), False),
        (("insert", {"documents": [{"_id": "p:1"}]}), False),
        (("update", {"updates": [{"q": {"_id": "p:1"}, "u": {"$set": {"a": 1}}}]}), False),
        (("delete", {"deletes": [{"q": {"_id": "p:1"}, "limit": 1}]}), False),
        (("find", {"filter": {"product_id": "p"}}), True),
        (("find", {"filter": {"_id": "p:1", "deleted": False}}), True),
        (("find", {"filter": {"_id": {"$in": ["p:1", "p:2"]}}}), True),
        (("find", {"filter": {"_id": "p:1"}, "sort": {"version": -1}}), True),
        (("update", {"updates": [{"q": {"product_id": "p"}, "u": {}}]}), True),
        (("delete", {"deletes": [{"q": {"superseded": True}, "limit": 0}]}), True),
        (("distinct", {"key": "product_id"}), True),
        (("aggregate", {"pipeline": []}), True),
        (("count", {"query": {}}), True),
    ],
)
def test_the_key_check_tells_key_lookups_from_scans(
    command: tuple[str, dict[str, Any]], problem: bool
) -> None:
    assert bool(not_by_key([command])) is problem


@pytest.fixture
async def recorded(
    stack: Endpoints, catalog_db: AsyncDatabase[Document]
) -> AsyncIterator[tuple[Recorder, AsyncMongoClient[Document]]]:
    recorder = Recorder()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        stack["ferretdb"]["uri"], event_listeners=[recorder], tz_aware=False
    )
    yield recorder, client
    await client.close()


def _content(category: int, *skus: str, title: str = "Espresso mug") -> ProductContent:
    return ProductContent(
        title=title,
        description="",
        brand="Acme",
        attributes={"material": "steel"},
        variants=tuple(Variant(sku, Price(990, "EUR"), {}) for sku in skus),
        images=(),
        category_ids=(category,),
        primary_category_id=category,
    )


class _Crashing(CatalogProjection):
    async def commit(self, change: Commit) -> int | None:
        raise ConnectionError("MariaDB away")


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)


async def test_every_hot_path_reads_and_writes_the_catalog_by_key_only(
    recorded: tuple[Recorder, AsyncMongoClient[Document]],
    stack: Endpoints,
    product_events_topic: str,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
    unique: str,
) -> None:
    recorder, client = recorded
    catalog = CatalogStore(client, catalog_db.name, engine, clock)
    tree = CategoryStore(engine, utc_now)
    root = (await tree.create(f"Kitchen {unique}", None)).id
    leaf = (await tree.create("Mugs", root)).id
    feed = ProductEvents(stack["kafka"]["bootstrap_servers"], product_events_topic)
    revisions = CatalogRevisions(client, catalog_db.name)
    sync = CatalogSync(feed, revisions, ElasticsearchEngine(es), CatalogReads(engine), alias, clock)
    try:
        await sync.run_once()  # a new index is loaded by its one scan: not a hot path
        recorder.commands.clear()

        # The product service: writes, reads, listings, prices.
        mug = await catalog.create(_content(leaf, f"A-{unique}", f"B-{unique}"))
        jug = await catalog.create(_content(leaf, f"C-{unique}", title="Milk jug"))
        await catalog.replace(mug.product_id, _content(leaf, f"A-{unique}", title="Lungo mug"))
        await catalog.replace(jug.product_id, _content(leaf, f"C-{unique}"), if_match=1)
        await catalog.get(mug.product_id)
        await catalog.list_category(root, True, None, 10)
        await catalog.list_category(leaf, False, None, 1)
        await catalog.prices([f"A-{unique}", f"C-{unique}"])
        await catalog.delete(jug.product_id)
        # A write interrupted before its commit, the repair sweep, the upkeep.
        failing = CatalogStore(
            client, catalog_db.name, engine, clock, projection=_Crashing(engine, clock)
        )
        await failing.replace(mug.product_id, _content(leaf, f"A-{unique}", title="Cup"))
        await catalog.get(mug.product_id)  # the stored revision, not committed yet
        clock.now += REPAIR_GRACE + timedelta(seconds=1)
        assert await catalog.repair_writes() >= 1
        await catalog.complete_projection()
        await catalog.copy_documents()
        clock.now += STUB_HORIZON + timedelta(seconds=1)
        await catalog.drop_stubs()

        # The search sync, following the events of those writes.
        async def cup_indexed() -> bool:
            await sync.run_once()
            found = await es.options(ignore_status=404).get(index=alias, id=mug.product_id)
            return bool(found.get("found")) and found["_source"]["title"] == "Cup"

        await _until(cup_indexed)

        # The degraded search and suggestions.
        fallback = MongoFallback(revisions, CatalogReads(engine))
        await fallback.search(SearchQuery(text="cup", category=root), None)
        await fallback.search(SearchQuery(brand="Acme", price_max=1000), None)
        await fallback.suggest("Cu", 5)
    finally:
        await feed.close()

    names = {name for name, _ in recorder.commands}
    assert {"insert", "find", "update", "delete"} <= names  # every kind was exercised
    assert not_by_key(recorder.commands) == []


async def test_committed_reads_ask_mongodb_nothing_while_no_write_is_in_flight(
    recorded: tuple[Recorder, AsyncMongoClient[Document]],
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    clock: Clock,
    unique: str,
) -> None:
    recorder, client = recorded
    catalog = CatalogStore(client, catalog_db.name, engine, clock)
    leaf = (await CategoryStore(engine, utc_now).create(f"Cups {unique}", None)).id
    cup = await catalog.create(_content(leaf, f"D-{unique}", title="Cup"))
    saucer = await catalog.create(_content(leaf, f"E-{unique}", title="Saucer"))
    recorder.commands.clear()

    assert await catalog.get(cup.product_id) == cup
    page = await catalog.list_category(leaf, False, None, 10)
    assert page.products == sorted([cup, saucer], key=lambda p: p.product_id)
    assert recorder.commands == []  # the head's copy and the page's copies: MariaDB only

    # A write stored but not committed (MariaDB failed after the insert): a read finds it in
    # MongoDB at once, and the copy serves again once the repair sweep committed it.
    failing = CatalogStore(
        client, catalog_db.name, engine, clock, projection=_Crashing(engine, clock)
    )
    mug = await failing.replace(cup.product_id, _content(leaf, f"D-{unique}", title="Mug"))
    recorder.commands.clear()
    assert await catalog.get(cup.product_id) == mug
    assert [name for name, _ in recorder.commands][:1] == ["find"]
    clock.now += REPAIR_GRACE + timedelta(seconds=1)
    assert await catalog.repair_writes() >= 1
    recorder.commands.clear()
    assert await catalog.get(cup.product_id) == mug
    assert recorder.commands == []

    # A product committed before the copies (migration 0007): by key until the upkeep copies it.
    async with engine.begin() as conn:
        await conn.execute(
            product_mappings.update()
            .where(product_mappings.c.product_id == saucer.product_id)
            .values(document=None)
        )
    recorder.commands.clear()
    assert await catalog.get(saucer.product_id) == saucer
    assert recorder.commands != []
    # A new process walks every head once (the test database holds other tests' products).
    upkeep = CatalogStore(client, catalog_db.name, engine, clock)
    assert await upkeep.copy_documents(batch=1000, batches=10_000) >= 1
    assert await upkeep.copy_documents() == 0  # past the end: nothing more to walk
    recorder.commands.clear()
    assert await catalog.get(saucer.product_id) == saucer
    assert recorder.commands == []


async def test_the_sync_indexes_committed_changes_from_their_copies(
    recorded: tuple[Recorder, AsyncMongoClient[Document]],
    stack: Endpoints,
    product_events_topic: str,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
    unique: str,
) -> None:
    """The events' revisions come from MariaDB with the batch; MongoDB only for a product
    committed before the copies."""
    recorder, client = recorded
    catalog = CatalogStore(client, catalog_db.name, engine, clock)
    leaf = (await CategoryStore(engine, utc_now).create(f"Pans {unique}", None)).id
    feed = ProductEvents(stack["kafka"]["bootstrap_servers"], product_events_topic)
    revisions = CatalogRevisions(client, catalog_db.name)
    sync = CatalogSync(feed, revisions, ElasticsearchEngine(es), CatalogReads(engine), alias, clock)
    try:
        await sync.run_once()
        pan = await catalog.create(_content(leaf, f"P-{unique}", title="Pan"))
        await catalog.replace(pan.product_id, _content(leaf, f"P-{unique}", title="Wok"))
        old = await catalog.create(_content(leaf, f"O-{unique}", title="Old pot"))
        async with engine.begin() as conn:  # as if committed before migration 0007
            await conn.execute(
                product_mappings.update()
                .where(product_mappings.c.product_id == old.product_id)
                .values(document=None)
            )
        recorder.commands.clear()

        async def indexed(product_id: str, title: str) -> bool:
            await sync.run_once()
            found = await es.options(ignore_status=404).get(index=alias, id=product_id)
            return bool(found.get("found")) and found["_source"]["title"] == title

        await _until(lambda: indexed(pan.product_id, "Wok"))
        await _until(lambda: indexed(old.product_id, "Old pot"))
    finally:
        await feed.close()
    finds = [c["filter"]["_id"] for name, c in recorder.commands if name == "find"]
    assert finds == [f"{old.product_id}:1"]  # only the product without a copy, by key


async def test_ferretdb_finds_a_document_by_id_through_its_index(
    catalog_db: AsyncDatabase[Document],
) -> None:
    """The premise of the above. FerretDB 1.24's SQLite backend looked `_id` up by a path its
    `_id` index does not cover; the stack builds it with the path fixed
    (devstack/commerce_devstack/components/ferretdb.py). A FerretDB started before that fix
    fails here: restart it (`commerce-stack up --only ferretdb` rebuilds it)."""
    revisions = catalog_db["product_revisions"]
    await revisions.insert_one({"_id": "p:1", "title": "mug"})
    plan = await catalog_db.command(
        {"explain": {"find": "product_revisions", "filter": {"_id": "p:1"}}}
    )
    assert plan["filterPushdown"] is True
    assert any("USING INDEX" in step for step in plan["queryPlanner"]["Plan"]), plan
