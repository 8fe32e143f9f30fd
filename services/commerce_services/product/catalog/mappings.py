"""Which categories each catalog product is in, in MariaDB next to the category tree, so that
listing a category (with its whole subtree, by materialized-path prefix) is one indexed query.

Every write carries the product version it reflects and is applied only if that version is
newer than the one stored: writes may come late, twice, or from the repair sweep, and the
newest version always wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.db.transactions import retry_transaction
from commerce_services.product.catalog.model import CategoryMapping
from commerce_services.product.catalog.tables import product_categories, product_mappings
from commerce_services.product.categories.model import CategoryNotFound, subtree_prefix
from commerce_services.product.categories.tables import categories


class CategoryMappings:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    async def missing_categories(self, category_ids: Iterable[int]) -> list[int]:
        wanted = set(category_ids)
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(categories.c.id).where(categories.c.id.in_(wanted)))
            return sorted(wanted - {int(row.id) for row in rows})

    @retry_transaction
    async def write(self, mapping: CategoryMapping) -> bool:
        """Stores the mapping unless one of the same or a newer version is there; True if it
        was stored."""
        async with self._engine.begin() as conn:
            # The row must exist to be locked; a no-op upsert creates it at version 0.
            await conn.execute(
                mysql_insert(product_mappings)
                .values(
                    product_id=mapping.product_id,
                    version=0,
                    deleted=False,
                    updated_at=self._clock(),
                )
                .on_duplicate_key_update(product_id=product_mappings.c.product_id)
            )
            stored = (
                await conn.execute(
                    select(product_mappings.c.version)
                    .where(product_mappings.c.product_id == mapping.product_id)
                    .with_for_update()
                )
            ).scalar_one()
            if stored >= mapping.version:
                return False
            await conn.execute(
                update(product_mappings)
                .where(product_mappings.c.product_id == mapping.product_id)
                .values(version=mapping.version, deleted=mapping.deleted, updated_at=self._clock())
            )
            await conn.execute(
                product_categories.delete().where(
                    product_categories.c.product_id == mapping.product_id
                )
            )
            if mapping.category_ids:
                await conn.execute(
                    insert(product_categories),
                    [
                        {
                            "product_id": mapping.product_id,
                            "category_id": category_id,
                            "is_primary": category_id == mapping.primary_category_id,
                        }
                        for category_id in mapping.category_ids
                    ],
                )
        return True

    async def product_ids(
        self, category_id: int, include_descendants: bool, after: str | None, limit: int
    ) -> list[str]:
        """Up to `limit` product ids in the category (and its subtree), in id order after
        `after`: keyset paging, so every product is on exactly one page however deep."""
        async with self._engine.connect() as conn:
            path = (
                await conn.execute(select(categories.c.path).where(categories.c.id == category_id))
            ).scalar_one_or_none()
            if path is None:
                raise CategoryNotFound(f"no category {category_id}")
            query = select(product_categories.c.product_id)
            if include_descendants:
                # A product in several categories of the subtree is listed once.
                query = (
                    query.distinct()
                    .join(categories, categories.c.id == product_categories.c.category_id)
                    .where(
                        or_(
                            categories.c.id == category_id,
                            categories.c.path.like(subtree_prefix(path)),
                        )
                    )
                )
            else:
                query = query.where(product_categories.c.category_id == category_id)
            if after is not None:
                query = query.where(product_categories.c.product_id > after)
            rows = await conn.execute(query.order_by(product_categories.c.product_id).limit(limit))
            return [str(row.product_id) for row in rows]
