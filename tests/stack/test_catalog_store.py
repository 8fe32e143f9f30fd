"""The catalog store against the real FerretDB and MariaDB: versions, If-Match, tombstones and
the product_changed event of every committed version, SKUs unique across products (claimed in
MariaDB: FerretDB enforces no unique multikey index), category listings paged by keyset, prices
from the projection, old revisions dropped by key, and the repair of a write that stopped
between the MongoDB revision and its MariaDB commit."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Collection
from dataclasses import replace
from datetime import timedelta

import pytest
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.events import PRODUCT_CHANGED, ProductChanged
from commerce_services.product.catalog.model import (
    CLAIM_LEASE,
    DuplicateSku,
    InvalidProduct,
    Price,
    ProductContent,
    ProductNotFound,
    UnknownCategory,
    Variant,
    VersionConflict,
)
from commerce_services.product.catalog.pending_writes import forget_in, start_in
from commerce_services.product.catalog.projection import CatalogProjection, Commit, Head
from commerce_services.product.catalog.store import (
    REPAIR_GRACE,
    CatalogStore,
    Document,
    revision_document,
)
from commerce_services.product.catalog.tables import (
    outbox,
    pending_writes,
    product_categories,
    product_mappings,
    sku_claims,
    sku_prices,
)
from commerce_services.product.categories.model import CategoryNotFound
from commerce_services.product.categories.store import CategoryStore, Move
from commerce_services.runtime.clock import utc_now
from tests.stack.conftest import Clock


def _content(
    categories: tuple[int, ...], *skus: str, title: str = "Shirt", price: int = 1999
) -> ProductContent:
    return ProductContent(
        title=title,
        description="",
        brand=None,
        attributes={"material": "cotton"},
        variants=tuple(Variant(sku, Price(price, "EUR"), {"size": "M"}) for sku in skus),
        images=(),
        category_ids=categories,
        primary_category_id=categories[0],
    )


def _listed(product_id: str, version: int, categories: tuple[int, ...], clock: Clock) -> Commit:
    """A commit of a live version listed in `categories` (the first primary), with no SKUs."""
    return Commit(product_id, version, False, clock.now, "P", categories, categories[0], (), None)


@pytest.fixture
def tree(engine: AsyncEngine) -> CategoryStore:
    return CategoryStore(engine, utc_now)


@pytest.fixture
async def category(tree: CategoryStore, unique: str) -> int:
    return (await tree.create(f"Catalog {unique} {uuid.uuid4().hex[:6]}", None)).id


async def _ids(
    catalog: CatalogStore, category_id: int, descendants: bool = False, limit: int = 100
) -> list[str]:
    """Every product id of a listing, page by page, in listing order."""
    ids: list[str] = []
    after = None
    while True:
        page = await catalog.list_category(category_id, descendants, after, limit)
        ids += [p.product_id for p in page.products]
        if page.next_after is None:
            return ids
        after = page.next_after


async def test_create_read_replace_bump_the_version(
    catalog: CatalogStore, category: int, clock: Clock, unique: str
) -> None:
    created = await catalog.create(_content((category,), f"A-{unique}"))
    assert created.version == 1
    assert created.updated_at.microsecond % 1000 == 0  # what BSON keeps: milliseconds
    assert await catalog.get(created.product_id) == created

    clock.now += timedelta(seconds=2)
    changed = replace(
        _content((category,), f"A-{unique}", f"B-{unique}", price=2500),
        brand="Acme",
        images=("https://img.example.com/a.jpg",),
    )
    second = await catalog.replace(created.product_id, changed)
    assert (second.version, second.created_at) == (2, created.created_at)
    assert second.updated_at > created.updated_at
    stored = await catalog.get(created.product_id)
    assert stored == second
    assert stored.content.variants[1].price == Price(2500, "EUR")
    assert stored.content.brand == "Acme"

    third = await catalog.replace(created.product_id, _content((category,), f"A-{unique}"), 2)
    assert third.version == 3
    assert len((await catalog.get(created.product_id)).content.variants) == 1


async def test_money_is_stored_as_integer_minor_units(
    catalog: CatalogStore, catalog_db: AsyncDatabase[Document], category: int, unique: str
) -> None:
    product = await catalog.create(_content((category,), f"M-{unique}", price=1990))
    doc = await catalog_db["product_revisions"].find_one({"product_id": product.product_id})
    assert doc is not None
    assert doc["variants"][0]["price"] == {"amount_minor": 1990, "currency": "EUR"}
    assert type(doc["variants"][0]["price"]["amount_minor"]) is int


async def test_if_match_refuses_a_stale_version_and_changes_nothing(
    catalog: CatalogStore, category: int, unique: str
) -> None:
    product = await catalog.create(_content((category,), f"IM-{unique}"))
    await catalog.replace(product.product_id, _content((category,), f"IM-{unique}", title="v2"))
    with pytest.raises(VersionConflict) as conflict:
        await catalog.replace(
            product.product_id, _content((category,), f"IM-{unique}", title="lost"), 1
        )
    assert conflict.value.current == 2
    with pytest.raises(VersionConflict):
        await catalog.delete(product.product_id, 1)
    current = await catalog.get(product.product_id)
    assert (current.version, current.content.title) == (2, "v2")


async def test_racing_writes_with_the_same_if_match_one_wins(
    catalog: CatalogStore, category: int, unique: str
) -> None:
    product = await catalog.create(_content((category,), f"R-{unique}"))
    results = await asyncio.gather(
        *(
            catalog.replace(
                product.product_id, _content((category,), f"R-{unique}", title=f"w{n}"), 1
            )
            for n in range(5)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert all(isinstance(r, VersionConflict) for r in results if r not in winners)
    assert (await catalog.get(product.product_id)).content.title == winners[0].content.title


async def test_racing_writes_without_if_match_all_land(
    catalog: CatalogStore, category: int, unique: str
) -> None:
    product = await catalog.create(_content((category,), f"N-{unique}"))
    await asyncio.gather(
        *(
            catalog.replace(product.product_id, _content((category,), f"N-{unique}", title=f"{n}"))
            for n in range(5)
        )
    )
    assert (await catalog.get(product.product_id)).version == 6  # no write lost


async def _events(engine: AsyncEngine, product_id: str) -> list[ProductChanged]:
    """The product_changed events the product's commits wrote to the outbox, in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.type, outbox.c.payload)
            .where(outbox.c.aggregatetype == "product", outbox.c.aggregateid == product_id)
            .order_by(outbox.c.created_at)
        )
        found = rows.all()
    assert {r.type for r in found} <= {PRODUCT_CHANGED}
    return [ProductChanged.of(json.loads(r.payload)) for r in found]


async def test_every_committed_version_writes_its_event_a_delete_its_tombstone(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    category: int,
    clock: Clock,
) -> None:
    product = await catalog.create(_content((category,), f"T-{uuid.uuid4().hex[:8]}"))
    clock.now += timedelta(seconds=1)
    await catalog.replace(product.product_id, replace(product.content, title="Blouse"))
    clock.now += timedelta(seconds=1)
    assert await catalog.delete(product.product_id, 2) == 3

    with pytest.raises(ProductNotFound):
        await catalog.get(product.product_id)
    for again in (
        catalog.delete(product.product_id),
        catalog.replace(product.product_id, _content((category,), "T-AGAIN")),
    ):
        with pytest.raises(ProductNotFound):
            await again
    tombstone = await catalog_db["product_revisions"].find_one({"_id": f"{product.product_id}:3"})
    assert tombstone == {
        "_id": f"{product.product_id}:3",
        "product_id": product.product_id,
        "version": 3,
        "deleted": True,
        "updated_at": product.updated_at + timedelta(seconds=2),
    }
    # One event per committed version, in the transaction of its commit: what the index reads.
    assert [
        (e.version, e.deleted, e.updated_at) for e in await _events(engine, product.product_id)
    ] == [
        (1, False, product.updated_at),
        (2, False, product.updated_at + timedelta(seconds=1)),
        (3, True, product.updated_at + timedelta(seconds=2)),
    ]
    assert await _ids(catalog, category) == []
    assert await catalog.prices(product.content.skus) == {}


async def test_superseded_revisions_become_stubs_that_keep_their_version_taken(
    catalog: CatalogStore, catalog_db: AsyncDatabase[Document], category: int, clock: Clock
) -> None:
    product = await catalog.create(_content((category,), f"ST-{uuid.uuid4().hex[:8]}"))
    for title in ("two", "three"):
        await catalog.replace(product.product_id, replace(product.content, title=title))
    revisions = catalog_db["product_revisions"]

    async def stored() -> list[Document]:
        return await revisions.find({"product_id": product.product_id}).sort("version").to_list()

    before = await stored()
    assert [(d["version"], d.get("superseded", False)) for d in before] == [
        (1, True),
        (2, True),
        (3, False),
    ]
    assert set(before[0]) == {"_id", "product_id", "version", "deleted", "updated_at", "superseded"}
    assert before[2]["title"] == "three"

    await catalog.drop_stubs()  # too recent: a slow writer may still act on v1
    assert [d["version"] for d in await stored()] == [1, 2, 3]
    clock.now += timedelta(days=1, seconds=1)
    assert await catalog.drop_stubs() >= 2  # (the shared database may hold others' due too)
    assert [d["version"] for d in await stored()] == [3]
    assert (await catalog.get(product.product_id)).content.title == "three"


async def _claim(engine: AsyncEngine, sku: str) -> tuple[str, int] | None:
    """(product id, version) of the claim on `sku`."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(sku_claims.c.product_id, sku_claims.c.version).where(sku_claims.c.sku == sku)
            )
        ).one_or_none()
    return None if row is None else (str(row.product_id), int(row.version))


async def test_unknown_categories_are_refused_before_anything_is_written(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    category: int,
    unique: str,
) -> None:
    with pytest.raises(UnknownCategory) as refused:
        await catalog.create(_content((category, 2**62, 2**62 + 1), f"U-{unique}"))
    assert refused.value.category_ids == [2**62, 2**62 + 1]
    assert await catalog_db["product_revisions"].count_documents({}) == 0
    assert await _claim(engine, f"U-{unique}") is None
    # The store checks the content itself, whoever calls it.
    with pytest.raises(InvalidProduct):
        await catalog.create(_content((category,), f"U-{unique}", f"U-{unique}"))


async def test_ferretdb_does_not_enforce_a_unique_multikey_index(
    catalog_db: AsyncDatabase[Document],
) -> None:
    """Why SKUs are claimed apart from the revisions (in MariaDB): FerretDB accepts a unique
    index on the variants' SKUs but does not enforce it."""
    probe = catalog_db["multikey_probe"]
    await probe.create_index([("variants.sku", ASCENDING)], unique=True, name="sku_unique")
    await probe.insert_one({"variants": [{"sku": "SAME"}]})
    await probe.insert_one({"variants": [{"sku": "SAME"}]})
    assert await probe.count_documents({"variants.sku": "SAME"}) == 2


async def test_a_sku_belongs_to_one_product(
    catalog: CatalogStore, category: int, unique: str
) -> None:
    shared, other = f"S-{unique}", f"O-{unique}"
    first = await catalog.create(_content((category,), shared))
    with pytest.raises(DuplicateSku) as taken:
        await catalog.create(_content((category,), other, shared))
    assert taken.value.skus == [shared]
    # The refused create kept none of its SKUs: `other` is free.
    second = await catalog.create(_content((category,), other))
    with pytest.raises(DuplicateSku):
        await catalog.replace(second.product_id, _content((category,), other, shared))
    assert (await catalog.get(second.product_id)).version == 1

    # Dropping a SKU frees it; deleting a product frees all of its SKUs.
    await catalog.replace(first.product_id, _content((category,), f"S2-{unique}"))
    moved = await catalog.replace(second.product_id, _content((category,), other, shared))
    assert moved.content.skus == {other, shared}
    await catalog.delete(second.product_id)
    third = await catalog.create(_content((category,), shared, other))
    assert (await catalog.prices([shared]))[shared] == Price(1999, "EUR")
    assert third.version == 1


async def test_racing_creates_of_one_sku_have_one_winner(
    catalog: CatalogStore, category: int, unique: str
) -> None:
    results = await asyncio.gather(
        *(
            catalog.create(_content((category,), f"X{n}-{unique}", f"RACE-{unique}"))
            for n in range(6)
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 1, results
    assert sum(isinstance(r, DuplicateSku) for r in results) == 5
    # The losers' other SKUs were released.
    loser_skus = [f"X{n}-{unique}" for n in range(6)]
    loser_skus.remove(sorted(created[0].content.skus - {f"RACE-{unique}"})[0])
    survivor = await catalog.create(_content((category,), *loser_skus))
    assert survivor.content.skus == set(loser_skus)


async def test_a_claim_left_by_a_crashed_write_is_taken_over_after_the_lease(
    catalog: CatalogStore, engine: AsyncEngine, category: int, clock: Clock, unique: str
) -> None:
    sku = f"L-{unique}"
    # What a create that crashed after claiming, before storing its document, leaves behind.
    async with engine.begin() as conn:
        await conn.execute(
            sku_claims.insert().values(
                sku=sku, product_id=uuid.uuid4().hex, version=1, claimed_at=clock.now
            )
        )
    with pytest.raises(DuplicateSku):  # it may still be in flight
        await catalog.create(_content((category,), sku))
    clock.now += CLAIM_LEASE + timedelta(seconds=1)
    product = await catalog.create(_content((category,), sku))
    assert await _claim(engine, sku) == (product.product_id, 1)


async def test_listing_a_category_and_its_subtree_pages_every_product_once(
    catalog: CatalogStore, tree: CategoryStore, unique: str
) -> None:
    root = await tree.create(f"Root {unique}", None)
    a = await tree.create("A", root.id)
    a1 = await tree.create("A1", a.id)
    b = await tree.create("B", root.id)
    elsewhere = await tree.create(f"Elsewhere {unique}", None)

    def make(n: int, *categories: int) -> ProductContent:
        return _content(categories, f"P{n}-{unique}", title=f"P{n}")

    in_root = await catalog.create(make(1, root.id))
    in_a_and_b = await catalog.create(make(2, a.id, b.id))
    in_a1 = [await catalog.create(make(n, a1.id)) for n in range(3, 10)]
    in_a_and_a1 = await catalog.create(make(10, a1.id, a.id))  # listed once under A's tree
    in_b = await catalog.create(make(11, b.id))
    await catalog.create(make(12, elsewhere.id))

    subtree = sorted(p.product_id for p in [in_root, in_a_and_b, *in_a1, in_a_and_a1, in_b])
    assert await _ids(catalog, root.id) == [in_root.product_id]
    for limit in (1, 2, 3, 100):
        assert await _ids(catalog, root.id, True, limit) == subtree  # each once, in key order
    assert await _ids(catalog, a.id) == sorted([in_a_and_b.product_id, in_a_and_a1.product_id])
    assert await _ids(catalog, a.id, True) == sorted(
        [in_a_and_b.product_id, in_a_and_a1.product_id, *(p.product_id for p in in_a1)]
    )

    # Products added while paging: none repeats or displaces another; one whose id is
    # ahead of the cursor is reached, one behind it is not.
    first = await catalog.list_category(root.id, True, None, 3)
    assert first.next_after is not None
    added = [(await catalog.create(make(n, b.id))).product_id for n in range(13, 17)]
    listed = [p.product_id for p in first.products]
    listed += await _ids_after(catalog, root.id, first.next_after)
    assert listed == sorted(subtree + [pid for pid in added if pid > first.next_after])

    # The subtree is a path prefix: moving A1 under B moves its products into B's listing.
    await tree.change(a1.id, move=Move(b.id))
    assert {p.product_id for p in in_a1} <= set(await _ids(catalog, b.id, True))
    assert not {p.product_id for p in in_a1} & set(await _ids(catalog, a.id, True))

    for include_descendants in (True, False):
        with pytest.raises(CategoryNotFound):
            await catalog.list_category(2**62, include_descendants, None, 10)
    empty = (await tree.create(f"Empty {unique}", None)).id
    assert (await catalog.list_category(empty, False, None, 10)).products == []


async def _ids_after(catalog: CatalogStore, category_id: int, after: str) -> list[str]:
    ids: list[str] = []
    cursor: str | None = after
    while cursor is not None:
        page = await catalog.list_category(category_id, True, cursor, 3)
        ids += [p.product_id for p in page.products]
        cursor = page.next_after
    return ids


async def test_a_subtree_with_its_products_bunched_in_the_id_space_pages_exactly(
    engine: AsyncEngine, tree: CategoryStore, clock: Clock, unique: str
) -> None:
    """A subtree's page is read through id windows sized by the density seen (id_windows.py):
    here the ids bunch at the start, the middle and the end of the id space, so windows
    overshoot, come up empty and widen; every page still holds exactly the next products."""
    root = await tree.create(f"Bunched {unique}", None)
    a = await tree.create("A", root.id)
    b = await tree.create("B", root.id)
    b1 = await tree.create("B1", b.id)
    elsewhere = await tree.create(f"Beside {unique}", None)

    def bunched(prefix: str) -> str:
        return prefix + uuid.uuid4().hex[len(prefix) :]

    listed: dict[str, tuple[int, ...]] = {}
    listed |= {bunched("0000"): (a.id,) for _ in range(23)}
    listed |= {bunched("8000"): (b1.id,) for _ in range(3)}
    listed |= {bunched("ffff"): (a.id, b1.id) for _ in range(12)}  # listed twice in the tree
    listed[bunched("c")] = (root.id,)
    beside = {bunched(p): (elsewhere.id,) for p in ("0000", "8000", "ffff")}
    projection = CatalogProjection(engine, clock)
    for product_id, categories in {**listed, **beside}.items():
        assert await projection.commit(_listed(product_id, 1, categories, clock)) == 0

    for limit in (1, 5, 7, 40, 100):
        for _ in range(2):  # then again with the widths learnt on the way
            pages: list[list[str]] = []
            after: str | None = None
            while True:
                page = [p.product_id for p in await projection.page(root.id, True, after, limit)]
                pages.append(page)
                if len(page) < limit:
                    break
                after = page[-1]
            assert [pid for page in pages for pid in page] == sorted(listed)
            assert all(len(page) == limit for page in pages[:-1])
    b_tree = [p.product_id for p in await projection.page(b.id, True, None, 100)]
    assert b_tree == sorted(pid for pid, c in listed.items() if b1.id in c)


async def test_a_remembered_subtree_is_checked_by_each_pages_own_statement(
    engine: AsyncEngine, tree: CategoryStore, clock: Clock, unique: str
) -> None:
    """A subtree's ids are remembered from its first page; later pages are one statement that
    also reads the subtree's fingerprint, so a category moved in or out is seen at once."""
    root = await tree.create(f"Remembered {unique}", None)
    a = await tree.create("A", root.id)
    b = await tree.create(f"Apart {unique}", None)
    b1 = await tree.create("B1", b.id)
    projection = CatalogProjection(engine, clock)
    in_a, in_b1 = uuid.uuid4().hex, uuid.uuid4().hex
    for product_id, category in ((in_a, a.id), (in_b1, b1.id)):
        assert await projection.commit(_listed(product_id, 1, (category,), clock)) == 0

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    async def page() -> tuple[list[str], int]:
        statements.clear()
        listed = [p.product_id for p in await projection.page(root.id, True, None, 10)]
        return listed, len(statements)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (await page())[0] == [in_a]
        assert await page() == ([in_a], 1)  # remembered: the window's statement alone
        await tree.change(b1.id, move=Move(root.id))
        assert (await page())[0] == sorted([in_a, in_b1])  # moved in: seen at once
        assert await page() == (sorted([in_a, in_b1]), 1)
        await tree.change(b1.id, move=Move(b.id))
        assert (await page())[0] == [in_a]  # and out again
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


# ---- a write interrupted between MongoDB and MariaDB --------------------------------------


class Crash(BaseException):
    """The process dies here: nothing after this point runs, nothing catches it."""


class FailingProjection(CatalogProjection):
    """Every commit fails (the process dies, or MariaDB is away) after the revision is stored."""

    def __init__(self, engine: AsyncEngine, clock: Clock, failure: BaseException) -> None:
        super().__init__(engine, clock)
        self._failure = failure

    async def commit(self, change: Commit) -> int | None:
        raise self._failure


def _failing(
    catalog_db: AsyncDatabase[Document], engine: AsyncEngine, clock: Clock, failure: BaseException
) -> CatalogStore:
    return CatalogStore(
        catalog_db.client,
        catalog_db.name,
        engine,
        clock,
        projection=FailingProjection(engine, clock, failure),
    )


async def _pending(engine: AsyncEngine, product_id: str) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(pending_writes.c.version)
            .where(pending_writes.c.product_id == product_id)
            .order_by(pending_writes.c.version)
        )
        return [int(r.version) for r in rows]


async def _repair(catalog: CatalogStore, clock: Clock) -> int:
    clock.now += REPAIR_GRACE + timedelta(seconds=1)  # past the grace of writes in flight
    return await catalog.repair_writes()


async def test_a_crash_after_the_revision_is_repaired_by_the_sweep(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    tree: CategoryStore,
    clock: Clock,
    unique: str,
) -> None:
    shoes = (await tree.create(f"Shoes {unique}", None)).id
    boots = (await tree.create(f"Boots {unique}", None)).id
    dying = _failing(catalog_db, engine, clock, Crash())

    with pytest.raises(Crash):
        await dying.create(_content((shoes,), f"C-{unique}", title="crashed create"))
    [doc] = await catalog_db["product_revisions"].find({}).to_list()
    product_id = doc["product_id"]
    assert await _pending(engine, product_id) == [1]
    assert (await catalog.get(product_id)).version == 1  # the stored revision is read
    assert await _ids(catalog, shoes) == []  # ...but the listing has not heard of it
    assert await _events(engine, product_id) == []  # nor the index
    assert await catalog.prices([f"C-{unique}"]) == {}

    assert await catalog.repair_writes() == 0  # within the grace: it may be on its way
    assert await _repair(catalog, clock) == 1
    assert await _ids(catalog, shoes) == [product_id]
    assert [e.version for e in await _events(engine, product_id)] == [1]
    assert await catalog.prices([f"C-{unique}"]) == {f"C-{unique}": Price(1999, "EUR")}
    assert await _pending(engine, product_id) == []
    assert await _repair(catalog, clock) == 0

    with pytest.raises(Crash):
        await dying.replace(product_id, _content((boots,), f"C-{unique}", price=2500))
    assert (await catalog.get(product_id)).version == 2  # stored, so read, though not committed
    assert await _ids(catalog, shoes) == [product_id]  # stale until repaired
    await _repair(catalog, clock)
    assert (await _ids(catalog, shoes), await _ids(catalog, boots)) == ([], [product_id])
    assert await catalog.prices([f"C-{unique}"]) == {f"C-{unique}": Price(2500, "EUR")}

    with pytest.raises(Crash):
        await dying.delete(product_id)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(product_categories.c.category_id).where(
                product_categories.c.product_id == product_id
            )
        )
        assert [r.category_id for r in rows] == [boots]
    await _repair(catalog, clock)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(product_categories).where(product_categories.c.product_id == product_id)
        )
        assert rows.all() == []
    assert [(e.version, e.deleted) for e in await _events(engine, product_id)] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert await _pending(engine, product_id) == []


async def test_a_record_left_by_a_crash_and_outlived_by_a_newer_commit_is_the_sweeps(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    """A commit deletes only its own pending record. One an earlier write left (it crashed
    after storing its revision) stays, counts for nothing once a newer version is committed,
    and the sweep forgets it without committing anything."""
    product = await catalog.create(_content((category,), f"L-{unique}"))
    with pytest.raises(Crash):
        await _failing(catalog_db, engine, clock, Crash()).replace(
            product.product_id, _content((category,), f"L-{unique}", price=2500)
        )
    newer = await catalog.replace(
        product.product_id, _content((category,), f"L-{unique}", price=3000)
    )
    assert newer.version == 3
    assert await _pending(engine, product.product_id) == [2]
    committed = await CatalogProjection(engine, clock).committed(product.product_id)
    assert committed is not None
    assert (committed.version, committed.newer_pending) == (3, False)  # reads serve the copy

    await _repair(catalog, clock)
    assert await _pending(engine, product.product_id) == []
    # Both commits at the test clock's one instant: their events compare as a set.
    assert sorted(e.version for e in await _events(engine, product.product_id)) == [1, 3]
    assert (await catalog.get(product.product_id)).version == 3
    assert await catalog.prices([f"L-{unique}"]) == {f"L-{unique}": Price(3000, "EUR")}


async def test_a_write_that_crashed_before_storing_its_revision_is_forgotten_with_its_claims(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    product = await catalog.create(_content((category,), f"K-{unique}"))

    class _DiesBeforeInsert(CatalogStore):
        async def _write(
            self, revision: Document, skus: Collection[str], read: Document | None = None
        ) -> None:
            await self._start(revision["product_id"], revision["version"], skus, self._now())
            raise Crash

    dying = _DiesBeforeInsert(catalog_db.client, catalog_db.name, engine, clock)
    with pytest.raises(Crash):
        await dying.replace(product.product_id, _content((category,), f"K-{unique}", f"N-{unique}"))
    assert await _pending(engine, product.product_id) == [2]
    assert await _claim(engine, f"N-{unique}") == (product.product_id, 2)
    await _repair(catalog, clock)  # within the lease: it may still store it
    assert await _pending(engine, product.product_id) == [2]
    clock.now += CLAIM_LEASE
    await catalog.repair_writes()
    assert await _pending(engine, product.product_id) == []
    assert await _claim(engine, f"N-{unique}") is None  # freed
    assert await _claim(engine, f"K-{unique}") == (product.product_id, 1)  # still its own
    assert (await catalog.get(product.product_id)).version == 1
    other = await catalog.create(_content((category,), f"N-{unique}"))
    assert await _claim(engine, f"N-{unique}") == (other.product_id, 1)


async def test_a_sku_dropped_by_a_crashed_write_can_be_taken_back(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    kept, dropped = f"K-{unique}", f"D-{unique}"
    product = await catalog.create(_content((category,), kept, dropped))
    dying = _failing(catalog_db, engine, clock, Crash())
    with pytest.raises(Crash):  # v2 drops `dropped`, but dies before its commit frees the claim
        await dying.replace(product.product_id, _content((category,), kept))
    back = await catalog.replace(product.product_id, _content((category,), kept, dropped))
    assert back.version == 3
    assert await _claim(engine, dropped) == (product.product_id, 1)  # the product kept it
    with pytest.raises(DuplicateSku):
        await catalog.create(_content((category,), dropped))


async def test_a_mariadb_failure_does_not_fail_the_write(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    category: int,
    clock: Clock,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = _failing(catalog_db, engine, clock, ConnectionError("MariaDB unreachable"))
    product = await outage.create(_content((category,), f"F-{unique}"))
    assert "left to the repair sweep" in caplog.text
    assert await _pending(engine, product.product_id) == [1]
    assert await _ids(catalog, category) == []
    assert await _repair(catalog, clock) == 1
    assert await _ids(catalog, category) == [product.product_id]


async def test_an_older_commit_never_overwrites_a_newer_one(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    tree: CategoryStore,
    clock: Clock,
    unique: str,
) -> None:
    old = (await tree.create(f"Old {unique}", None)).id
    new = (await tree.create(f"New {unique}", None)).id
    product = await catalog.create(_content((old,), f"V-{unique}", price=100))
    await catalog.replace(product.product_id, _content((new,), f"V-{unique}", price=200))

    projection = CatalogProjection(engine, clock)
    revisions = catalog_db["product_revisions"]
    first = await revisions.find_one({"_id": f"{product.product_id}:1"})
    assert first is not None
    late = Commit.of(
        {**first, **revision_document(product.product_id, 1, product.content, clock.now, clock.now)}
    )  # the create's commit, arriving late
    assert await projection.commit(late) is None
    assert (await _ids(catalog, old), await _ids(catalog, new)) == ([], [product.product_id])
    assert await catalog.prices([f"V-{unique}"]) == {f"V-{unique}": Price(200, "EUR")}

    await catalog.delete(product.product_id)
    # Not even after a delete, which leaves no category rows behind, can it come back.
    assert await projection.commit(late) is None
    assert await _ids(catalog, old) == []
    assert len(await _events(engine, product.product_id)) == 3


async def test_a_commit_waits_for_the_products_row_and_sees_the_version_committed_meanwhile(
    engine: AsyncEngine, clock: Clock, category: int
) -> None:
    """A commit waits for the transaction holding the product's row and then compares with
    the version that transaction committed (the locking upsert's RETURNING), not the one it
    would have read before waiting."""
    projection = CatalogProjection(engine, clock)
    product_id = uuid.uuid4().hex

    def change(version: int) -> Commit:
        return _listed(product_id, version, (category,), clock)

    assert await projection.commit(change(1)) == 0
    async with engine.connect() as conn, conn.begin():
        row = product_mappings.c.product_id == product_id
        await conn.execute(select(product_mappings.c.version).where(row).with_for_update())
        late = asyncio.create_task(projection.commit(change(3)))
        await asyncio.sleep(0.5)
        assert not late.done()  # waiting for the row
        await conn.execute(product_mappings.update().where(row).values(version=4))
    assert await late is None  # version 4 was committed while it waited
    head = await projection.head(product_id)
    assert head == Head(4, False)


async def test_a_commit_keeps_the_rows_its_writer_read_only_while_they_are_the_stored_ones(
    catalog: CatalogStore, engine: AsyncEngine, tree: CategoryStore, clock: Clock, unique: str
) -> None:
    """A version that keeps the listing or the prices of the version its writer read leaves
    those rows as they are, when that version is still the stored one at the commit; else it
    writes its own (a late commit after another version changed them)."""
    c1 = (await tree.create(f"Kept {unique}", None)).id
    c2 = (await tree.create(f"Moved {unique}", None)).id
    sku = f"S-{unique}"
    product_id = (await catalog.create(_content((c1,), sku, price=100))).product_id

    async def rows() -> tuple[list[tuple[int, bool]], list[tuple[int, int]]]:
        async with engine.connect() as conn:
            listed = await conn.execute(
                select(product_categories).where(product_categories.c.product_id == product_id)
            )
            priced = await conn.execute(select(sku_prices).where(sku_prices.c.sku == sku))
            return (
                sorted((int(r.category_id), bool(r.is_primary)) for r in listed),
                [(int(r.version), int(r.amount_minor)) for r in priced],
            )

    await catalog.replace(product_id, _content((c1,), sku, title="Renamed", price=100))  # v2
    assert await rows() == ([(c1, True)], [(1, 100)])  # the price row is still v1's
    await catalog.replace(product_id, _content((c1,), sku, price=250))  # v3
    assert await rows() == ([(c1, True)], [(3, 250)])
    await catalog.replace(product_id, _content((c2, c1), sku, price=250))  # v4
    assert await rows() == ([(c1, False), (c2, True)], [(3, 250)])

    # Its writer read v3, but v4 is stored: it lists and prices itself.
    late = Commit(
        product_id, 5, False, clock.now, "P", (c1,), c1, ((sku, Price(250, "EUR")),), None,
        same_listing_as=3, same_prices_as=3,
    )  # fmt: skip
    assert await CatalogProjection(engine, clock).commit(late) == 4
    assert await rows() == ([(c1, True)], [(5, 250)])


async def test_products_committed_before_the_projection_get_titles_prices_and_claims(
    catalog: CatalogStore, engine: AsyncEngine, category: int, unique: str
) -> None:
    product = await catalog.create(_content((category,), f"P-{unique}", price=700))
    # As migration 0006 found it: a head without a title, no prices, no claims.
    async with engine.begin() as conn:
        await conn.execute(
            product_mappings.update()
            .where(product_mappings.c.product_id == product.product_id)
            .values(title=None)
        )
        await conn.execute(sku_prices.delete().where(sku_prices.c.product_id == product.product_id))
        await conn.execute(sku_claims.delete().where(sku_claims.c.product_id == product.product_id))
    assert await catalog.prices([f"P-{unique}"]) == {}
    assert await catalog.complete_projection() >= 1
    assert await catalog.prices([f"P-{unique}"]) == {f"P-{unique}": Price(700, "EUR")}
    assert await _claim(engine, f"P-{unique}") == (product.product_id, 1)
    async with engine.connect() as conn:
        title = (
            await conn.execute(
                select(product_mappings.c.title).where(
                    product_mappings.c.product_id == product.product_id
                )
            )
        ).scalar_one()
    assert title == "Shirt"


async def test_prices_of_known_live_skus_only(
    catalog: CatalogStore, category: int, unique: str
) -> None:
    await catalog.create(_content((category,), f"K1-{unique}", f"K2-{unique}", price=500))
    gone = await catalog.create(_content((category,), f"G-{unique}"))
    await catalog.delete(gone.product_id)
    prices = await catalog.prices([f"K2-{unique}", f"G-{unique}", f"NONE-{unique}"])
    assert prices == {f"K2-{unique}": Price(500, "EUR")}


async def test_a_commit_forgetting_its_write_holds_up_no_other_products_write(
    engine: AsyncEngine, unique: str
) -> None:
    """A commit deletes its pending record by its whole key. A range of the product's versions
    would lock the gap up to the next record, another product's in this small table, and hold
    every write whose record falls in that gap until the commit ends (it serialized concurrent
    writes at a million products)."""
    committing, neighbour = f"{unique}x", f"{unique}x0"  # no other record sorts between them
    now = utc_now()
    async with engine.begin() as conn:
        await start_in(conn, committing, 1, now)
    try:
        async with engine.connect() as commit, engine.connect() as other:
            await other.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))
            await forget_in(commit, committing, 1)  # the commit's step; its transaction open
            # Waits for the commit's gap lock, if it took one, and times out after 1 s.
            await asyncio.wait_for(start_in(other, neighbour, 1, now), timeout=10)
            await other.commit()
            await commit.commit()
        async with engine.connect() as conn:
            left = await conn.execute(
                select(pending_writes.c.product_id).where(
                    pending_writes.c.product_id.in_([committing, neighbour])
                )
            )
            assert [r.product_id for r in left] == [neighbour]
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                pending_writes.delete().where(
                    pending_writes.c.product_id.in_([committing, neighbour])
                )
            )
