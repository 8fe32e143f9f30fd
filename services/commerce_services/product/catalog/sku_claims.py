"""SKU claims in MariaDB: a SKU belongs to one product. A write claims its SKUs (one row per
SKU, the primary key makes the claim unique) before it stores its revision; its commit frees
the product's claims on SKUs the committed version does not have. A claim left by a write that
failed or crashed is taken over when `claim_is_stale` says so, by deleting exactly the row
read (compare and delete) and claiming again. Every statement is a primary-key or indexed
one, and each is atomic: no claim is ever lost to a concurrent writer.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.product.catalog.model import SkuClaim
from commerce_services.product.catalog.tables import sku_claims


async def release_in(
    conn: AsyncConnection, product_id: str, version: int, kept: Collection[str]
) -> None:
    """Inside a commit of `version`: frees the product's claims made by writes up to it on
    SKUs it does not have (newer writes' claims are theirs to settle)."""
    query = sku_claims.delete().where(
        sku_claims.c.product_id == product_id, sku_claims.c.version <= version
    )
    if kept:
        query = query.where(sku_claims.c.sku.not_in(sorted(kept)))
    await conn.execute(query)


async def claim_in(
    conn: AsyncConnection, product_id: str, version: int, skus: Collection[str], now: datetime
) -> dict[str, SkuClaim]:
    """Inside the caller's transaction: claims each free SKU among `skus` for the write that
    makes the product `version`, in SKU order (two racing writers meet on one SKU, never in a
    cycle); returns the claim that holds each SKU afterwards, this write's or another's."""
    if not skus:
        return {}
    await conn.execute(
        mysql_insert(sku_claims).prefix_with("IGNORE"),
        [
            {"sku": sku, "product_id": product_id, "version": version, "claimed_at": now}
            for sku in sorted(skus)
        ],
    )
    rows = await conn.execute(select(sku_claims).where(sku_claims.c.sku.in_(sorted(skus))))
    return {
        str(r.sku): SkuClaim(str(r.sku), str(r.product_id), int(r.version), r.claimed_at)
        for r in rows
    }


class SkuClaims:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert(
        self, sku: str, product_id: str, version: int, now: datetime
    ) -> Literal["created"] | SkuClaim | None:
        """Claims a free SKU ("created"); else the claim that holds it (None if it was freed
        between the two statements)."""
        async with self._engine.begin() as conn:
            inserted = await conn.execute(
                mysql_insert(sku_claims)
                .values(sku=sku, product_id=product_id, version=version, claimed_at=now)
                .prefix_with("IGNORE")
            )
            if inserted.rowcount == 1:
                return "created"
            row = (
                await conn.execute(select(sku_claims).where(sku_claims.c.sku == sku))
            ).one_or_none()
        if row is None:
            return None
        return SkuClaim(str(row.sku), str(row.product_id), int(row.version), row.claimed_at)

    async def take_back(self, claim: SkuClaim) -> bool:
        """Deletes exactly `claim` if it is still there; False when it changed meanwhile."""
        async with self._engine.begin() as conn:
            deleted = await conn.execute(
                sku_claims.delete().where(
                    and_(
                        sku_claims.c.sku == claim.sku,
                        sku_claims.c.product_id == claim.product_id,
                        sku_claims.c.version == claim.version,
                        sku_claims.c.claimed_at == claim.claimed_at,
                    )
                )
            )
            return bool(deleted.rowcount)

    async def drop(self, product_id: str, version: int, skus: Collection[str]) -> None:
        """Frees the claims a write made on `skus` when it is known not to have landed."""
        if not skus:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                sku_claims.delete().where(
                    sku_claims.c.product_id == product_id,
                    sku_claims.c.version == version,
                    sku_claims.c.sku.in_(sorted(skus)),
                )
            )

    async def drop_all_but(self, product_id: str, version: int, kept: Collection[str]) -> None:
        """Frees every claim of the write that would have made `version` on SKUs outside
        `kept` (the SKUs of the revision that is stored)."""
        query = sku_claims.delete().where(
            sku_claims.c.product_id == product_id, sku_claims.c.version == version
        )
        if kept:
            query = query.where(sku_claims.c.sku.not_in(sorted(kept)))
        async with self._engine.begin() as conn:
            await conn.execute(query)
