"""The catalog's revisions as the sync and the degraded search read them from MongoDB: by key
(`<product_id>:<version>`, a bare `_id` equality, which FerretDB and MongoDB answer from the
`_id` index), or, for loading a whole index, in one scan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from commerce_services.search.documents import Revision

# What the index documents need; images and bookkeeping fields stay behind.
_PROJECTION = {"images": 0, "mapping_pending": 0}


class CatalogRevisions:
    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], database: str, concurrency: int = 16
    ) -> None:
        self._revisions: AsyncCollection[dict[str, Any]] = client[database]["product_revisions"]
        self._concurrency = asyncio.Semaphore(concurrency)

    async def by_keys(self, revision_ids: Sequence[str]) -> list[Revision | None]:
        """Each revision by its `_id` (None: not stored, or dropped), side by side: `_id $in`
        would make FerretDB read the whole collection."""

        async def one(revision_id: str) -> Revision | None:
            async with self._concurrency:
                return await self._revisions.find_one({"_id": revision_id}, _PROJECTION)

        return list(await asyncio.gather(*(one(r) for r in revision_ids)))

    async def scan(self, batch_size: int) -> AsyncIterator[list[Revision]]:
        """Every revision that is not a stub, in batches, in no particular order: one cursor
        over the whole collection (loading an index is the one place a scan is fine)."""
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
