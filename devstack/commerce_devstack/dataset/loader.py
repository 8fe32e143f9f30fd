"""Loads the data set into a target: the category tree and stock into MariaDB, the catalog into
MongoDB, the documents into the search index, in batches, so memory stays flat at any count.

The index is filled the way the sync fills it (`documents.index_op` and the engine's bulk
writes) into a new generation, swapped behind the target's alias at the end, with the sync's
checkpoint set after the last loaded revision: `commerce-search run` continues from there
instead of reading the million products again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.dataset.categories import CategoryNode, category_tree
from commerce_devstack.dataset.products import (
    EPOCH,
    GeneratedProduct,
    ProductGenerator,
    claim_documents,
    revision_document,
)
from commerce_devstack.dataset.target import Target, create_mariadb, drop
from commerce_devstack.endpoints import Endpoints
from commerce_services.contracts import index_name
from commerce_services.product.catalog.mappings import CategoryMappings
from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.catalog.tables import product_categories, product_mappings
from commerce_services.product.categories.tables import categories
from commerce_services.product.inventory.tables import inventory
from commerce_services.runtime.clock import utc_now
from commerce_services.search.changes import revision_key
from commerce_services.search.documents import CategoryInfo, IndexOp, epoch_ms, index_op
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.engine import START, Checkpoint
from commerce_services.search.mapping import SETTINGS

_SLICE = 250  # products generated between two yields to the event loop


@dataclass
class LoadReport:
    target: str
    seed: int
    products: int = 0  # live
    deleted: int = 0
    skus: int = 0
    categories: int = 0
    index: str = ""
    checkpoint: Checkpoint = field(default=START)
    seconds: float = 0.0

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
            "checkpoint": self.checkpoint.key(),
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
    batch: list[GeneratedProduct] = []
    for product in products:
        batch.append(product)
        if len(batch) % _SLICE == 0:
            await asyncio.sleep(0)  # generating is CPU work: let the batch in flight move on
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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
        self._claims = mongo[target.mongo_database]["sku_claims"]
        self._database = database
        self._engine = engine
        self._index = index
        self._infos = infos

    async def write(self, batch: list[GeneratedProduct]) -> Checkpoint:
        """Writes the batch; returns its newest revision's key."""
        revisions = [revision_document(p) for p in batch]
        claims = [c for p in batch for c in claim_documents(p)]
        await asyncio.gather(
            self._revisions.insert_many(revisions, ordered=False),
            self._claims.insert_many(claims, ordered=False) if claims else asyncio.sleep(0),
            self._mariadb(batch),
            self._search(batch, revisions),
        )
        return max((revision_key(r) for r in revisions), key=Checkpoint.key)

    async def _mariadb(self, batch: list[GeneratedProduct]) -> None:
        now = utc_now()
        async with self._database.begin() as conn:
            stock = [
                {"sku": sku, "stock": units, "reserved": 0, "updated_at": now}
                for p in batch
                for sku, units in p.stock.items()
            ]
            if stock:
                await conn.execute(insert(inventory), stock)
            await conn.execute(
                insert(product_mappings),
                [
                    {
                        "product_id": p.product_id,
                        "version": p.version,
                        "deleted": p.deleted,
                        "updated_at": now,
                    }
                    for p in batch
                ],
            )
            rows = [
                {
                    "product_id": p.product_id,
                    "category_id": category_id,
                    "is_primary": category_id == p.content.primary_category_id,
                }
                for p in batch
                if p.content is not None
                for category_id in p.content.category_ids
            ]
            if rows:
                await conn.execute(insert(product_categories), rows)

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
            insert(categories),
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


async def load(
    stack: Endpoints,
    target: Target,
    count: int,
    seed: int,
    *,
    batch_size: int = 2000,
    on_batch: Callable[[int], None] = lambda _: None,
) -> LoadReport:
    """Replaces whatever the target held with `count` live products (plus one deleted per
    hundred); `on_batch` is told how many products each batch held."""
    began = time.perf_counter()
    await drop(stack, target)
    await asyncio.to_thread(create_mariadb, stack, target)
    tree = category_tree(seed)
    generator = ProductGenerator(tree, seed)
    report = LoadReport(target.name, seed, categories=len(tree))
    database = create_async_engine(target.database_settings(stack).database_url(), pool_size=4)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000, tz_aware=False
    )
    es = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=300)
    engine = ElasticsearchEngine(es)
    try:
        await _insert_tree(database, tree)
        index = index_name(target.alias, 1)
        await engine.create_index(index)
        # No refreshes while loading: segments are merged once instead of every second.
        await es.indices.put_settings(index=index, settings={"refresh_interval": "-1"})
        sinks = _Sinks(mongo, database, engine, target, index, category_infos(tree))
        checkpoint = START
        # One batch is written while the next one is generated.
        pending: tuple[asyncio.Task[Checkpoint], int] | None = None
        try:
            async for batch in _batches(generator.stream(count), batch_size):
                if pending is not None:
                    checkpoint = max(checkpoint, await pending[0], key=Checkpoint.key)
                    on_batch(pending[1])
                pending = (asyncio.create_task(sinks.write(batch)), len(batch))
                _count(report, batch)
            if pending is not None:
                checkpoint = max(checkpoint, await pending[0], key=Checkpoint.key)
                on_batch(pending[1])
        finally:
            if pending is not None and not pending[0].done():
                pending[0].cancel()
        # What the product service itself creates on start; cheaper once than per insert.
        mappings = CategoryMappings(database, utc_now)
        await CatalogStore(mongo, target.mongo_database, mappings, utc_now).ensure_indexes()
        await es.indices.put_settings(
            index=index, settings={"refresh_interval": SETTINGS["refresh_interval"]}
        )
        await engine.refresh(index)
        await engine.swap_alias(target.alias, index)
        await engine.save_checkpoint(target.alias, index, checkpoint)
        # The documents read the stock this load wrote: the sync follows stock from here.
        await engine.save_checkpoint(
            target.alias, index, Checkpoint(epoch_ms(utc_now()), ""), "stock"
        )
        report.index, report.checkpoint = index, checkpoint
    finally:
        await es.close()
        await mongo.close()
        await database.dispose()
    report.seconds = time.perf_counter() - began
    return report


def _count(report: LoadReport, batch: list[GeneratedProduct]) -> None:
    for product in batch:
        if product.content is None:
            report.deleted += 1
        else:
            report.products += 1
            report.skus += len(product.stock)
