"""Where the sync learns about catalog changes.

FerretDB has no change streams, so the source here is a watermark poll on (updated_at, _id)
over `product_revisions`; a change-stream source would implement the same methods (its
`late_arrivals` returning nothing, since a stream delivers in commit order, and its
`resume_point` the stream position taken before the scan).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from commerce_services.search.documents import Revision, epoch_ms
from commerce_services.search.engine import Checkpoint

# What the index documents need; images and bookkeeping fields stay behind.
_PROJECTION = {"images": 0, "mapping_pending": 0}


def revision_key(revision: Revision) -> Checkpoint:
    return Checkpoint(epoch_ms(revision["updated_at"]), str(revision["_id"]))


def moment(ms: int) -> datetime:
    # Naive UTC, as the catalog stores it.
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


class ChangeSource(Protocol):
    async def after(self, checkpoint: Checkpoint, limit: int) -> list[Revision]:
        """Up to `limit` changes past `checkpoint`, in checkpoint order."""
        ...

    async def late_arrivals(self, checkpoint: Checkpoint) -> list[Revision]:
        """Changes at or before `checkpoint` that were not visible when it was passed."""
        ...

    def scan(self, batch_size: int) -> AsyncIterator[list[Revision]]:
        """Every current revision, in batches, in no particular order (a rebuild's read)."""
        ...

    def forget(self) -> None:
        """Forget what was returned: the next `late_arrivals` sends its whole window again (for
        another index generation, which has not seen what the previous one was sent)."""
        ...

    def resume_point(self, scan_started: datetime) -> Checkpoint:
        """Where polling continues after a scan that started at `scan_started`, so that
        whatever changed during the scan is read again."""
        ...


class WatermarkPoll:
    """Polls revisions in (updated_at, _id) order after the checkpoint; stubs are left out
    (their successor comes later in the same order).

    The edge of a watermark: a writer takes its `updated_at` before its insert lands, so a
    revision can become visible after a later one was already read. `late_arrivals` re-reads
    the last `overlap` before the checkpoint and returns what it has not returned before (ids
    seen in that window are remembered; after a restart the window is sent once more, which the
    engine's external versions make harmless). A write that stalls longer than `overlap`
    between taking its time and landing is missed until the next rebuild.
    """

    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], database: str, overlap: timedelta
    ) -> None:
        self._revisions: AsyncCollection[dict[str, Any]] = client[database]["product_revisions"]
        self._overlap_ms = int(overlap.total_seconds() * 1000)
        self._seen: dict[str, int] = {}  # revision id -> updated_at ms, within the window

    def forget(self) -> None:
        self._seen.clear()

    def _remember(self, revisions: list[Revision], checkpoint: Checkpoint) -> None:
        for revision in revisions:
            key = revision_key(revision)
            self._seen[key.revision_id] = key.updated_at_ms
        horizon = checkpoint.updated_at_ms - self._overlap_ms
        self._seen = {i: t for i, t in self._seen.items() if t >= horizon}

    async def after(self, checkpoint: Checkpoint, limit: int) -> list[Revision]:
        since = moment(checkpoint.updated_at_ms)
        found = await self._revisions.find(
            {
                "$or": [
                    {"updated_at": {"$gt": since}},
                    {"updated_at": since, "_id": {"$gt": checkpoint.revision_id}},
                ],
                "superseded": {"$ne": True},
            },
            _PROJECTION,
            sort=[("updated_at", ASCENDING), ("_id", ASCENDING)],
            limit=limit,
        ).to_list()
        self._remember(found, revision_key(found[-1]) if found else checkpoint)
        return found

    async def scan(self, batch_size: int) -> AsyncIterator[list[Revision]]:
        """One cursor over the whole collection, unsorted: FerretDB answers every filtered or
        sorted query with a full scan, so paging by re-querying would read the collection once
        per batch (hours at a million revisions)."""
        batch: list[Revision] = []
        async for revision in self._revisions.find(
            {"superseded": {"$ne": True}}, _PROJECTION, batch_size=batch_size
        ):
            batch.append(revision)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def resume_point(self, scan_started: datetime) -> Checkpoint:
        # The overlap before the start: a write that took its time before the scan began but
        # landed after the cursor passed its place is read again, as late_arrivals would.
        return Checkpoint(epoch_ms(scan_started) - self._overlap_ms, "")

    async def late_arrivals(self, checkpoint: Checkpoint) -> list[Revision]:
        if checkpoint.updated_at_ms == 0 or self._overlap_ms == 0:
            return []
        window = await self._revisions.find(
            {
                "updated_at": {
                    "$gte": moment(checkpoint.updated_at_ms - self._overlap_ms),
                    "$lte": moment(checkpoint.updated_at_ms),
                },
                "superseded": {"$ne": True},
            },
            _PROJECTION,
        ).to_list()
        late = [
            r
            for r in window
            if str(r["_id"]) not in self._seen and revision_key(r).key() <= checkpoint.key()
        ]
        self._remember(late, checkpoint)
        return sorted(late, key=lambda r: revision_key(r).key())
