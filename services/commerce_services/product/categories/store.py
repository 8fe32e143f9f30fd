"""The category tree in MariaDB.

Guarantees: create and change (rename and/or move) are each one transaction, retried on
deadlock; a move rewrites the path and level of the whole subtree in one UPDATE inside that
transaction, after locking the subtree and the new parent, so readers see the tree before or
after, never half; a move under the category's own subtree is refused, also when two moves race.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.db.transactions import DUPLICATE_KEY, mysql_code, retry_transaction
from commerce_services.product.categories.model import (
    MAX_DEPTH,
    Category,
    CategoryNotFound,
    DuplicateName,
    ParentNotFound,
    TooDeep,
    ancestor_ids,
    check_move,
    child_path,
    clean_name,
    subtree_prefix,
)
from commerce_services.product.categories.tables import categories

_COLUMNS = (
    categories.c.id,
    categories.c.name,
    categories.c.parent_id,
    categories.c.level,
    categories.c.path,
)


def _category(row: Any) -> Category:  # a Row with the _COLUMNS
    return Category(row.id, row.name, row.parent_id, row.level, row.path)


@dataclass(frozen=True)
class Move:
    parent_id: int | None  # None: the category becomes a root


class CategoryStore:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    @retry_transaction
    async def create(self, name: str, parent_id: int | None) -> Category:
        name = clean_name(name)
        now = self._clock()
        try:
            async with self._engine.begin() as conn:
                parent = None
                if parent_id is not None:
                    parent = await self._get(conn, parent_id, lock=True)
                    if parent is None:
                        raise ParentNotFound(f"no category {parent_id}")
                    if parent.level >= MAX_DEPTH:
                        raise TooDeep(f"the tree would be deeper than {MAX_DEPTH} levels")
                level = 1 if parent is None else parent.level + 1
                created = await conn.execute(
                    insert(categories).values(
                        name=name,
                        parent_id=parent_id,
                        level=level,
                        path="",
                        created_at=now,
                        updated_at=now,
                    )
                )
                new_id = int(created.inserted_primary_key[0])  # type: ignore[index]
                path = child_path(parent.path if parent else None, new_id)
                await conn.execute(
                    update(categories).where(categories.c.id == new_id).values(path=path)
                )
        except IntegrityError as exc:
            if mysql_code(exc) == DUPLICATE_KEY:
                raise DuplicateName(f"a sibling is already named {name!r}") from exc
            raise
        return Category(new_id, name, parent_id, level, path)

    async def get(self, category_id: int) -> Category:
        async with self._engine.connect() as conn:
            found = await self._get(conn, category_id, lock=False)
        if found is None:
            raise CategoryNotFound(f"no category {category_id}")
        return found

    async def ancestors(self, category_id: int) -> list[Category]:
        """From the root down to the category itself: the breadcrumbs."""
        node = await self.get(category_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(*_COLUMNS)
                .where(categories.c.id.in_(ancestor_ids(node.path)))
                .order_by(categories.c.level)
            )
            return [_category(row) for row in rows]

    async def descendants(self, category_id: int, depth: int | None = None) -> list[Category]:
        """Everything below the category (itself excluded), at most `depth` levels down."""
        node = await self.get(category_id)
        query = select(*_COLUMNS).where(categories.c.path.like(subtree_prefix(node.path)))
        if depth is not None:
            query = query.where(categories.c.level <= node.level + depth)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.order_by(categories.c.level, categories.c.id))
            return [_category(row) for row in rows]

    async def subtree_ids(self, category_id: int) -> list[int]:
        """The category and all its descendants (for "include descendants" filters)."""
        node = await self.get(category_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(categories.c.id).where(
                    or_(
                        categories.c.id == node.id,
                        categories.c.path.like(subtree_prefix(node.path)),
                    )
                )
            )
            return [int(row.id) for row in rows]

    @retry_transaction
    async def change(
        self, category_id: int, *, name: str | None = None, move: Move | None = None
    ) -> Category:
        """Renames and/or moves in ONE transaction: if the move is refused, the rename is not
        applied either."""
        name = clean_name(name) if name is not None else None
        try:
            async with self._engine.begin() as conn:
                node = await self._get(conn, category_id, lock=True)
                if node is None:
                    raise CategoryNotFound(f"no category {category_id}")
                if name is not None:
                    await conn.execute(
                        update(categories)
                        .where(categories.c.id == category_id)
                        .values(name=name, updated_at=self._clock())
                    )
                if move is not None:
                    await self._move(conn, node, move.parent_id)
                changed = await self._get(conn, category_id, lock=False)
        except IntegrityError as exc:
            if mysql_code(exc) == DUPLICATE_KEY:
                raise DuplicateName("a sibling already has that name") from exc
            raise
        assert changed is not None
        return changed

    async def _move(self, conn: AsyncConnection, node: Category, new_parent_id: int | None) -> None:
        # Lock the subtree first, then the new parent: a racing move of the parent into this
        # subtree either waits for us or deadlocks and is retried, then sees our new paths and
        # is refused.
        deepest = (
            await conn.execute(
                select(func.coalesce(func.max(categories.c.level), node.level))
                .where(categories.c.path.like(subtree_prefix(node.path)))
                .with_for_update()
            )
        ).scalar_one()
        parent = None
        if new_parent_id is not None:
            parent = await self._get(conn, new_parent_id, lock=True)
            if parent is None:
                raise ParentNotFound(f"no category {new_parent_id}")
        check_move(node, parent, deepest - node.level)
        new_path = child_path(parent.path if parent else None, node.id)
        shift = (parent.level + 1 if parent else 1) - node.level
        # Every path in the subtree starts with the node's path: swap that prefix.
        await conn.execute(
            update(categories)
            .where(
                or_(categories.c.id == node.id, categories.c.path.like(subtree_prefix(node.path)))
            )
            .values(
                path=func.concat(
                    literal(new_path), func.substring(categories.c.path, len(node.path) + 1)
                ),
                level=categories.c.level + shift,
                updated_at=self._clock(),
            )
        )
        await conn.execute(
            update(categories).where(categories.c.id == node.id).values(parent_id=new_parent_id)
        )

    @staticmethod
    async def _get(conn: AsyncConnection, category_id: int, *, lock: bool) -> Category | None:
        query = select(*_COLUMNS).where(categories.c.id == category_id)
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).one_or_none()
        return None if row is None else _category(row)
