"""Availability follows stock: setting stock, reserving and releasing change whether a product
can be bought without making a new catalog revision, so the sync follows inventory rows too.

Guarantees:
- At least once: the stock checkpoint (next to the revisions checkpoint of the same index
  generation) moves only after the rewrites for those rows succeeded, and never past the
  worker's own clock; a restart re-reads from it, minus the overlap that catches rows whose
  transaction committed late.
- Idempotent: a product's `available` is computed from its SKUs' stock as it is now and
  written only when it differs; re-reading rows rewrites nothing.
- Never over a newer revision: a rewrite keeps the document's version (`external_gte`), so a
  revision written meanwhile wins; the batch is then looked at again on top of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.changes import moment
from commerce_services.search.documents import Upsert, epoch_ms
from commerce_services.search.engine import (
    START,
    Checkpoint,
    EngineUnavailable,
    IndexedProduct,
    SearchEngine,
)
from commerce_services.search.metrics import SYNC_AVAILABILITY

log = logging.getLogger(__name__)

# Looks at a batch again when a newer revision won a rewrite; more rounds than that means
# another writer keeps racing this one, and the cycle is retried from the checkpoint.
_ROUNDS = 3


def availability_rewrites(
    found: Sequence[IndexedProduct], sellable: Mapping[str, int]
) -> list[Upsert]:
    """The documents whose `available` is not what their SKUs' stock says (pure).

    `sellable`: units in stock minus reserved per SKU (absent: none)."""
    rewrites: list[Upsert] = []
    for product in found:
        available = any(sellable.get(sku, 0) > 0 for sku in product.document.get("skus", ()))
        if product.document.get("available") != available:
            document = {**product.document, "available": available}
            rewrites.append(
                Upsert(product.product_id, product.version, document, same_version=True)
            )
    return rewrites


class StockFollower:
    def __init__(
        self,
        engine: SearchEngine,
        reads: CatalogReads,
        alias: str,
        clock: Callable[[], datetime],
        overlap: timedelta,
        batch_size: int,
    ) -> None:
        self._engine = engine
        self._reads = reads
        self._alias = alias
        self._now = clock
        self._overlap_ms = int(overlap.total_seconds() * 1000)
        self._batch_size = batch_size

    async def start_now(self, index: str) -> Checkpoint:
        """For a generation about to be filled: its documents will read stock as it is from
        now on, so only changes from now (minus the overlap) need following."""
        start = Checkpoint(epoch_ms(self._now()) - self._overlap_ms, "")
        await self._engine.save_checkpoint(self._alias, index, start, "stock")
        return start

    async def checkpoint(self, index: str, *, revisions_started: bool) -> Checkpoint:
        """The generation's stock checkpoint, read before its revisions are synced. Without
        one, a generation not filled yet starts now; one already holding documents (written
        before stock was followed, or copied without it) looks at every inventory row once."""
        found = await self._engine.load_checkpoint(self._alias, index, "stock")
        if found is not None:
            return found
        if revisions_started:
            await self._engine.save_checkpoint(self._alias, index, START, "stock")
            return START
        return await self.start_now(index)

    async def follow(
        self, index: str, target: str, checkpoint: Checkpoint, *, via_alias: bool
    ) -> int:
        """Rewrites the availability of the products whose SKUs changed since `checkpoint`;
        returns how many documents were rewritten."""
        after, after_sku = moment(max(0, checkpoint.updated_at_ms - self._overlap_ms)), ""
        rewritten = 0
        while True:
            changes = await self._reads.stock_changes(after, after_sku, self._batch_size)
            if not changes:
                break
            rewritten += await self._rewrite(target, sorted({sku for _, sku in changes}), via_alias)
            after, after_sku = changes[-1]
            # Never past this worker's own now: a writer whose clock runs ahead would otherwise
            # move the checkpoint beyond rows that others are about to write. Such rows are
            # read again until the clock passes them, which rewrites nothing.
            saved = min(
                Checkpoint(epoch_ms(after), after_sku),
                Checkpoint(epoch_ms(self._now()), ""),
                key=Checkpoint.key,
            )
            await self._engine.save_checkpoint(self._alias, index, saved, "stock")
            if len(changes) < self._batch_size:
                break
        return rewritten

    async def _rewrite(self, target: str, skus: list[str], via_alias: bool) -> int:
        written = 0
        for _ in range(_ROUNDS):
            # Documents written a moment ago (or a newer revision that just won) must be
            # searchable before they are looked up.
            await self._engine.refresh(target)
            found = await self._engine.find_by_skus(target, skus)
            sellable = await self._reads.sellable(
                {sku for product in found for sku in product.document.get("skus", ())}
            )
            rewrites = availability_rewrites(found, sellable)
            if not rewrites:
                return written
            outcome = await self._engine.write(target, rewrites, require_alias=via_alias)
            written += outcome.written
            SYNC_AVAILABILITY.inc(outcome.written)
            if outcome.stale == 0:
                return written
            log.info("%d availability rewrites lost to newer revisions; again", outcome.stale)
        raise EngineUnavailable(f"availability of {len(skus)} SKUs kept losing to other writers")
