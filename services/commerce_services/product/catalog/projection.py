"""The catalog's committed state in the product service's MariaDB: each product's latest
committed version (the head every read starts from), its listing rows, its SKUs' prices, and
the change event that tells the search index, all written by one transaction per version.

A version is committed after its revision is stored in MongoDB; a commit is applied only if
its version is newer than the one stored: commits may come late, twice, or from the repair
sweep, and the newest version always wins. The transaction also frees the claims the product
no longer needs, closes the product's pending writes up to the version, and schedules the
revisions it supersedes for dropping. Reading a head and listing a category are indexed
queries; a whole subtree is listed through windows of product ids (id_windows.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    String,
    aggregate_order_by,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.db.transactions import retry_transaction
from commerce_services.events.outbox import Outbox
from commerce_services.product.catalog import (
    committed_documents,
    id_windows,
    pending_writes,
    revision_stubs,
    sku_claims,
    sku_prices,
)
from commerce_services.product.catalog.events import ProductChanged
from commerce_services.product.catalog.model import Price
from commerce_services.product.catalog.tables import outbox, product_categories, product_mappings
from commerce_services.product.catalog.tables import pending_writes as pending_writes_table
from commerce_services.product.catalog.tables import sku_claims as claims_table
from commerce_services.product.categories.model import CategoryNotFound
from commerce_services.product.categories.tables import categories


@dataclass(frozen=True)
class Head:
    """A product's latest committed version."""

    version: int
    deleted: bool


@dataclass(frozen=True)
class Committed:
    """A product's committed version with its copy (None: committed before the copies), and
    whether a write of a newer version may be in flight or left to the repair sweep."""

    version: int
    deleted: bool
    document: dict[str, Any] | None
    newer_pending: bool


@dataclass(frozen=True)
class Listed:
    """A product on a category page: its committed version and, if there is one, its copy."""

    product_id: str
    version: int
    document: dict[str, Any] | None


@dataclass(frozen=True)
class Commit:
    """What the commit of one revision writes."""

    product_id: str
    version: int
    deleted: bool
    updated_at: datetime
    title: str | None
    category_ids: tuple[int, ...]
    primary_category_id: int | None
    prices: tuple[tuple[str, Price], ...]
    document: str | None  # the revision's copy (committed_documents.py); None for a tombstone
    # The version whose listing rows (and prices) this one keeps as they are, or None: when it
    # is the stored version at the commit, those rows are already this version's.
    same_listing_as: int | None = None
    same_prices_as: int | None = None

    @property
    def skus(self) -> frozenset[str]:
        return frozenset(sku for sku, _ in self.prices)

    @classmethod
    def of(cls, revision: Mapping[str, Any], read: Mapping[str, Any] | None = None) -> Commit:
        """From a revision as the catalog stores it (a tombstone commits no rows). `read`: the
        revision its writer read, whose listing and prices it may keep."""
        if revision["deleted"]:
            return cls(
                revision["product_id"], revision["version"], True, revision["updated_at"],
                None, (), None, (), None,
            )  # fmt: skip
        listing, prices = _listing(revision), _prices(revision)
        same_listing_as = same_prices_as = None
        if read is not None and not read["deleted"]:
            if _listing(read) == listing:
                same_listing_as = int(read["version"])
            if dict(_prices(read)) == dict(prices):
                same_prices_as = int(read["version"])
        return cls(
            revision["product_id"],
            revision["version"],
            False,
            revision["updated_at"],
            revision["title"],
            tuple(revision["category_ids"]),
            revision["primary_category_id"],
            prices,
            committed_documents.encode(revision),
            same_listing_as=same_listing_as,
            same_prices_as=same_prices_as,
        )


def _listing(revision: Mapping[str, Any]) -> tuple[frozenset[int], int]:
    return frozenset(revision["category_ids"]), int(revision["primary_category_id"])


def _prices(revision: Mapping[str, Any]) -> tuple[tuple[str, Price], ...]:
    return tuple(
        (v["sku"], Price(int(v["price"]["amount_minor"]), v["price"]["currency"]))
        for v in revision["variants"]
    )


# The two hot reads, built once: each request only binds its values.
_COMMITTED = select(
    product_mappings.c.version,
    product_mappings.c.deleted,
    product_mappings.c.document,
    select(pending_writes_table.c.version)
    .where(
        pending_writes_table.c.product_id == bindparam("product_id"),
        pending_writes_table.c.version > product_mappings.c.version,
    )
    .exists()
    .label("newer_pending"),
).where(product_mappings.c.product_id == bindparam("product_id"))

# A leaf page: one index range of the category's listing rows (ids sort after ""), joined with
# the heads and their copies.
_LEAF_PAGE = (
    select(product_categories.c.product_id, product_mappings.c.version, product_mappings.c.document)
    .join(product_mappings, product_mappings.c.product_id == product_categories.c.product_id)
    .where(
        product_categories.c.category_id == bindparam("category_id"),
        product_categories.c.product_id > bindparam("after"),
    )
    .order_by(product_categories.c.product_id)
    .limit(bindparam("limit"))
)


# The category and its descendants, by materialized-path prefix (ix_categories_path); empty
# when there is no such category.
_ROOT = categories.alias("root")
_IN_SUBTREE = or_(
    categories.c.path == _ROOT.c.path,
    categories.c.path.like(func.concat(_ROOT.c.path, "/%")),
)
_SUBTREE = (
    select(categories.c.id)
    .select_from(_ROOT)
    .join(categories, _IN_SUBTREE)
    .where(_ROOT.c.id == bindparam("category_id"))
    .order_by(categories.c.id)
)
# The same ids as a fingerprint (`subtree_fingerprint`), read by a page's own statement: a
# subtree remembered from an earlier page is checked against the tree that page read.
_SUBTREE_FINGERPRINT = (
    select(
        func.md5(
            aggregate_order_by(
                func.aggregate_strings(cast(categories.c.id, String), ","), categories.c.id
            )
        )
    )
    .select_from(_ROOT)
    .join(categories, _IN_SUBTREE)
    .where(_ROOT.c.id == bindparam("category_id"))
    .scalar_subquery()
)

# A subtree's products in the id window (after, upper), each once however many of the subtree's
# categories list it, with how many the window holds: the first `limit` of them, with their
# heads and copies.
_IN_WINDOW = (
    select(product_categories.c.product_id)
    .where(
        product_categories.c.category_id.in_(bindparam("categories", expanding=True)),
        product_categories.c.product_id > bindparam("after"),
        product_categories.c.product_id < bindparam("upper"),
    )
    .distinct()
    .subquery()
)
_FIRST_IN_WINDOW = (
    select(_IN_WINDOW.c.product_id, func.count().over().label("in_window"))
    .order_by(_IN_WINDOW.c.product_id)
    .limit(bindparam("limit"))
    .subquery()
)
_WINDOW_PAGE = (
    select(
        _FIRST_IN_WINDOW.c.product_id,
        _FIRST_IN_WINDOW.c.in_window,
        product_mappings.c.version,
        product_mappings.c.document,
        _SUBTREE_FINGERPRINT.label("subtree"),
    )
    .join(product_mappings, product_mappings.c.product_id == _FIRST_IN_WINDOW.c.product_id)
    .order_by(_FIRST_IN_WINDOW.c.product_id)
)
# Subtrees whose ids and spacing are remembered; past that many (a tree of thousands of
# categories all browsed) the one learnt longest ago goes.
_REMEMBERED_SUBTREES = 4096
# Reads of a page whose remembered subtree turned out changed, the last with the ids just read.
_SUBTREE_ATTEMPTS = 3
_T = TypeVar("_T")


class CatalogProjection:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], datetime],
        reads: AsyncEngine | None = None,
    ) -> None:
        """`reads`: the engine of the reads below that need no transaction (db/engine.py's
        `reading_engine`); the writes' engine when not given."""
        self.engine = engine
        self.reads = reads or engine
        self._clock = clock
        self._outbox = Outbox(outbox)
        self._spacings: dict[int, int] = {}  # subtree root -> ids per product (id_windows.py)
        self._subtrees: dict[int, tuple[int, ...]] = {}  # subtree root -> its categories

    # ---- reads ------------------------------------------------------------------------------

    async def missing_categories(self, category_ids: Iterable[int]) -> list[int]:
        wanted = set(category_ids)
        async with self.reads.connect() as conn:
            rows = await conn.execute(select(categories.c.id).where(categories.c.id.in_(wanted)))
            return sorted(wanted - {int(row.id) for row in rows})

    async def head(self, product_id: str) -> Head | None:
        async with self.reads.connect() as conn:
            row = (
                await conn.execute(
                    select(product_mappings.c.version, product_mappings.c.deleted).where(
                        product_mappings.c.product_id == product_id
                    )
                )
            ).one_or_none()
        return None if row is None else Head(int(row.version), bool(row.deleted))

    async def committed(self, product_id: str) -> Committed | None:
        """The head with its copy and whether a newer write is pending, in one snapshot: one
        primary-key read and one primary-key range."""
        async with self.reads.connect() as conn:
            row = (await conn.execute(_COMMITTED, {"product_id": product_id})).one_or_none()
        if row is None:
            return None
        document = None if row.document is None else committed_documents.decode(row.document)
        return Committed(int(row.version), bool(row.deleted), document, bool(row.newer_pending))

    async def page(
        self, category_id: int, include_descendants: bool, after: str | None, limit: int
    ) -> list[Listed]:
        """Up to `limit` products in the category (and its subtree), in id order after
        `after`: keyset paging, so every product is on exactly one page however deep. The
        copies come in the same query."""
        async with self.reads.connect() as conn:
            if include_descendants:
                subtree = self._subtrees.get(category_id) or await self._subtree(conn, category_id)
                if len(subtree) > 1:
                    return await self._subtree_page(conn, category_id, subtree, after or "", limit)
            page = await _leaf_page(conn, category_id, after or "", limit)
            if not page and not include_descendants:
                # Looked up only now: the category may be absent, or nothing listed there.
                await _category_path(conn, category_id)
            return page

    async def _subtree(self, conn: AsyncConnection, category_id: int) -> tuple[int, ...]:
        """The category and its descendants, in id order; remembered when there are several."""
        subtree = tuple(
            int(r.id) for r in await conn.execute(_SUBTREE, {"category_id": category_id})
        )
        if not subtree:
            self._subtrees.pop(category_id, None)
            raise CategoryNotFound(f"no category {category_id}")
        if len(subtree) > 1:
            _remember(self._subtrees, category_id, subtree)
        else:
            self._subtrees.pop(category_id, None)
        return subtree

    async def _subtree_page(
        self,
        conn: AsyncConnection,
        category_id: int,
        subtree: tuple[int, ...],
        after: str,
        limit: int,
    ) -> list[Listed]:
        """A page of a subtree read through id windows (id_windows.py): one short index range
        per category, widened until it holds the page or reaches the end of the ids. The
        subtree may be remembered from an earlier page: each window's statement also reads the
        subtree's fingerprint, and a page read with ids the tree no longer has is read again
        with the tree's ids (a page that came back empty carries none: the tree is read)."""
        for attempt in range(_SUBTREE_ATTEMPTS):
            last = attempt == _SUBTREE_ATTEMPTS - 1  # ids just read: taken as they are
            try:
                rows, spacing = await id_windows.first_after(
                    _window_reader(conn, category_id, subtree, after, limit, checked=not last),
                    after,
                    limit,
                    self._spacings.get(category_id),
                )
            except _SubtreeChanged:
                fresh = await self._subtree(conn, category_id)
            else:
                if rows or last:
                    break
                fresh = await self._subtree(conn, category_id)
                if fresh == subtree:
                    break
            if len(fresh) == 1:
                return await _leaf_page(conn, category_id, after, limit)
            subtree = fresh
        if spacing is not None:
            _remember(self._spacings, category_id, spacing)
        return [_listed(r) for r in rows]

    async def untitled(self, after: str, limit: int) -> list[tuple[str, int]]:
        """Live products committed before titles and prices were projected (migration 0006),
        in id order after `after` (ix_product_mappings_title holds the NULLs)."""
        async with self.reads.connect() as conn:
            rows = await conn.execute(
                select(product_mappings.c.product_id, product_mappings.c.version)
                .where(
                    product_mappings.c.title.is_(None),
                    product_mappings.c.deleted.is_(False),
                    product_mappings.c.product_id > after,
                )
                .order_by(product_mappings.c.product_id)
                .limit(limit)
            )
            return [(str(r.product_id), int(r.version)) for r in rows]

    async def uncopied(self, after: str, limit: int) -> tuple[list[tuple[str, int]], str | None]:
        """Among the next `limit` products by id after `after` (a primary-key range), the live
        ones without a copy (committed before migration 0007), and the id to go on after (None:
        the end)."""
        async with self.reads.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        product_mappings.c.product_id,
                        product_mappings.c.version,
                        product_mappings.c.deleted,
                        product_mappings.c.document.is_(None).label("uncopied"),
                    )
                    .where(product_mappings.c.product_id > after)
                    .order_by(product_mappings.c.product_id)
                    .limit(limit)
                )
            ).all()
        missing = [
            (str(r.product_id), int(r.version)) for r in rows if r.uncopied and not r.deleted
        ]
        return missing, (str(rows[-1].product_id) if len(rows) == limit else None)

    async def copy(self, change: Commit) -> bool:
        """The copy of `change` if it is still the product's committed version; True if
        written."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(product_mappings)
                .where(
                    product_mappings.c.product_id == change.product_id,
                    product_mappings.c.version == change.version,
                    product_mappings.c.deleted.is_(False),
                )
                .values(document=change.document)
            )
        return bool(done.rowcount)

    # ---- writes -----------------------------------------------------------------------------

    @retry_transaction
    async def commit(self, change: Commit) -> int | None:
        """Makes `change` the product's committed version unless it or a newer one is:
        returns the version it superseded (0 for none), or None when it changed nothing."""
        now = self._clock()
        async with self.engine.begin() as conn:
            stored = await self._locked_version(conn, change.product_id, now)
            if stored >= change.version:
                await pending_writes.forget_in(conn, change.product_id, change.version)
                return None
            await conn.execute(
                update(product_mappings)
                .where(product_mappings.c.product_id == change.product_id)
                .values(
                    version=change.version,
                    deleted=change.deleted,
                    updated_at=now,
                    title=change.title,
                    document=change.document,
                )
            )
            if stored != change.same_listing_as:
                await self._list_in(conn, change)
            if stored != change.same_prices_as:
                await sku_prices.replace_in(conn, change.product_id, change.version, change.prices)
            await sku_claims.release_in(conn, change.product_id, change.version, change.skus)
            await pending_writes.forget_in(conn, change.product_id, change.version)
            superseded = range(max(stored, 1), change.version)
            await revision_stubs.record_in(
                conn, [f"{change.product_id}:{k}" for k in superseded], now
            )
            event = ProductChanged(
                change.product_id, change.version, change.deleted, change.updated_at
            )
            await self._outbox.append(conn, event.outbox_event(), now)
        return stored

    @retry_transaction
    async def complete(self, change: Commit) -> bool:
        """For a product committed before migration 0006: its title, prices and SKU claims,
        if `change` is still its committed version. True when written."""
        now = self._clock()
        async with self.engine.begin() as conn:
            stored = await self._locked_version(conn, change.product_id, now)
            if stored != change.version or change.deleted:
                return False
            await conn.execute(
                update(product_mappings)
                .where(product_mappings.c.product_id == change.product_id)
                .values(title=change.title, document=change.document)
            )
            await sku_prices.replace_in(conn, change.product_id, change.version, change.prices)
            if change.prices:
                await conn.execute(
                    mysql_insert(claims_table).prefix_with("IGNORE"),
                    [
                        {
                            "sku": sku,
                            "product_id": change.product_id,
                            "version": change.version,
                            "claimed_at": now,
                        }
                        for sku, _ in change.prices
                    ],
                )
        return True

    async def _list_in(self, conn: AsyncConnection, change: Commit) -> None:
        """The product's listing rows become exactly the change's categories."""
        await conn.execute(
            product_categories.delete().where(product_categories.c.product_id == change.product_id)
        )
        if change.category_ids:
            await conn.execute(
                insert(product_categories),
                [
                    {
                        "product_id": change.product_id,
                        "category_id": category_id,
                        "is_primary": category_id == change.primary_category_id,
                    }
                    for category_id in change.category_ids
                ],
            )

    async def _locked_version(self, conn: AsyncConnection, product_id: str, now: datetime) -> int:
        """The stored version (0 for none), with the product's row locked till the commit: a
        no-op upsert creates a missing row at version 0, and MariaDB returns the row it found
        (INSERT ... RETURNING), read under the lock the upsert took: one round trip."""
        return int(
            (
                await conn.execute(
                    mysql_insert(product_mappings)
                    .values(product_id=product_id, version=0, deleted=False, updated_at=now)
                    .on_duplicate_key_update(product_id=product_mappings.c.product_id)
                    .returning(product_mappings.c.version)
                )
            ).scalar_one()
        )


async def _leaf_page(
    conn: AsyncConnection, category_id: int, after: str, limit: int
) -> list[Listed]:
    """One index range, one row per product: no merge."""
    rows = await conn.execute(
        _LEAF_PAGE, {"category_id": category_id, "after": after, "limit": limit}
    )
    return [_listed(r) for r in rows]


def _window_reader(
    conn: AsyncConnection,
    category_id: int,
    subtree: tuple[int, ...],
    after: str,
    limit: int,
    *,
    checked: bool,
) -> id_windows.ReadWindow[Any]:
    """Reads a window of the subtree `category_id` with these ids; `checked`: raises
    _SubtreeChanged when the tree the statement read has other ids."""
    fingerprint = _fingerprint(subtree)

    async def read(upper: str) -> tuple[Sequence[Any], int]:
        values = {
            "categories": subtree,
            "category_id": category_id,
            "after": after,
            "upper": upper,
            "limit": limit,
        }
        rows = (await conn.execute(_WINDOW_PAGE, values)).all()
        if checked and rows and rows[0].subtree != fingerprint:
            raise _SubtreeChanged
        return rows, int(rows[0].in_window) if rows else 0

    return read


class _SubtreeChanged(Exception):
    """A page was read with ids its subtree no longer has."""


def _fingerprint(subtree: tuple[int, ...]) -> str:
    """What _SUBTREE_FINGERPRINT reads for these ids (in id order)."""
    return hashlib.md5(",".join(map(str, subtree)).encode(), usedforsecurity=False).hexdigest()


def _remember(memory: dict[int, _T], key: int, value: _T) -> None:
    """Remembers `value` as the newest; past _REMEMBERED_SUBTREES the oldest goes."""
    memory.pop(key, None)
    if len(memory) >= _REMEMBERED_SUBTREES:
        del memory[next(iter(memory))]
    memory[key] = value


async def _category_path(conn: AsyncConnection, category_id: int) -> str:
    path = (
        await conn.execute(select(categories.c.path).where(categories.c.id == category_id))
    ).scalar_one_or_none()
    if path is None:
        raise CategoryNotFound(f"no category {category_id}")
    return str(path)


def _listed(row: Any) -> Listed:
    document = None if row.document is None else committed_documents.decode(row.document)
    return Listed(str(row.product_id), int(row.version), document)
