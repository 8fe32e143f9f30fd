"""Which superseded revisions may be dropped, and from when: the commit that supersedes them
records their ids (`revision_stubs`), and the upkeep deletes each by key once a day has passed
(by then no writer can still be acting on the version before them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.product.catalog.tables import revision_stubs


async def record_in(conn: AsyncConnection, revision_ids: Iterable[str], now: datetime) -> None:
    rows = [{"revision_id": rid, "superseded_at": now} for rid in revision_ids]
    if rows:
        await conn.execute(mysql_insert(revision_stubs).prefix_with("IGNORE"), rows)


class RevisionStubs:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def due(self, superseded_before: datetime, limit: int) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(revision_stubs.c.revision_id)
                .where(revision_stubs.c.superseded_at < superseded_before)
                .order_by(revision_stubs.c.superseded_at)
                .limit(limit)
            )
            return [str(r.revision_id) for r in rows]

    async def forget(self, revision_ids: list[str]) -> None:
        if revision_ids:
            async with self._engine.begin() as conn:
                await conn.execute(
                    revision_stubs.delete().where(revision_stubs.c.revision_id.in_(revision_ids))
                )
