"""The catalog sync against the real FerretDB, MariaDB, Kafka (the catalog's events relayed by
Debezium) and Elasticsearch: catalog writes reach the index through their events, an older
version never overwrites a newer one, a new index is loaded by one scan and then follows the
events, a restart resumes from the checkpoint (no second load), a superseded revision's event
is skipped, a failed write is replayed, lost events reload the index, a write interrupted
between MongoDB and MariaDB converges once the repair sweep commits it, a rebuild swaps the
alias and keeps what was written while it scanned and refuses an index it does not own;
availability follows stock, reservations and releases, across a restart, behind the
checkpoint, after a failed rewrite, and never over a newer revision."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_devstack.endpoints import Endpoints
from commerce_services.contracts import Checkpoint
from commerce_services.product.catalog.events import ProductChanged
from commerce_services.product.catalog.model import Price, Product, ProductContent, Variant
from commerce_services.product.catalog.projection import CatalogProjection, Commit
from commerce_services.product.catalog.store import REPAIR_GRACE, CatalogStore, Document
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.runtime.clock import utc_now
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.documents import Delete, IndexOp, Revision, Upsert
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.engine import EngineUnavailable, IndexedProduct, WriteOutcome
from commerce_services.search.mapping import MAPPING, SETTINGS
from commerce_services.search.product_events import EventBatch, EventsGone, ProductEvents
from commerce_services.search.revisions import CatalogRevisions
from commerce_services.search.sync import CatalogSync, RebuildRefused, SyncReport
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


@pytest.fixture
async def feeds(stack: Endpoints, product_events_topic: str) -> AsyncIterator[FeedMaker]:
    """Readers of the session's product events, each like a worker process of its own."""
    made: list[ProductEvents] = []

    def make() -> ProductEvents:
        made.append(ProductEvents(stack["kafka"]["bootstrap_servers"], product_events_topic))
        return made[-1]

    yield make
    for feed in made:
        await feed.close()


FeedMaker = Callable[[], ProductEvents]


def _sync(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
    feed: Any,
    *,
    batch_size: int = 500,
    search_engine: ElasticsearchEngine | None = None,
    revisions: Any = None,
    overlap: timedelta = timedelta(0),
) -> CatalogSync:
    return CatalogSync(
        feed,
        revisions or CatalogRevisions(catalog_db.client, catalog_db.name),
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
    feeds: FeedMaker,
) -> CatalogSync:
    return _sync(catalog_db, engine, es, alias, clock, feeds())


async def _indexed(es: AsyncElasticsearch, alias: str, product_id: str) -> dict[str, Any] | None:
    found = await es.options(ignore_status=404).get(index=alias, id=product_id)
    return dict(found) if found.get("found") else None


async def _version(es: AsyncElasticsearch, alias: str, product_id: str) -> int | None:
    doc = await _indexed(es, alias, product_id)
    return None if doc is None else int(doc["_version"])


async def _until(
    sync: CatalogSync, done: Callable[[], Awaitable[bool]], timeout_s: float = 60
) -> SyncReport:
    """Syncs until `done`: the events come through Debezium and Kafka, a moment after the
    write. Returns what the syncs did together."""
    total = SyncReport()
    deadline = time.monotonic() + timeout_s
    while True:
        total.add(await sync.run_once())
        if await done():
            return total
        assert time.monotonic() < deadline, f"not done after {timeout_s} s: {total}"
        await asyncio.sleep(0.2)


async def test_create_update_and_delete_reach_the_index_through_their_events(
    sync: CatalogSync,
    catalog: CatalogStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    assert (await sync.run_once()).loaded == 0  # a new, empty catalog: nothing to load
    product = await catalog.create(_content(category, f"S-{unique}"))
    report = await _until(sync, lambda: _has(es, alias, product.product_id, 1))
    assert (report.written, report.loaded) == (1, 0)
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert doc["_source"]["title"] == "Espresso mug"
    assert doc["_source"]["category_ancestors"] == [category]
    assert doc["_source"]["breadcrumbs"] == [f"Mugs {unique}"]
    assert doc["_source"]["facets"] == ["colour=white", "material=ceramic"]
    assert (doc["_source"]["price_min"], doc["_source"]["price_max"]) == (990, 990)

    clock.now += timedelta(seconds=1)
    await catalog.replace(product.product_id, _content(category, f"S-{unique}", "Lungo mug"))
    await _until(sync, lambda: _has(es, alias, product.product_id, 2))
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert doc["_source"]["title"] == "Lungo mug"

    clock.now += timedelta(seconds=1)
    await catalog.delete(product.product_id)
    await _until(sync, lambda: _gone(es, alias, product.product_id))


async def _has(es: AsyncElasticsearch, alias: str, product_id: str, version: int) -> bool:
    return await _version(es, alias, product_id) == version


async def _gone(es: AsyncElasticsearch, alias: str, product_id: str) -> bool:
    return await _indexed(es, alias, product_id) is None


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
    await sync.run_once()  # a new index: loaded from the catalog
    engine = ElasticsearchEngine(es)
    # A late replay of version 1, and a delete older than version 2: both are refused as stale.
    old = Upsert(product.product_id, 1, {"product_id": product.product_id, "title": "first"})
    outcome = await engine.write(alias, [old, Delete(product.product_id, 1)], require_alias=True)
    assert (outcome.written, outcome.stale, outcome.rejected) == (0, 2, [])
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert (doc["_version"], doc["_source"]["title"]) == (2, "second")


async def test_a_new_index_is_loaded_by_one_scan_then_a_restart_follows_only_events(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    feeds: FeedMaker,
    unique: str,
) -> None:
    first = [await catalog.create(_content(category, f"R{n}-{unique}")) for n in range(3)]
    # Superseded and deleted products: the load writes each product's current revision.
    clock.now += timedelta(seconds=1)
    await catalog.replace(first[0].product_id, _content(category, f"R0-{unique}", "Lungo mug"))
    deleted = await catalog.create(_content(category, f"RD-{unique}"))
    await catalog.delete(deleted.product_id)
    report = await _sync(catalog_db, engine, es, alias, clock, feeds()).run_once()
    assert report.loaded == 4  # three products, a tombstone; stubs are not read
    assert await _version(es, alias, first[0].product_id) == 2
    assert await _indexed(es, alias, deleted.product_id) is None

    # A new process: nothing in memory, only the saved checkpoint, and no second load.
    clock.now += timedelta(seconds=1)
    later = [await catalog.create(_content(category, f"L{n}-{unique}")) for n in range(2)]
    restarted = _sync(catalog_db, engine, es, alias, clock, feeds())
    report = await _until(restarted, lambda: _all_indexed(es, alias, [p.product_id for p in later]))
    assert (report.loaded, report.written) == (0, 2)
    for product in first + later:
        assert await _indexed(es, alias, product.product_id) is not None


async def _all_indexed(es: AsyncElasticsearch, alias: str, product_ids: list[str]) -> bool:
    return all([await _indexed(es, alias, p) is not None for p in product_ids])


async def test_an_event_whose_revision_was_superseded_is_skipped_for_the_newer_one(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    feeds: FeedMaker,
    unique: str,
) -> None:
    sync = _sync(catalog_db, engine, es, alias, clock, feeds())
    await sync.run_once()
    product = await catalog.create(_content(category, f"K-{unique}", "one"))
    for title in ("two", "three"):
        clock.now += timedelta(milliseconds=10)
        await catalog.replace(product.product_id, _content(category, f"K-{unique}", title))
    await _until(sync, lambda: _has(es, alias, product.product_id, 3))
    # Version 1's event once more (a replay): its revision is a stub now, so it is skipped.
    stale = ProductChanged(product.product_id, 1, False, product.updated_at)
    replay = _sync(catalog_db, engine, es, alias, clock, _Replay(feeds(), stale))
    report = await replay.run_once()
    assert (report.read, report.skipped, report.written) == (1, 1, 0)
    doc = await _indexed(es, alias, product.product_id)
    assert doc is not None
    assert (doc["_version"], doc["_source"]["title"]) == (3, "three")


class _Replay:
    """The feed with one more event at its end on partition 0: `change`, delivered once (as
    a replay after a restart would deliver it)."""

    def __init__(self, feed: ProductEvents, change: ProductChanged) -> None:
        self._feed = feed
        self._change: ProductChanged | None = change

    async def end(self) -> dict[int, int]:
        end = await self._feed.end()
        return {**end, 0: end[0] + 1}

    async def seek(self, position: Any) -> None:
        await self._feed.seek(position)

    async def read(self, max_events: int, wait_s: float) -> EventBatch:
        batch = await self._feed.read(max_events, 0.1)
        if self._change is None:
            return batch
        change, self._change = self._change, None
        return EventBatch([change], {**batch.position, 0: batch.position[0] + 1})


class _FirstUpsertFails(ElasticsearchEngine):
    """The engine gives up on the first write of new documents (as after its last retry)."""

    failed = False

    async def write(
        self, target: str, ops: Sequence[IndexOp], *, require_alias: bool
    ) -> WriteOutcome:
        if not self.failed and any(isinstance(op, Upsert) for op in ops):
            self.failed = True
            raise EngineUnavailable("engine away")
        return await super().write(target, ops, require_alias=require_alias)


async def test_events_read_before_a_failed_write_are_read_again(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    feeds: FeedMaker,
    unique: str,
) -> None:
    failing = _FirstUpsertFails(es)
    sync = _sync(catalog_db, engine, es, alias, clock, feeds(), search_engine=failing)
    await sync.run_once()
    product = await catalog.create(_content(category, f"F-{unique}"))
    deadline = time.monotonic() + 60
    while not failing.failed:  # the event arrives, its write fails
        try:
            await sync.run_once()
        except EngineUnavailable:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert await _indexed(es, alias, product.product_id) is None
    # The same sync goes back to the saved checkpoint: the event is read and written again.
    await _until(sync, lambda: _has(es, alias, product.product_id, 1))


class _EventsGoneOnce:
    """A feed whose position the topic's retention has passed, once."""

    def __init__(self, feed: ProductEvents) -> None:
        self._feed = feed
        self.gone = False

    async def end(self) -> dict[int, int]:
        end = await self._feed.end()
        return end if self.gone else {**end, 0: end[0] + 1}  # there is something to read

    async def seek(self, position: Any) -> None:
        await self._feed.seek(position)

    async def read(self, max_events: int, wait_s: float) -> EventBatch:
        if not self.gone:
            self.gone = True
            raise EventsGone("retention")
        return await self._feed.read(max_events, wait_s)


async def test_events_lost_to_retention_reload_the_index(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    category: int,
    clock: Clock,
    feeds: FeedMaker,
    unique: str,
) -> None:
    await _sync(catalog_db, engine, es, alias, clock, feeds()).run_once()
    product = await catalog.create(_content(category, f"G-{unique}"))
    feed = _EventsGoneOnce(feeds())
    report = await _sync(catalog_db, engine, es, alias, clock, feed).run_once()
    assert feed.gone
    assert report.loaded >= 1
    assert await _version(es, alias, product.product_id) == 1


async def test_a_legacy_watermark_checkpoint_loads_the_index_first(
    sync: CatalogSync,
    catalog: CatalogStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    unique: str,
) -> None:
    # An index the watermark poll kept in sync: its checkpoint is a revision key, no position.
    await es.indices.create(index=f"{alias}-v1", settings=SETTINGS, mappings=MAPPING)
    await es.indices.put_alias(index=f"{alias}-v1", name=alias)
    await ElasticsearchEngine(es).save_checkpoint(alias, f"{alias}-v1", Checkpoint(5, "x:1"))
    product = await catalog.create(_content(category, f"W-{unique}"))
    report = await sync.run_once()
    assert report.loaded >= 1
    assert await _version(es, alias, product.product_id) == 1


class _CrashingCommit(CatalogProjection):
    """The process dies between storing the revision and committing it."""

    async def commit(self, change: Commit) -> int | None:
        raise Crash


class Crash(BaseException):
    pass


async def test_writes_interrupted_before_their_commit_reach_the_index_after_the_repair(
    sync: CatalogSync,
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    dying = CatalogStore(
        catalog_db.client,
        catalog_db.name,
        engine,
        clock,
        projection=_CrashingCommit(engine, clock),
    )
    await sync.run_once()

    async def repaired() -> None:
        clock.now += REPAIR_GRACE + timedelta(seconds=1)
        assert await catalog.repair_writes() >= 1

    with pytest.raises(Crash):
        await dying.create(_content(category, f"C-{unique}", "crashed create"))
    [stored] = await catalog_db["product_revisions"].find({}).to_list()
    product_id = stored["product_id"]
    await asyncio.sleep(2)  # no event was written: nothing arrives
    await sync.run_once()
    assert await _indexed(es, alias, product_id) is None
    await repaired()
    await _until(sync, lambda: _has(es, alias, product_id, 1))

    with pytest.raises(Crash):
        await dying.replace(product_id, _content(category, f"C-{unique}", "crashed replace"))
    await repaired()
    await _until(sync, lambda: _has(es, alias, product_id, 2))
    doc = await _indexed(es, alias, product_id)
    assert doc is not None
    assert doc["_source"]["title"] == "crashed replace"

    with pytest.raises(Crash):
        await dying.delete(product_id)
    await repaired()
    await _until(sync, lambda: _gone(es, alias, product_id))


async def test_rebuild_fills_a_new_version_and_swaps_the_alias(
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
    # The worker continues on the new version from the rebuild's checkpoint: no load.
    assert (await sync.run_once()).loaded == 0


async def test_rebuild_refuses_to_replace_an_index_it_did_not_create(
    sync: CatalogSync, es: AsyncElasticsearch, alias: str
) -> None:
    # As a CatalogIndex's operator creates a version: no `_meta.owner` of commerce-search.
    await es.indices.create(index=f"{alias}-v3", settings=SETTINGS, mappings=MAPPING)
    await es.indices.put_alias(index=f"{alias}-v3", name=alias)
    with pytest.raises(RebuildRefused, match=f"{alias}-v3"):
        await sync.rebuild()
    assert list((await es.indices.get_alias(name=alias)).body) == [f"{alias}-v3"]
    assert not await es.indices.exists(index=f"{alias}-v4")  # nothing was created


class _WritesDuringScan:
    """The catalog's revisions, with catalog writes landing right after the scan's first
    batch was read (the load reads one cursor, so they are behind it)."""

    def __init__(self, revisions: CatalogRevisions, writes: Callable[[], Awaitable[None]]) -> None:
        self._revisions = revisions
        self._writes = writes

    async def by_keys(self, revision_ids: Sequence[str]) -> list[Revision | None]:
        return await self._revisions.by_keys(revision_ids)

    async def scan(self, batch_size: int) -> AsyncIterator[list[Revision]]:
        async for batch in self._revisions.scan(batch_size):
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
    feeds: FeedMaker,
    unique: str,
) -> None:
    scanned = [await catalog.create(_content(category, f"D{n}-{unique}")) for n in range(3)]
    landed: list[Product] = []

    async def writes() -> None:
        clock.now += timedelta(seconds=1)
        # An update of a product the scan has already read, and a new product.
        landed.append(
            await catalog.replace(
                scanned[0].product_id, _content(category, f"D0-{unique}", "Ristretto mug")
            )
        )
        landed.append(await catalog.create(_content(category, f"DN-{unique}", "Cortado cup")))

    sync = _sync(
        catalog_db,
        engine,
        es,
        alias,
        clock,
        feeds(),
        revisions=_WritesDuringScan(CatalogRevisions(catalog_db.client, catalog_db.name), writes),
    )
    assert await sync.rebuild() == f"{alias}-v1"
    assert len(landed) == 2

    async def current() -> bool:
        for product in [*scanned[1:], *landed]:
            doc = await _indexed(es, alias, product.product_id)
            if doc is None or (doc["_version"], doc["_source"]["title"]) != (
                product.version,
                product.content.title,
            ):
                return False
        return True

    # What the catch-up had not received yet, the worker replays from the new checkpoint.
    report = await _until(sync, current)
    assert report.loaded == 0


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
    assert (await sync.run_once()).availability == 1
    assert await _available(es, alias, product.product_id) == (1, True)

    clock.now += timedelta(seconds=1)
    await store.reserve(f"order-{unique}", [(sku, 2)], timedelta(minutes=5))
    assert (await sync.run_once()).availability == 1
    assert await _available(es, alias, product.product_id) == (1, False)

    clock.now += timedelta(seconds=1)
    await release(store, f"order-{unique}")
    assert (await sync.run_once()).availability == 1
    assert await _available(es, alias, product.product_id) == (1, True)
    # Following again re-reads the last rows and rewrites nothing.
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
    feeds: FeedMaker,
    unique: str,
) -> None:
    sku = f"AR-{unique}"
    product = await catalog.create(_content(category, sku))
    await _sync(catalog_db, engine, es, alias, clock, feeds()).run_once()
    clock.now += timedelta(seconds=1)
    await store.set_stock(sku, 1)
    # A new process: only the saved stock checkpoint tells it where to look from.
    report = await _sync(catalog_db, engine, es, alias, clock, feeds()).run_once()
    assert (report.loaded, report.availability) == (0, 1)
    assert await _available(es, alias, product.product_id) == (1, True)


async def test_a_stock_write_that_commits_behind_the_checkpoint_is_followed_by_the_overlap(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    store: InventoryStore,
    category: int,
    clock: Clock,
    feeds: FeedMaker,
    unique: str,
) -> None:
    sku = f"AL-{unique}"
    product = await catalog.create(_content(category, sku))
    sync = _sync(catalog_db, engine, es, alias, clock, feeds(), overlap=timedelta(seconds=5))
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
    feeds: FeedMaker,
    unique: str,
) -> None:
    sku = f"AN-{unique}"
    product = await catalog.create(_content(category, sku))
    await _sync(catalog_db, engine, es, alias, clock, feeds()).run_once()
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
        feeds(),
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


async def test_a_failed_availability_rewrite_is_done_by_the_next_cycle(
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    catalog: CatalogStore,
    store: InventoryStore,
    category: int,
    clock: Clock,
    feeds: FeedMaker,
    unique: str,
) -> None:
    sku = f"AF-{unique}"
    product = await catalog.create(_content(category, sku))
    failing = _FirstRewriteFails(es)
    sync = _sync(catalog_db, engine, es, alias, clock, feeds(), search_engine=failing)
    await sync.run_once()
    clock.now += timedelta(seconds=1)
    await store.set_stock(sku, 2)
    with pytest.raises(EngineUnavailable):
        await sync.run_once()
    assert failing.failed
    assert await _available(es, alias, product.product_id) == (1, False)
    # The stock checkpoint did not move past the row: the next cycle (here a new process)
    # reads it again.
    report = await _sync(catalog_db, engine, es, alias, clock, feeds()).run_once()
    assert report.availability == 1
    assert await _available(es, alias, product.product_id) == (1, True)


async def test_an_index_from_before_skus_gets_the_field_and_its_documents_are_written(
    sync: CatalogSync,
    catalog: CatalogStore,
    es: AsyncElasticsearch,
    alias: str,
    category: int,
    unique: str,
) -> None:
    # The first version as an older worker created it: mapping version 1, no `skus`.
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
    # An index the worker created before indices named their owner becomes its own.
    assert await ElasticsearchEngine(es).owner(f"{alias}-v1") == "commerce-search"


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
