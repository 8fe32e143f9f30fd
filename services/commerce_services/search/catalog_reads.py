"""What an index document needs from the product service's MariaDB besides the revision: the
category tree (ancestors, breadcrumb names, subtrees), stock per SKU and which SKUs' stock
changed. Read-only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.categories.model import ancestor_ids, subtree_prefix
from commerce_services.product.categories.tables import categories
from commerce_services.product.inventory.tables import inventory
from commerce_services.search.documents import CategoryInfo


class CatalogReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def categories_with_ancestors(
        self, category_ids: Iterable[int]
    ) -> dict[int, CategoryInfo]:
        """The categories and every ancestor of theirs (for breadcrumb names); two queries
        whatever the depth, thanks to the materialized path."""
        wanted = set(category_ids)
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(categories.c.id, categories.c.name, categories.c.path).where(
                        categories.c.id.in_(wanted)
                    )
                )
            ).all()
            found = {
                int(r.id): CategoryInfo(int(r.id), r.name, tuple(ancestor_ids(r.path)))
                for r in rows
            }
            missing = {a for info in found.values() for a in info.path} - set(found)
            if missing:
                rows = (
                    await conn.execute(
                        select(categories.c.id, categories.c.name, categories.c.path).where(
                            categories.c.id.in_(missing)
                        )
                    )
                ).all()
                found |= {
                    int(r.id): CategoryInfo(int(r.id), r.name, tuple(ancestor_ids(r.path)))
                    for r in rows
                }
        return found

    async def subtree(self, category_id: int) -> list[int]:
        """The category and all its descendants; empty if there is no such category."""
        async with self._engine.connect() as conn:
            path = (
                await conn.execute(select(categories.c.path).where(categories.c.id == category_id))
            ).scalar_one_or_none()
            if path is None:
                return []
            rows = await conn.execute(
                select(categories.c.id).where(
                    or_(
                        categories.c.id == category_id, categories.c.path.like(subtree_prefix(path))
                    )
                )
            )
            return [int(r.id) for r in rows]

    async def sellable(self, skus: Iterable[str]) -> dict[str, int]:
        """Units in stock and not reserved, per SKU that has an inventory row."""
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(inventory.c.sku, inventory.c.stock - inventory.c.reserved).where(
                    inventory.c.sku.in_(wanted)
                )
            )
            return {str(sku): int(units) for sku, units in rows}

    async def stock_changes(
        self, after: datetime, after_sku: str, limit: int
    ) -> list[tuple[datetime, str]]:
        """Up to `limit` inventory rows written after (`after`, `after_sku`), in (updated_at,
        sku) order: stock set, reserved or released (ix_inventory_changes)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(inventory.c.updated_at, inventory.c.sku)
                .where(
                    or_(
                        inventory.c.updated_at > after,
                        and_(inventory.c.updated_at == after, inventory.c.sku > after_sku),
                    )
                )
                .order_by(inventory.c.updated_at, inventory.c.sku)
                .limit(limit)
            )
            return [(r.updated_at, str(r.sku)) for r in rows]
