"""The catalog sync: keeps the index behind the alias consistent with `product_revisions`.

Guarantees:
- At least once: the checkpoint (kept next to the index, one per index generation) moves only
  after the bulk holding those revisions succeeded; a crash replays at most one batch.
- Idempotent and order-proof: each product is one document, `_id` = product id, written with
  `version_type: external` = the revision's version; a replayed or late older revision gets a
  409 from the engine, which counts as done (`stale`), and deletes carry their version too.
- Resumable: a restart reads on from the saved checkpoint; only `rebuild` reads everything,
  into a new index generation, and swaps the alias when it has caught up.
- Availability follows stock changes, which make no revision (availability.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from commerce_services.contracts import index_name, index_version
from commerce_services.search.availability import StockFollower
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.changes import ChangeSource, revision_key
from commerce_services.search.documents import (
    IndexOp,
    Revision,
    category_ids_needed,
    epoch_ms,
    index_op,
    skus_needed,
)
from commerce_services.search.engine import START, SearchEngine
from commerce_services.search.metrics import (
    SYNC_CHECKPOINT,
    SYNC_DOCUMENTS,
    SYNC_ERRORS,
    SYNC_LAG,
)

log = logging.getLogger(__name__)

# Revisions per batch of a rebuild's scan: one MariaDB lookup and one write per batch, which
# the engine cuts into bulks of at most its byte limit (5,000 documents are about 4 MB).
_SCAN_BATCH = 5000


@dataclass
class SyncReport:
    read: int = 0  # revisions past the checkpoint
    late: int = 0  # revisions re-read from the overlap window that had not been seen
    written: int = 0
    stale: int = 0
    rejected: int = 0
    availability: int = 0  # documents rewritten because their stock changed

    def add(self, other: SyncReport) -> None:
        self.read += other.read
        self.late += other.late
        self.written += other.written
        self.stale += other.stale
        self.rejected += other.rejected
        self.availability += other.availability


class AliasMissing(Exception):
    """The alias does not exist and this worker is not the one to create its index."""


class CatalogSync:
    def __init__(
        self,
        source: ChangeSource,
        engine: SearchEngine,
        reads: CatalogReads,
        alias: str,
        clock: Callable[[], datetime],
        batch_size: int = 500,
        create_index: bool = True,
        overlap: timedelta = timedelta(0),
    ) -> None:
        """`overlap`: how late an inventory write may commit after taking its `updated_at`
        and still be followed (the revisions' source has its own)."""
        self._source = source
        # The generation the source's memory of late arrivals belongs to.
        self._synced_index: str | None = None
        self._engine = engine
        self._reads = reads
        self._alias = alias
        self._now = clock
        self._batch_size = batch_size
        self._create_index = create_index
        self._stock = StockFollower(engine, reads, alias, clock, overlap, batch_size)
        self._mapping_checked: str | None = None

    async def current_index(self) -> str:
        """The index behind the alias; on first start, a new first generation behind it,
        unless the index is someone else's to create (a CatalogIndex's operator): then
        AliasMissing, and the poll is retried until the alias exists."""
        index = await self._engine.resolve_alias(self._alias)
        if index is None:
            if not self._create_index:
                raise AliasMissing(f"alias {self._alias} does not exist yet")
            index = await self._new_generation()
            await self._engine.swap_alias(self._alias, index)
            log.info("created %s behind alias %s", index, self._alias)
        elif self._create_index and index != self._mapping_checked:
            # An index this worker created under an older mapping gets the new fields; under a
            # CatalogIndex the operator applies the spec's mapping instead.
            await self._engine.ensure_mapping(index)
            self._mapping_checked = index
        return index

    async def run_once(self) -> SyncReport:
        """One poll: everything visible now, batch by batch, into the index behind the alias."""
        index = await self.current_index()
        # Through the alias: a write that races a rebuild's alias swap lands in the new index
        # instead of re-creating the old one that the rebuild deletes.
        return await self._sync(index, via_alias=True)

    async def run(self, poll_interval_s: float, stop: asyncio.Event | None = None) -> None:
        """Polls until `stop` is set; a failed poll (engine or database away) is logged and
        retried after the interval, from the last saved checkpoint."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.run_once()
            except AliasMissing as exc:
                # Expected while the operator has not created the index yet: no traceback.
                log.info("%s; polling again in %ss", exc, poll_interval_s)
            except Exception:
                SYNC_ERRORS.inc()
                log.exception("catalog sync poll failed; retrying in %ss", poll_interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval_s)

    async def rebuild(self, keep_old: bool = False) -> str:
        """Reads the whole catalog into a new index generation, swaps the alias to it in one
        atomic request, then deletes the older generations (unless `keep_old`).

        The catalog is read in one pass (`_scan`); then the generation's checkpoint is set at
        the scan's start (minus the source's overlap) and polled from there like the worker
        does, so what changed during the scan is in the index before the swap. Interrupted, a
        rebuild starts again in a generation of its own; the alias never saw the half one."""
        index = await self._new_generation()
        log.info("rebuilding into %s", index)
        report = await self._scan(index)
        report.add(await self._sync(index, via_alias=False))
        await self._engine.refresh(index)
        await self._engine.swap_alias(self._alias, index)
        log.info("alias %s -> %s after %s", self._alias, index, report)
        if not keep_old:
            for old in await self._engine.generations(self._alias):
                if old != index:
                    await self._engine.delete_index(old)
        return index

    async def _scan(self, index: str) -> SyncReport:
        """Every current revision into `index` through the source's single cursor, the next
        batch read while the current one is written; then the checkpoint where polling must
        resume to catch what the scan may have missed. Replays are harmless: the writes carry
        external versions."""
        resume = self._source.resume_point(self._now())
        report = SyncReport()
        async for batch in _read_ahead(self._source.scan(_SCAN_BATCH)):
            report.add(await self._apply(index, batch, via_alias=False))
            report.read += len(batch)
        await self._engine.save_checkpoint(self._alias, index, resume)
        log.info("scanned %d revisions into %s; polling on from %s", report.read, index, resume)
        return report

    async def _new_generation(self) -> str:
        generations = [
            index_version(self._alias, i) or 0 for i in await self._engine.generations(self._alias)
        ]
        index = index_name(self._alias, max(generations, default=0) + 1)
        await self._engine.create_index(index)
        await self._engine.save_checkpoint(self._alias, index, START)
        await self._stock.start_now(index)
        return index

    async def _sync(self, index: str, *, via_alias: bool) -> SyncReport:
        target = self._alias if via_alias else index
        if index != self._synced_index:
            # A revision that turned visible late went to the old generation after a version
            # change had copied it; the new one must be sent it again.
            self._source.forget()
            self._synced_index = index
        checkpoint = await self._engine.load_checkpoint(self._alias, index) or START
        stock = await self._stock.checkpoint(index, revisions_started=checkpoint != START)
        report = SyncReport()
        late = await self._source.late_arrivals(checkpoint)
        if late:
            self._lag(late)
            report.add(await self._apply(target, late, via_alias))
            report.late += len(late)
        while True:
            batch = await self._source.after(checkpoint, self._batch_size)
            if not batch:
                break
            self._lag(batch)
            report.add(await self._apply(target, batch, via_alias))
            report.read += len(batch)
            checkpoint = revision_key(batch[-1])
            await self._engine.save_checkpoint(self._alias, index, checkpoint)
            SYNC_CHECKPOINT.set(checkpoint.updated_at_ms / 1000)
            if len(batch) < self._batch_size:
                break
        report.availability = await self._stock.follow(index, target, stock, via_alias=via_alias)
        SYNC_LAG.set(0)
        return report

    def _lag(self, batch: Sequence[Revision]) -> None:
        oldest = min(epoch_ms(r["updated_at"]) for r in batch)
        SYNC_LAG.set(max(0.0, (epoch_ms(self._now()) - oldest) / 1000))

    async def _apply(self, target: str, batch: Sequence[Revision], via_alias: bool) -> SyncReport:
        categories = await self._reads.categories_with_ancestors(category_ids_needed(batch))
        sellable = await self._reads.sellable(skus_needed(batch))
        ops: list[IndexOp] = []
        for revision in batch:
            op = index_op(revision, categories, sellable)
            if op is not None:
                ops.append(op)
        outcome = await self._engine.write(target, ops, require_alias=via_alias) if ops else None
        report = SyncReport()
        if outcome is not None:
            report.written, report.stale = outcome.written, outcome.stale
            report.rejected = len(outcome.rejected)
        SYNC_DOCUMENTS.labels("written").inc(report.written)
        SYNC_DOCUMENTS.labels("stale").inc(report.stale)
        SYNC_DOCUMENTS.labels("rejected").inc(report.rejected)
        SYNC_DOCUMENTS.labels("skipped").inc(len(batch) - len(ops))
        return report


async def _read_ahead(batches: AsyncIterator[list[Revision]]) -> AsyncIterator[list[Revision]]:
    """`batches`, with the next one already being read while the caller handles the current
    one: the source and the engine are separate servers, so reading and writing overlap."""
    upcoming = asyncio.ensure_future(anext(batches, None))
    try:
        while (batch := await upcoming) is not None:
            upcoming = asyncio.ensure_future(anext(batches, None))
            yield batch
    finally:
        upcoming.cancel()
