"""The catalog sync against the real FerretDB, MariaDB and Elasticsearch: catalog writes reach
the index, an older version never overwrites a newer one, a restart resumes from the checkpoint
(counting what it reads), equal timestamps and late writes are not lost, a rebuild swaps the
alias and keeps what was written while it scanned; availability follows stock, reservations
and releases, across a restart, behind the watermark, after a failed rewrite, and never over a
newer revision."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.model import Price, Product, ProductContent, Variant
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.runtime.clock import utc_now
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.changes import WatermarkPoll
from commerce_services.search.documents import Delete, IndexOp, Revision, Upsert
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.engine import (
    Checkpoint,
    EngineUnavailable,
    IndexedProduct,
    WriteOutcome,
)
from commerce_services.search.mapping import MAPPING, SETTINGS
from commerce_services.search.sync import CatalogSync
from tests.stack.conftest import Clock, release


def _content(category: int, sku: str, title: str = "Espresso mug") -> ProductContent:
    return ProductContent(
        title=title,
        description="A small cup",
        brand="Acme",
        attributes={"material": "ceramic"},
        variants=(Variant(sku, Price(990, "EUR"), {"colour": "white"}),),
        images=(),
        category_ids=(category,),
        primary_category_id=category,
    )


@pytest.fixture
async def category(engine: AsyncEngine, unique: str) -> int:
    return (await CategoryStore(engine, utc_now).create(f"Mugs {unique}", None)).id


def _sync(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
    *,
    overlap: timedelta = timedelta(0),
    batch_size: int = 500,
    search_engine: ElasticsearchEngine | None = None,
) -> CatalogSync:
    return CatalogSync(
        WatermarkPoll(catalog_db.client, catalog_db.name, overlap),
        search_engine or ElasticsearchEngine(es),
        CatalogReads(engine),
        alias,
        clock,
        batch_size=batch_size,
        overlap=overlap,
    )


@pytest.fixture
def sync(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
) -> CatalogSync:
    return _sync(catalog_db, engine, es, alias, clock)


async def _indexed(es: AsyncElasticsearch, alias: str, product_id: str) -> dict[str, Any] | None:
    found = await es.options(ignore_status=404).get(index=alias, id=product_id)
    return dict(found) if found.get("found") else None


async def test_create_update_and_delete_reach_the_index(
    sync: CatalogSync,
    catalog: CatalogStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    product = await catalog.create(_content(category, f"S-{unique}"))
    assert (await sync.run_once()).written == 1
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert doc["_version"] == 1
    assert doc["_source"]["title"] == "Espresso mug"
    assert doc["_source"]["category_ancestors"] == [category]
    assert doc["_source"]["breadcrumbs"] == [f"Mugs {unique}"]
    assert doc["_source"]["facets"] == ["colour=white", "material=ceramic"]
    assert (doc["_source"]["price_min"], doc["_source"]["price_max"]) == (990, 990)

    clock.now += timedelta(seconds=1)
    await catalog.replace(product.product_id, _content(category, f"S-{unique}", "Lungo mug"))
    assert (await sync.run_once()).written == 1
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert (doc["_version"], doc["_source"]["title"]) == (2, "Lungo mug")

    clock.now += timedelta(seconds=1)
    await catalog.delete(product.product_id)
    assert (await sync.run_once()).written == 1
    assert await _indexed(es, alias, product.product_id) is None
    # Nothing new: nothing read, nothing written.
    assert (await sync.run_once()).read == 0


async def test_an_older_version_never_overwrites_a_newer_one(
    sync: CatalogSync,
    catalog: CatalogStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    product = await catalog.create(_content(category, f"V-{unique}", "first"))
    clock.now += timedelta(seconds=1)
    await catalog.replace(product.product_id, _content(category, f"V-{unique}", "second"))
    await sync.run_once()
    engine = ElasticsearchEngine(es)
    # A late replay of version 1, and a delete older than version 2: both are refused as stale.
    old = Upsert(product.product_id, 1, {"product_id": product.product_id, "title": "first"})
    outcome = await engine.write(alias, [old, Delete(product.product_id, 1)], require_alias=True)
    assert (outcome.written, outcome.stale, outcome.rejected) == (0, 2, [])
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert (doc["_version"], doc["_source"]["title"]) == (2, "second")


async def test_a_restart_resumes_from_the_checkpoint(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    first = [await catalog.create(_content(category, f"R{n}-{unique}")) for n in range(3)]
    assert (await _sync(catalog_db, engine, es, alias, clock).run_once()).read == 3
    clock.now += timedelta(seconds=1)
    later = [await catalog.create(_content(category, f"L{n}-{unique}")) for n in range(2)]

    # A new process: nothing in memory, only the saved checkpoint.
    report = await _sync(catalog_db, engine, es, alias, clock).run_once()
    assert (report.read, report.late, report.written) == (2, 0, 2)
    for product in first + later:
        assert await _indexed(es, alias, product.product_id) is not None


async def test_equal_timestamps_across_batches_are_all_indexed(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    # The clock stands still: every revision has the same updated_at; (updated_at, _id)
    # ordering still pages through them all, two at a time.
    products = [await catalog.create(_content(category, f"E{n}-{unique}")) for n in range(5)]
    sync = _sync(catalog_db, engine, es, alias, clock, batch_size=2)
    report = await sync.run_once()
    assert (report.read, report.written) == (5, 5)
    for product in products:
        assert await _indexed(es, alias, product.product_id) is not None


async def test_a_write_that_lands_behind_the_watermark_is_picked_up_by_the_overlap(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    sync = _sync(catalog_db, engine, es, alias, clock, overlap=timedelta(seconds=5))
    await catalog.create(_content(category, f"W1-{unique}"))
    await sync.run_once()
    # A writer that took its time 2 s ago and commits only now, behind the checkpoint.
    clock.now -= timedelta(seconds=2)
    late = await catalog.create(_content(category, f"W2-{unique}"))
    report = await sync.run_once()
    assert (report.late, report.read, report.written) == (1, 0, 1)
    assert await _indexed(es, alias, late.product_id) is not None
    # Already delivered: the window does not send it again.
    assert (await sync.run_once()).late == 0


async def test_rebuild_fills_a_new_generation_and_swaps_the_alias(
    sync: CatalogSync,
    catalog: CatalogStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    unique: str,
) -> None:
    products = [await catalog.create(_content(category, f"B{n}-{unique}")) for n in range(3)]
    await sync.run_once()
    assert list((await es.indices.get_alias(name=alias)).body) == [f"{alias}-v1"]

    assert await sync.rebuild() == f"{alias}-v2"
    assert list((await es.indices.get_alias(name=alias)).body) == [f"{alias}-v2"]
    assert not await es.indices.exists(index=f"{alias}-v1")
    for product in products:
        assert await _indexed(es, alias, product.product_id) is not None
    # The worker continues on the new generation from the rebuild's checkpoint.
    assert (await sync.run_once()).read == 0


async def test_a_product_in_a_subcategory_carries_every_ancestor(
    sync: CatalogSync,
    catalog: CatalogStore,
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    unique: str,
) -> None:
    tree = CategoryStore(engine, utc_now)
    root = await tree.create(f"Kitchen {unique}", None)
    child = await tree.create("Cups", root.id)
    leaf = await tree.create(f"Mugs {uuid.uuid4().hex[:6]}", child.id)
    product = await catalog.create(
        replace(_content(leaf.id, f"T-{unique}"), category_ids=(leaf.id,))
    )
    await sync.run_once()
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert doc["_source"]["category_ancestors"] == sorted([root.id, child.id, leaf.id])
    assert doc["_source"]["breadcrumbs"] == [f"Kitchen {unique}", "Cups", leaf.name]


class _WritesDuringScan:
    """The catalog's source, with catalog writes landing right after the scan's first batch
    was read (the rebuild reads one cursor, so they are behind it)."""

    def __init__(self, source: WatermarkPoll, writes: Callable[[], Awaitable[None]]) -> None:
        self._source = source
        self._writes = writes

    async def after(self, checkpoint: Checkpoint, limit: int) -> list[Revision]:
        return await self._source.after(checkpoint, limit)

    async def late_arrivals(self, checkpoint: Checkpoint) -> list[Revision]:
        return await self._source.late_arrivals(checkpoint)

    def resume_point(self, scan_started: datetime) -> Checkpoint:
        return self._source.resume_point(scan_started)

    def forget(self) -> None:
        self._source.forget()

    async def scan(self, batch_size: int) -> AsyncIterator[list[Revision]]:
        async for batch in self._source.scan(batch_size):
            yield batch
            await self._writes()


async def test_writes_landing_during_a_rebuild_scan_are_not_lost(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    scanned = [await catalog.create(_content(category, f"D{n}-{unique}")) for n in range(3)]
    scan_started = clock.now
    landed: list[Product] = []

    async def writes() -> None:
        clock.now = scan_started + timedelta(seconds=1)
        # An update of a product the scan has already read, and a new product.
        landed.append(
            await catalog.replace(
                scanned[0].product_id, _content(category, f"D0-{unique}", "Ristretto mug")
            )
        )
        landed.append(await catalog.create(_content(category, f"DN-{unique}", "Cortado cup")))
        # A writer that took its time 2 s before the scan began and lands only now.
        clock.now = scan_started - timedelta(seconds=2)
        landed.append(await catalog.create(_content(category, f"DL-{unique}", "Late latte")))
        clock.now = scan_started + timedelta(seconds=1)

    sync = CatalogSync(
        _WritesDuringScan(
            WatermarkPoll(catalog_db.client, catalog_db.name, timedelta(seconds=5)), writes
        ),
        ElasticsearchEngine(es),
        CatalogReads(engine),
        alias,
        clock,
    )
    assert await sync.rebuild() == f"{alias}-v1"
    assert len(landed) == 3
    for product in [*scanned[1:], *landed]:
        doc = await _indexed(es, alias, product.product_id)
        assert doc is not None, product.content.title
        assert (doc["_version"], doc["_source"]["title"]) == (
            product.version,
            product.content.title,
        )
    # The worker goes on from after the writes: nothing is left to read.
    assert (await sync.run_once()).read == 0


async def _available(es: AsyncElasticsearch, alias: str, product_id: str) -> tuple[int, bool]:
    doc = await _indexed(es, alias, product_id)
    assert doc is not None
    return int(doc["_version"]), bool(doc["_source"]["available"])


async def test_availability_follows_stock_reservations_and_releases(
    sync: CatalogSync,
    catalog: CatalogStore,
    store: InventoryStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    sku = f"AV-{unique}"
    product = await catalog.create(_content(category, sku))
    await sync.run_once()
    assert await _available(es, alias, product.product_id) == (1, False)  # no stock yet

    # None of these makes a catalog revision: the document keeps its version.
    clock.now += timedelta(seconds=1)
    await store.set_stock(sku, 2)
    report = await sync.run_once()
    assert (report.read, report.availability) == (0, 1)
    assert await _available(es, alias, product.product_id) == (1, True)

    clock.now += timedelta(seconds=1)
    await store.reserve(f"order-{unique}", [(sku, 2)], timedelta(minutes=5))
    assert (await sync.run_once()).availability == 1
    assert await _available(es, alias, product.product_id) == (1, False)

    clock.now += timedelta(seconds=1)
    await release(store, f"order-{unique}")
    assert (await sync.run_once()).availability == 1
    assert await _available(es, alias, product.product_id) == (1, True)
    # Polling again re-reads the last rows and rewrites nothing.
    assert (await sync.run_once()).availability == 0


async def test_stock_changed_while_the_worker_was_stopped_is_followed_after_a_restart(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    store: InventoryStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    sku = f"AR-{unique}"
    product = await catalog.create(_content(category, sku))
    await _sync(catalog_db, engine, es, alias, clock).run_once()
    clock.now += timedelta(seconds=1)
    await store.set_stock(sku, 1)
    # A new process: only the saved stock checkpoint tells it where to look from.
    report = await _sync(catalog_db, engine, es, alias, clock).run_once()
    assert (report.read, report.availability) == (0, 1)
    assert await _available(es, alias, product.product_id) == (1, True)


async def test_a_stock_write_that_commits_behind_the_watermark_is_followed_by_the_overlap(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    store: InventoryStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    sku = f"AL-{unique}"
    product = await catalog.create(_content(category, sku))
    sync = _sync(catalog_db, engine, es, alias, clock, overlap=timedelta(seconds=5))
    await sync.run_once()
    # Another SKU's change moves the stock checkpoint 10 s on...
    clock.now += timedelta(seconds=10)
    await store.set_stock(f"AO-{unique}", 1)
    await sync.run_once()
    # ...then a write that took its time 2 s before that commits.
    clock.now -= timedelta(seconds=2)
    await store.set_stock(sku, 4)
    assert (await sync.run_once()).availability == 1
    assert await _available(es, alias, product.product_id) == (1, True)


class _RevisionLandsAfterLookup(ElasticsearchEngine):
    """Writes a newer revision of the product right after the stock follower looked it up,
    before it rewrites the version it read."""

    def __init__(self, es: AsyncElasticsearch, land: Callable[[], Awaitable[None]]) -> None:
        super().__init__(es)
        self._land: Callable[[], Awaitable[None]] | None = land

    async def find_by_skus(self, target: str, skus: Sequence[str]) -> list[IndexedProduct]:
        found = await super().find_by_skus(target, skus)
        if found and self._land is not None:
            land, self._land = self._land, None
            await land()
        return found


async def test_an_availability_rewrite_never_overwrites_a_newer_revision(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    store: InventoryStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    sku = f"AN-{unique}"
    product = await catalog.create(_content(category, sku))
    await _sync(catalog_db, engine, es, alias, clock).run_once()
    v1 = await _indexed(es, alias, product.product_id)
    assert v1 is not None

    async def newer_revision() -> None:
        # Another writer (a rebuild, a second worker) indexes version 2, read before the
        # stock change, so it still says unavailable.
        v2 = Upsert(product.product_id, 2, {**v1["_source"], "title": "Lungo mug"})
        outcome = await ElasticsearchEngine(es).write(alias, [v2], require_alias=True)
        assert outcome.written == 1

    sync = _sync(
        catalog_db,
        engine,
        es,
        alias,
        clock,
        search_engine=_RevisionLandsAfterLookup(es, newer_revision),
    )
    clock.now += timedelta(seconds=1)
    await store.set_stock(sku, 3)
    # The rewrite of version 1 loses to version 2; the follower looks again and rewrites 2.
    assert (await sync.run_once()).availability == 1
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert (doc["_version"], doc["_source"]["title"], doc["_source"]["available"]) == (
        2,
        "Lungo mug",
        True,
    )


class _FirstRewriteFails(ElasticsearchEngine):
    """The engine gives up on the first availability rewrite (as after its last retry)."""

    failed = False

    async def write(
        self, target: str, ops: Sequence[IndexOp], *, require_alias: bool
    ) -> WriteOutcome:
        if not self.failed and any(isinstance(op, Upsert) and op.same_version for op in ops):
            self.failed = True
            raise EngineUnavailable("engine away")
        return await super().write(target, ops, require_alias=require_alias)


async def test_a_failed_availability_rewrite_is_done_by_the_next_poll(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    store: InventoryStore,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    sku = f"AF-{unique}"
    product = await catalog.create(_content(category, sku))
    failing = _FirstRewriteFails(es)
    sync = _sync(catalog_db, engine, es, alias, clock, search_engine=failing)
    await sync.run_once()
    clock.now += timedelta(seconds=1)
    await store.set_stock(sku, 2)
    with pytest.raises(EngineUnavailable):
        await sync.run_once()
    assert failing.failed
    assert await _available(es, alias, product.product_id) == (1, False)
    # The stock checkpoint did not move past the row: the next poll (here a new process)
    # reads it again.
    assert (await _sync(catalog_db, engine, es, alias, clock).run_once()).availability == 1
    assert await _available(es, alias, product.product_id) == (1, True)


async def test_an_index_from_before_skus_gets_the_field_and_its_documents_are_written(
    sync: CatalogSync,
    catalog: CatalogStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    unique: str,
) -> None:
    # The first generation as an older worker created it: mapping version 1, no `skus`.
    old_mapping = {**MAPPING, "properties": dict(MAPPING["properties"])}
    del old_mapping["properties"]["skus"]
    await es.indices.create(index=f"{alias}-v1", settings=SETTINGS, mappings=old_mapping)
    await es.indices.put_alias(index=f"{alias}-v1", name=alias)
    product = await catalog.create(_content(category, f"U-{unique}"))
    # `dynamic: strict` would refuse every new document without the field.
    assert (await sync.run_once()).written == 1
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert doc["_source"]["skus"] == [f"U-{unique}"]
    mapping = await es.indices.get_mapping(index=f"{alias}-v1")
    assert mapping[f"{alias}-v1"]["mappings"]["properties"]["skus"] == {"type": "keyword"}
