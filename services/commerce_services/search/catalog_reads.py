"""What the search needs from the product service's MariaDB besides the revisions: the category
tree (ancestors, breadcrumb names, subtrees), stock per SKU and which SKUs' stock changed, the
committed version of products (heads) with their revisions' copies, and for the degraded search
the products by title words, category and title prefix. Read-only, and every read an indexed one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog import committed_documents
from commerce_services.product.catalog.tables import product_categories, product_mappings
from commerce_services.product.categories.model import ancestor_ids, subtree_prefix
from commerce_services.product.categories.tables import categories
from commerce_services.product.inventory.tables import inventory
from commerce_services.search.documents import CategoryInfo

# A product's committed version and whether it is deleted.
Head = tuple[int, bool]


@dataclass(frozen=True)
class Copy:
    """A product's committed version and the copy of its revision (committed_documents.py)."""

    version: int
    deleted: bool
    revision: dict[str, Any] | None


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

    async def heads(self, product_ids: Iterable[str]) -> dict[str, Head]:
        """The committed version of each product that has one (primary key)."""
        rows = await self._mappings(product_ids)
        return {str(r.product_id): (int(r.version), bool(r.deleted)) for r in rows}

    async def copies(self, product_ids: Iterable[str]) -> dict[str, Copy]:
        """Each product's committed version, whether it is deleted, and the copy of that
        revision (None: deleted, or committed before the copies), by primary key."""
        rows = await self._mappings(product_ids, product_mappings.c.document)
        return {
            str(r.product_id): Copy(
                int(r.version),
                bool(r.deleted),
                None if r.document is None else committed_documents.decode(r.document),
            )
            for r in rows
        }

    async def _mappings(self, product_ids: Iterable[str], *more: Any) -> list[Any]:
        """The heads of `product_ids` (primary key), with the columns `more` too."""
        wanted = sorted(set(product_ids))
        if not wanted:
            return []
        async with self._engine.connect() as conn:
            found = await conn.execute(
                select(
                    product_mappings.c.product_id,
                    product_mappings.c.version,
                    product_mappings.c.deleted,
                    *more,
                ).where(product_mappings.c.product_id.in_(wanted))
            )
            return list(found)

    async def candidates(
        self, words: list[str], category_ids: list[int] | None, after: str, limit: int
    ) -> list[tuple[str, int]]:
        """Up to `limit` live products (id, committed version) after `after` in id order
        whose title has a word starting with each of `words` (the FULLTEXT index) and, when
        `category_ids` is given, that are in one of them (one index range per category)."""
        if category_ids is not None and not category_ids:
            return []
        if category_ids is None:
            query = (
                select(product_mappings.c.product_id, product_mappings.c.version)
                .where(
                    product_mappings.c.deleted.is_(False),
                    product_mappings.c.product_id > after,
                )
                .order_by(product_mappings.c.product_id)
                .limit(limit)
            )
        else:
            ranges = [_category_range(c, after, limit) for c in category_ids]
            listed = (union_all(*ranges) if len(ranges) > 1 else ranges[0]).subquery()
            query = (
                select(product_mappings.c.product_id, product_mappings.c.version)
                .distinct()
                .join(listed, listed.c.product_id == product_mappings.c.product_id)
                .order_by(product_mappings.c.product_id)
                .limit(limit)
            )
        if words:
            # Words are runs of letters and digits: no full-text operator can be among them.
            query = query.where(
                text("MATCH (product_mappings.title) AGAINST (:words IN BOOLEAN MODE)").bindparams(
                    words=" ".join(f"+{w}*" for w in words)
                )
            )
        async with self._engine.connect() as conn:
            return [(str(r.product_id), int(r.version)) for r in await conn.execute(query)]

    async def titles_starting(self, prefix: str, limit: int) -> list[str]:
        """Titles of live products that start with `prefix`, in order, case-insensitive
        (ix_product_mappings_title)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(product_mappings.c.title)
                .distinct()
                .where(
                    product_mappings.c.title.like(pattern, escape="\\"),
                    product_mappings.c.deleted.is_(False),
                )
                .order_by(product_mappings.c.title)
                .limit(limit)
            )
            return [str(r.title) for r in rows]


def _category_range(category_id: int, after: str, limit: int) -> Select[tuple[str]]:
    return (
        select(product_categories.c.product_id)
        .where(
            product_categories.c.category_id == category_id,
            product_categories.c.product_id > after,
        )
        .order_by(product_categories.c.product_id)
        .limit(limit)
    )
