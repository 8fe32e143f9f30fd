"""The catalog sync: keeps the index behind the alias consistent with the catalog, fed by its
`product_changed` events.

Guarantees:
- Fed by events, read by key: each event names a product version; the sync reads that
  revision by `_id` (a tombstone's event is a delete), never scanning the catalog to find what
  changed. Events of one product come in order; a revision already superseded by a newer one
  (cut to a stub) is skipped, since the newer one's event follows.
- At least once: the position in the topic is part of the index version's checkpoint, saved
  next to the index only after the documents of the events before it were written; a crash
  replays what came after the last save.
- Idempotent and order-proof: each product is one document, `_id` = product id, written with
  `version_type: external` = the revision's version; a replayed or late older revision gets a
  409 from the engine, which counts as done (`stale`), and deletes carry their version too.
- Loading: an index version without a position (new, or synced by the watermark poll this
  replaced, or whose position the topic no longer keeps) is filled from the catalog in one
  scan, from a position taken before the scan began, so every change made during the scan is
  replayed on top. `rebuild` does that into a new version and swaps the alias when it has
  caught up; it never swaps or deletes an index it did not create.
- Availability follows stock changes, which make no revision (availability.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commerce_services.contracts import index_name, index_version
from commerce_services.product.catalog.events import ProductChanged
from commerce_services.search.availability import StockFollower
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.changes import ChangeFeed, RevisionStore
from commerce_services.search.documents import (
    Delete,
    IndexOp,
    Revision,
    category_ids_needed,
    epoch_ms,
    index_op,
    skus_needed,
)
from commerce_services.search.engine import START, Checkpoint, SearchEngine
from commerce_services.search.mapping import OWNER
from commerce_services.search.metrics import (
    SYNC_CHECKPOINT,
    SYNC_DOCUMENTS,
    SYNC_ERRORS,
    SYNC_LAG,
)
from commerce_services.search.product_events import EventsGone, decode_position, encode_position

log = logging.getLogger(__name__)

# Revisions per batch of a load's scan: one MariaDB lookup and one write per batch, which the
# engine cuts into bulks of at most its byte limit (5,000 documents are about 4 MB).
_SCAN_BATCH = 5000
# How long run_once waits for an event it knows was published before it gives up for now.
_DRAIN_WAIT_S = 0.5
_DRAIN_IDLE_READS = 6


@dataclass
class SyncReport:
    read: int = 0  # events read
    loaded: int = 0  # revisions read by a load's scan
    written: int = 0
    stale: int = 0
    rejected: int = 0
    skipped: int = 0  # events whose revision was already superseded
    availability: int = 0  # documents rewritten because their stock changed

    def add(self, other: SyncReport) -> None:
        self.read += other.read
        self.loaded += other.loaded
        self.written += other.written
        self.stale += other.stale
        self.rejected += other.rejected
        self.skipped += other.skipped
        self.availability += other.availability


class AliasMissing(Exception):
    """The alias does not exist and this worker is not the one to create its index."""


class RebuildRefused(Exception):
    """The rebuild would swap the alias away from, or delete, an index it did not create."""


class CatalogSync:
    def __init__(
        self,
        changes: ChangeFeed,
        revisions: RevisionStore,
        engine: SearchEngine,
        reads: CatalogReads,
        alias: str,
        clock: Callable[[], datetime],
        batch_size: int = 500,
        create_index: bool = True,
        overlap: timedelta = timedelta(0),
    ) -> None:
        """`overlap`: how late an inventory write may commit after taking its `updated_at`
        and still be followed."""
        self._changes = changes
        self._revisions = revisions
        self._engine = engine
        self._reads = reads
        self._alias = alias
        self._now = clock
        self._batch_size = batch_size
        self._create_index = create_index
        self._stock = StockFollower(engine, reads, alias, clock, overlap, batch_size)
        self._mapping_checked: str | None = None
        # The index version the feed is positioned for, where, and the newest change applied.
        self._synced_index: str | None = None
        self._position: dict[int, int] = {}
        self._changed_ms = 0

    async def current_index(self) -> str:
        """The index behind the alias; on first start, a new first version behind it, unless
        the index is someone else's to create (a CatalogIndex's operator): then AliasMissing,
        and the sync is retried until the alias exists."""
        index = await self._engine.resolve_alias(self._alias)
        if index is None:
            if not self._create_index:
                raise AliasMissing(f"alias {self._alias} does not exist yet")
            index = await self._new_version()
            await self._engine.swap_alias(self._alias, index)
            log.info("created %s behind alias %s", index, self._alias)
        elif self._create_index and index != self._mapping_checked:
            # An index this worker created under an older mapping gets the new fields; under a
            # CatalogIndex the operator applies the spec's mapping instead.
            await self._engine.ensure_mapping(index)
            self._mapping_checked = index
        return index

    async def run_once(self) -> SyncReport:
        """Every change published until now into the index behind the alias."""
        index = await self.current_index()
        # Through the alias: a write that races a rebuild's alias swap lands in the new index
        # instead of re-creating the old one that the rebuild deletes.
        return await self._guarded(self._follow(index, via_alias=True, wait_s=None))

    async def run(self, wait_s: float, stop: asyncio.Event | None = None) -> None:
        """Follows the changes until `stop` is set, waiting up to `wait_s` for each next one;
        a failed cycle (engine, database or Kafka away) is logged and retried after `wait_s`,
        from the last saved checkpoint."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                index = await self.current_index()
                await self._guarded(self._follow(index, via_alias=True, wait_s=wait_s))
                continue  # the read has waited already
            except AliasMissing as exc:
                # Expected while the operator has not created the index yet: no traceback.
                log.info("%s; trying again in %ss", exc, wait_s)
            except Exception:
                SYNC_ERRORS.inc()
                log.exception("catalog sync failed; retrying in %ss", wait_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)

    async def rebuild(self, keep_old: bool = False) -> str:
        """Loads the whole catalog into a new index version, catches up on the changes made
        meanwhile, swaps the alias to it in one atomic request, then deletes the older
        versions (unless `keep_old`). RebuildRefused, before anything is created, when an
        index it would swap away from or delete is not one this sync created (a CatalogIndex's
        operator owns those). Interrupted, a rebuild starts again in a version of its own; the
        alias never saw the half one."""
        current = await self._engine.resolve_alias(self._alias)
        older = [] if keep_old else await self._engine.generations(self._alias)
        for touched in dict.fromkeys([*([current] if current else []), *older]):
            owner = await self._engine.owner(touched)
            if owner != OWNER:
                raise RebuildRefused(
                    f"{touched} (alias {self._alias}) belongs to {owner or 'someone else'}, "
                    "not to commerce-search: change its CatalogIndex to get a new version"
                )
        index = await self._new_version()
        log.info("rebuilding into %s", index)
        report = await self._guarded(self._follow(index, via_alias=False, wait_s=None))
        await self._engine.refresh(index)
        await self._engine.swap_alias(self._alias, index)
        log.info("alias %s -> %s after %s", self._alias, index, report)
        for old in older:
            if old != index:
                await self._engine.delete_index(old)
        return index

    # ---- following the changes --------------------------------------------------------------

    async def _guarded(self, cycle: Coroutine[Any, Any, SyncReport]) -> SyncReport:
        """Runs a cycle; after a failure the next one starts again from the saved checkpoint
        (the feed may have read past changes whose documents were not written)."""
        try:
            return await cycle
        except BaseException:
            self._synced_index = None
            raise

    async def _follow(self, index: str, *, via_alias: bool, wait_s: float | None) -> SyncReport:
        """Applies changes to `index` (through the alias when `via_alias`): one read waiting
        up to `wait_s`, or with `wait_s` None every change published until now; then follows
        stock."""
        target = self._alias if via_alias else index
        report = SyncReport()
        if index != self._synced_index:
            report.add(await self._start(index, target, via_alias))
        stock = await self._stock.checkpoint(index, revisions_started=True)
        try:
            if wait_s is None:
                report.add(await self._drain(index, target, via_alias))
            else:
                report.add(await self._read(index, target, via_alias, wait_s))
        except EventsGone as exc:
            log.warning("the changes after %s's checkpoint are gone (%s): loading it", index, exc)
            report.add(await self._load(index, target, via_alias))
            await self._changes.seek(self._position)
        report.availability = await self._stock.follow(index, target, stock, via_alias=via_alias)
        return report

    async def _start(self, index: str, target: str, via_alias: bool) -> SyncReport:
        """Positions the feed at `index`'s checkpoint; loads the index first when it has none."""
        saved = await self._engine.load_checkpoint(self._alias, index) or START
        # A version about to be loaded follows stock from now; one synced by the watermark poll
        # has its own stock checkpoint already.
        await self._stock.checkpoint(index, revisions_started=saved != START)
        position = decode_position(saved.revision_id)
        report = SyncReport()
        if position is None:
            report = await self._load(index, target, via_alias)
        else:
            self._position, self._changed_ms = dict(position), saved.updated_at_ms
        await self._changes.seek(self._position)
        self._synced_index = index
        return report

    async def _load(self, index: str, target: str, via_alias: bool) -> SyncReport:
        """Every current revision into the index through one scan; the position is taken
        before the scan, so the changes made during it are replayed after (harmless: the
        writes carry external versions)."""
        position = await self._changes.end()
        started_ms = epoch_ms(self._now())
        report = SyncReport()
        async for batch in _read_ahead(self._revisions.scan(_SCAN_BATCH)):
            heads = await self._reads.heads({str(r["product_id"]) for r in batch})
            # An older revision not cut to a stub yet is no longer the product.
            current = [
                r
                for r in batch
                if int(r["version"]) >= heads.get(str(r["product_id"]), (0, False))[0]
            ]
            report.add(await self._write(target, current, (), via_alias))
            report.loaded += len(batch)
        self._position, self._changed_ms = dict(position), max(self._changed_ms, started_ms)
        await self._save(index)
        log.info("loaded %d revisions into %s; following changes from %s", report.loaded, index,
                 encode_position(position))  # fmt: skip
        return report

    async def _drain(self, index: str, target: str, via_alias: bool) -> SyncReport:
        end = await self._changes.end()
        report = SyncReport()
        idle = 0
        while any(self._position.get(p, 0) < o for p, o in end.items()):
            read = await self._read(index, target, via_alias, _DRAIN_WAIT_S)
            report.add(read)
            idle = 0 if read.read else idle + 1
            if idle >= _DRAIN_IDLE_READS:
                log.warning("changes published before %s were not delivered yet", end)
                break
        return report

    async def _read(self, index: str, target: str, via_alias: bool, wait_s: float) -> SyncReport:
        batch = await self._changes.read(self._batch_size, wait_s)
        report = SyncReport()
        if batch.changes:
            self._lag(batch.changes)
            report = await self._apply(target, batch.changes, via_alias)
            self._changed_ms = max(
                self._changed_ms, *(epoch_ms(c.updated_at) for c in batch.changes)
            )
        else:
            SYNC_LAG.set(0)
        if batch.position != self._position:
            self._position = batch.position
            await self._save(index)
        return report

    async def _apply(
        self, target: str, changes: Sequence[ProductChanged], via_alias: bool
    ) -> SyncReport:
        """The newest change of each product, its revision from the committed copy (one
        MariaDB query for the batch) or, for a product committed before the copies, by key."""
        newest: dict[str, ProductChanged] = {}
        for change in changes:
            known = newest.get(change.product_id)
            if known is None or change.version > known.version:
                newest[change.product_id] = change
        deletes = [Delete(c.product_id, c.version) for c in newest.values() if c.deleted]
        live = [c for c in newest.values() if not c.deleted]
        copies = await self._reads.copies(c.product_id for c in live)
        current: list[Revision] = []
        by_key: list[ProductChanged] = []
        for change in live:
            copy = copies.get(change.product_id)
            if copy is None or copy.version < change.version:
                by_key.append(change)  # not expected: the event commits with its head
            elif copy.version > change.version or copy.deleted:
                continue  # superseded: the newer version's own event follows
            elif copy.revision is not None:
                current.append(copy.revision)
            else:
                by_key.append(change)
        found = await self._revisions.by_keys([c.revision_id for c in by_key])
        current += [r for r in found if r is not None and not r.get("superseded")]
        report = await self._write(target, current, deletes, via_alias)
        report.read = len(changes)
        report.skipped = len(live) - len(current)
        SYNC_DOCUMENTS.labels("skipped").inc(report.skipped)
        return report

    async def _write(
        self, target: str, revisions: Sequence[Revision], deletes: Sequence[Delete], via_alias: bool
    ) -> SyncReport:
        categories = await self._reads.categories_with_ancestors(category_ids_needed(revisions))
        sellable = await self._reads.sellable(skus_needed(revisions))
        ops: list[IndexOp] = list(deletes)
        for revision in revisions:
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
        return report

    async def _save(self, index: str) -> None:
        checkpoint = Checkpoint(self._changed_ms, encode_position(self._position))
        await self._engine.save_checkpoint(self._alias, index, checkpoint)
        SYNC_CHECKPOINT.set(self._changed_ms / 1000)

    def _lag(self, changes: Sequence[ProductChanged]) -> None:
        oldest = min(epoch_ms(c.updated_at) for c in changes)
        SYNC_LAG.set(max(0.0, (epoch_ms(self._now()) - oldest) / 1000))

    async def _new_version(self) -> str:
        versions = [
            index_version(self._alias, i) or 0 for i in await self._engine.generations(self._alias)
        ]
        index = index_name(self._alias, max(versions, default=0) + 1)
        await self._engine.create_index(index)
        await self._engine.save_checkpoint(self._alias, index, START)
        await self._stock.start_now(index)
        return index


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
