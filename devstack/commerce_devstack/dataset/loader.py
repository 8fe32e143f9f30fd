"""Loads the data set into a target: the category tree, stock and the catalog's committed state
into MariaDB, the revisions into MongoDB, the documents into the search index, in batches, so
memory stays flat at any count.

The catalog's MariaDB rows are what the store's commit writes (projection.py): the head with
its title, listing rows, SKU prices and claims; no change events (the index is filled here).
The index is filled the way the sync fills it (`documents.index_op` and the engine's bulk
writes) into a new version, swapped behind the target's alias at the end, with the sync's
checkpoint at the start of the target's events topic, so `commerce-search run` follows the
changes made after the load instead of reading a million products again.

Resumable: every write is idempotent (duplicate keys ignored, external versions in the index),
and after each batch the load's progress is saved in the stack's state folder; `load` run
again with the same target, seed and count goes on after the last batch written.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.dataset.categories import CategoryNode, category_tree
from commerce_devstack.dataset.products import (
    EPOCH,
    GeneratedProduct,
    ProductGenerator,
    revision_document,
)
from commerce_devstack.dataset.target import Target, create_mariadb, drop
from commerce_devstack.endpoints import Endpoints
from commerce_services.contracts import Checkpoint, index_name
from commerce_services.product.catalog import committed_documents
from commerce_services.product.catalog.tables import (
    product_categories,
    product_mappings,
    sku_claims,
    sku_prices,
)
from commerce_services.product.categories.tables import categories
from commerce_services.product.inventory.tables import inventory
from commerce_services.runtime.clock import utc_now
from commerce_services.search.documents import CategoryInfo, IndexOp, epoch_ms, index_op
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.mapping import SETTINGS
from commerce_services.search.product_events import encode_position

_SLICE = 250  # products generated between two yields to the event loop
_DUPLICATE_KEY = 11000


@dataclass
class LoadReport:
    target: str
    seed: int
    count: int  # live products asked for
    mongo_uri: str  # where the revisions went
    products: int = 0  # live, written so far
    deleted: int = 0
    skus: int = 0
    categories: int = 0
    index: str = ""
    next_product: int = 0  # where a resumed load goes on
    seconds: float = 0.0  # over every run of this load
    finished: bool = False

    @property
    def per_second(self) -> float:
        return (self.products + self.deleted) / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "target": self.target,
            "seed": self.seed,
            "products": self.products,
            "deleted": self.deleted,
            "skus": self.skus,
            "categories": self.categories,
            "index": self.index,
            "seconds": round(self.seconds, 1),
            "products_per_s": round(self.per_second, 1),
        }


def category_infos(tree: list[CategoryNode]) -> dict[int, CategoryInfo]:
    """The tree as the index documents need it (ancestors and names)."""
    return {
        node.id: CategoryInfo(node.id, node.name, tuple(int(p) for p in node.path.split("/")))
        for node in tree
    }


async def _batches(
    products: Iterator[GeneratedProduct], size: int
) -> AsyncIterator[list[GeneratedProduct]]:
    """Batches of about `size` that end with a whole product: a live one and the deleted one
    after it are in the same batch, so a load can go on at a live product's index."""
    batch: list[GeneratedProduct] = []
    for product in products:
        if len(batch) >= size and not product.deleted:
            yield batch
            batch = []
        batch.append(product)
        if len(batch) % _SLICE == 0:
            await asyncio.sleep(0)  # generating is CPU work: let the batch in flight move on
    if batch:
        yield batch


def _ignoring_duplicates(error: BulkWriteError) -> None:
    """A resumed batch finds some of its documents stored already: that is fine."""
    if any(e.get("code") != _DUPLICATE_KEY for e in error.details.get("writeErrors", ())):
        raise error


class _Sinks:
    """One batch into the three stores at once (they are separate servers)."""

    def __init__(
        self,
        mongo: AsyncMongoClient[dict[str, Any]],
        database: AsyncEngine,
        engine: ElasticsearchEngine,
        target: Target,
        index: str,
        infos: dict[int, CategoryInfo],
    ) -> None:
        self._revisions = mongo[target.mongo_database]["product_revisions"]
        self._database = database
        self._engine = engine
        self._index = index
        self._infos = infos

    async def write(self, batch: list[GeneratedProduct]) -> None:
        revisions = [revision_document(p) for p in batch]
        await asyncio.gather(
            self._mongo(revisions), self._mariadb(batch, revisions), self._search(batch, revisions)
        )

    async def _mongo(self, revisions: list[dict[str, Any]]) -> None:
        try:
            await self._revisions.insert_many(revisions, ordered=False)
        except BulkWriteError as error:
            _ignoring_duplicates(error)

    async def _mariadb(
        self, batch: list[GeneratedProduct], revisions: list[dict[str, Any]]
    ) -> None:
        now = utc_now()
        live = [p for p in batch if p.content is not None]
        rows: dict[Any, list[dict[str, Any]]] = {
            inventory: [
                {"sku": sku, "stock": units, "reserved": 0, "updated_at": now}
                for p in batch
                for sku, units in p.stock.items()
            ],
            product_mappings: [
                {
                    "product_id": p.product_id,
                    "version": p.version,
                    "deleted": p.deleted,
                    "updated_at": now,
                    "title": None if p.content is None else p.content.title,
                    "document": None if p.content is None else committed_documents.encode(r),
                }
                for p, r in zip(batch, revisions, strict=True)
            ],
            product_categories: [
                {
                    "product_id": p.product_id,
                    "category_id": category_id,
                    "is_primary": category_id == p.content.primary_category_id,
                }
                for p in live
                if p.content is not None
                for category_id in p.content.category_ids
            ],
            sku_prices: [
                {
                    "sku": v.sku,
                    "product_id": p.product_id,
                    "version": p.version,
                    "amount_minor": v.price.minor,
                    "currency": v.price.currency,
                }
                for p in live
                if p.content is not None
                for v in p.content.variants
            ],
            sku_claims: [
                {
                    "sku": v.sku,
                    "product_id": p.product_id,
                    "version": p.version,
                    "claimed_at": p.updated_at,
                }
                for p in live
                if p.content is not None
                for v in p.content.variants
            ],
        }
        async with self._database.begin() as conn:
            # product_mappings first: the listing rows refer to it.
            for table in (product_mappings, inventory, product_categories, sku_prices, sku_claims):
                if rows[table]:
                    await conn.execute(insert(table).prefix_with("IGNORE"), rows[table])

    async def _search(self, batch: list[GeneratedProduct], revisions: list[dict[str, Any]]) -> None:
        sellable = {sku: units for p in batch for sku, units in p.stock.items()}
        ops: list[IndexOp] = []
        for revision in revisions:
            op = index_op(revision, self._infos, sellable)
            if op is not None:
                ops.append(op)
        outcome = await self._engine.write(self._index, ops, require_alias=False)
        if outcome.rejected:
            raise RuntimeError(f"the index refused products {outcome.rejected[:5]}")


async def _insert_tree(database: AsyncEngine, tree: list[CategoryNode]) -> None:
    async with database.begin() as conn:
        await conn.execute(
            insert(categories).prefix_with("IGNORE"),
            [
                {
                    "id": node.id,
                    "name": node.name,
                    "parent_id": node.parent_id,
                    "level": node.level,
                    "path": node.path,
                    "created_at": EPOCH,
                    "updated_at": EPOCH,
                }
                for node in tree
            ],
        )


def progress_file(state_dir: Path, target: Target) -> Path:
    return state_dir / "datasets" / f"{target.name}.json"


def _resumable(
    saved: Path, target: Target, count: int, seed: int, mongo_uri: str
) -> LoadReport | None:
    """The progress of an earlier load of the same data set into the target, if any."""
    if not saved.exists():
        return None
    try:
        report = LoadReport(**json.loads(saved.read_text()))
    except TypeError:  # written by an older loader
        return None
    if (report.target, report.seed, report.count, report.mongo_uri) != (
        target.name,
        seed,
        count,
        mongo_uri,
    ):
        return None
    return report


async def load(
    stack: Endpoints,
    target: Target,
    count: int,
    seed: int,
    state_dir: Path,
    *,
    batch_size: int = 2000,
    fresh: bool = False,
    on_batch: Callable[[int], None] = lambda _: None,
) -> LoadReport:
    """`count` live products (plus one deleted per hundred) into the target; goes on from an
    interrupted load of the same data set unless `fresh`, else replaces what the target held.
    `on_batch` is told how many products each batch held."""
    began = time.perf_counter()
    saved = progress_file(state_dir, target)
    mongo_uri = target.mongo_uri(stack)
    report = None if fresh else _resumable(saved, target, count, seed, mongo_uri)
    if report is not None and report.finished:
        return report
    tree = category_tree(seed)
    resuming = report is not None
    if report is None:
        await drop(stack, target)
        await asyncio.to_thread(create_mariadb, stack, target)
        report = LoadReport(target.name, seed, count, mongo_uri, categories=len(tree))
    database = create_async_engine(target.database_settings(stack).database_url(), pool_size=4)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        target.mongo_uri(stack), serverSelectionTimeoutMS=5000, tz_aware=False
    )
    es = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=300)
    engine = ElasticsearchEngine(es)
    index = index_name(target.alias, 1)
    try:
        if not resuming:
            await _insert_tree(database, tree)
            await engine.create_index(index)
            # No refreshes while loading: segments are merged once instead of every second.
            await es.indices.put_settings(index=index, settings={"refresh_interval": "-1"})
        report.index = index
        sinks = _Sinks(mongo, database, engine, target, index, category_infos(tree))
        generator = ProductGenerator(tree, seed)
        earlier_s = report.seconds
        # One batch is written while the next one is generated.
        pending: tuple[asyncio.Task[None], list[GeneratedProduct]] | None = None

        async def settle(task: asyncio.Task[None], batch: list[GeneratedProduct]) -> None:
            await task
            _count(report, batch)
            report.seconds = earlier_s + time.perf_counter() - began
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(asdict(report)))
            on_batch(len(batch))

        try:
            stream = generator.stream(count, report.next_product)
            async for batch in _batches(stream, batch_size):
                if pending is not None:
                    await settle(*pending)
                pending = (asyncio.create_task(sinks.write(batch)), batch)
            if pending is not None:
                await settle(*pending)
                pending = None
        finally:
            if pending is not None and not pending[0].done():
                pending[0].cancel()
        await es.indices.put_settings(
            index=index, settings={"refresh_interval": SETTINGS["refresh_interval"]}
        )
        await engine.refresh(index)
        await engine.swap_alias(target.alias, index)
        # The sync follows the target's events from their start: the load wrote none.
        await engine.save_checkpoint(target.alias, index, Checkpoint(0, encode_position({})))
        # The documents read the stock this load wrote: the sync follows stock from here.
        await engine.save_checkpoint(
            target.alias, index, Checkpoint(epoch_ms(utc_now()), ""), "stock"
        )
        report.finished = True
        saved.write_text(json.dumps(asdict(report)))
    finally:
        await es.close()
        await mongo.close()
        await database.dispose()
    return report


def _count(report: LoadReport, batch: list[GeneratedProduct]) -> None:
    for product in batch:
        if product.content is None:
            report.deleted += 1
        else:
            report.products += 1
            report.skus += len(product.stock)
    report.next_product = max(report.next_product, batch[-1].index + 1)
