"""Writes between storing their revision in MongoDB and committing it in MariaDB.

A write records itself here before it stores its revision; its commit deletes the record in
its own transaction. A record that outlives a short grace is a write that stopped half-way (a
crash, a MariaDB outage): the repair sweep finds it through the index on `started_at` and
commits the revision by key, or, when no revision was stored, forgets it and frees its
claims. So the sweep reads nothing but indexed rows and keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.product.catalog.tables import pending_writes


@dataclass(frozen=True)
class PendingWrite:
    product_id: str
    version: int
    started_at: datetime


async def forget_in(conn: AsyncConnection, product_id: str, version: int) -> None:
    """Inside a commit: the write that made the product `version` is done. By its whole key,
    not a range of the product's versions: a range delete locks the gap up to the next record,
    which in this small table is another product's, and holds every write whose record falls
    in it until this commit ends. Records of older writes left behind (a crash) are the repair
    sweep's; they do not count once an equal or newer version is committed."""
    await conn.execute(
        pending_writes.delete().where(
            pending_writes.c.product_id == product_id, pending_writes.c.version == version
        )
    )


async def start_in(conn: AsyncConnection, product_id: str, version: int, now: datetime) -> None:
    """Inside the caller's transaction: the write that makes the product `version` begins. Two
    writers racing for one version share the record; one of them stores the revision."""
    await conn.execute(
        mysql_insert(pending_writes)
        .values(product_id=product_id, version=version, started_at=now)
        .on_duplicate_key_update(started_at=now)
    )


class PendingWrites:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def due(self, started_before: datetime, limit: int) -> list[PendingWrite]:
        """The oldest writes started before `started_before` (ix_pending_writes_started)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(pending_writes)
                .where(pending_writes.c.started_at < started_before)
                .order_by(pending_writes.c.started_at)
                .limit(limit)
            )
            return [PendingWrite(str(r.product_id), int(r.version), r.started_at) for r in rows]

    async def forget(self, product_id: str, version: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                pending_writes.delete().where(
                    pending_writes.c.product_id == product_id,
                    pending_writes.c.version == version,
                )
            )
