"""The catalog store against the real FerretDB and MariaDB: versions, If-Match, tombstones the
search sync can poll, SKUs unique across products (FerretDB does not enforce a unique multikey
index, claims do), category listings paged by keyset, and the repair of a write that stopped
between the MongoDB document and the MariaDB mapping."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.mappings import CategoryMappings
from commerce_services.product.catalog.model import (
    CLAIM_LEASE,
    CategoryMapping,
    DuplicateSku,
    InvalidProduct,
    Price,
    ProductContent,
    ProductNotFound,
    UnknownCategory,
    Variant,
    VersionConflict,
)
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.catalog.tables import product_categories
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
    assert "mapping_pending" not in doc  # settled once the mapping was written


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


async def test_delete_leaves_a_tombstone_the_sync_poll_sees(
    catalog: CatalogStore, catalog_db: AsyncDatabase[Document], category: int, clock: Clock
) -> None:
    product = await catalog.create(_content((category,), f"T-{uuid.uuid4().hex[:8]}"))
    watermark = (product.updated_at, f"{product.product_id}:1")  # where a sync would be now
    clock.now += timedelta(seconds=1)
    assert await catalog.delete(product.product_id, 1) == 2

    with pytest.raises(ProductNotFound):
        await catalog.get(product.product_id)
    for again in (
        catalog.delete(product.product_id),
        catalog.replace(product.product_id, _content((category,), "T-AGAIN")),
    ):
        with pytest.raises(ProductNotFound):
            await again

    # The search sync's poll: everything after its (updated_at, _id) watermark, in that order.
    changed = await (
        catalog_db["product_revisions"]
        .find(
            {
                "$or": [
                    {"updated_at": {"$gt": watermark[0]}},
                    {"updated_at": watermark[0], "_id": {"$gt": watermark[1]}},
                ]
            }
        )
        .sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
        .to_list()
    )
    assert changed == [
        {
            "_id": f"{product.product_id}:2",
            "product_id": product.product_id,
            "version": 2,
            "deleted": True,
            "updated_at": watermark[0] + timedelta(seconds=1),
        }
    ]
    assert await _ids(catalog, category) == []


async def test_superseded_revisions_become_stubs_that_keep_their_version_taken(
    catalog: CatalogStore, catalog_db: AsyncDatabase[Document], category: int, clock: Clock
) -> None:
    product = await catalog.create(_content((category,), f"ST-{uuid.uuid4().hex[:8]}"))
    for title in ("two", "three"):
        await catalog.replace(product.product_id, replace(product.content, title=title))
    revisions = catalog_db["product_revisions"]
    stored = await revisions.find({"product_id": product.product_id}).sort("version").to_list()
    assert [(d["version"], d.get("superseded", False)) for d in stored] == [
        (1, True),
        (2, True),
        (3, False),
    ]
    assert set(stored[0]) == {"_id", "product_id", "version", "deleted", "updated_at", "superseded"}
    assert stored[2]["title"] == "three"

    assert await catalog.drop_stubs() == 0  # too recent: a slow writer may still act on v1
    clock.now += timedelta(days=1, seconds=1)
    assert await catalog.drop_stubs() == 2
    assert [d["version"] async for d in revisions.find({"product_id": product.product_id})] == [3]
    assert (await catalog.get(product.product_id)).content.title == "three"


async def test_unknown_categories_are_refused_before_anything_is_written(
    catalog: CatalogStore, catalog_db: AsyncDatabase[Document], category: int, unique: str
) -> None:
    with pytest.raises(UnknownCategory) as refused:
        await catalog.create(_content((category, 2**62, 2**62 + 1), f"U-{unique}"))
    assert refused.value.category_ids == [2**62, 2**62 + 1]
    assert await catalog_db["product_revisions"].count_documents({}) == 0
    assert await catalog_db["sku_claims"].count_documents({}) == 0
    # The store checks the content itself, whoever calls it.
    with pytest.raises(InvalidProduct):
        await catalog.create(_content((category,), f"U-{unique}", f"U-{unique}"))


async def test_ferretdb_does_not_enforce_a_unique_multikey_index(
    catalog_db: AsyncDatabase[Document],
) -> None:
    """Why SKUs are claimed in their own collection: should this start failing, FerretDB
    enforces the index and the claims could give way to it."""
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
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    category: int,
    clock: Clock,
    unique: str,
) -> None:
    sku = f"L-{unique}"
    # What a create that crashed after claiming, before storing its document, leaves behind.
    await catalog_db["sku_claims"].insert_one(
        {
            "_id": uuid.uuid4().hex,
            "sku": sku,
            "product_id": uuid.uuid4().hex,
            "version": 1,
            "claimed_at": clock.now.replace(microsecond=0),
        }
    )
    with pytest.raises(DuplicateSku):  # it may still be in flight
        await catalog.create(_content((category,), sku))
    clock.now += CLAIM_LEASE + timedelta(seconds=1)
    product = await catalog.create(_content((category,), sku))
    claim = await catalog_db["sku_claims"].find_one({"sku": sku})
    assert claim is not None
    assert claim["product_id"] == product.product_id


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

    with pytest.raises(CategoryNotFound):
        await catalog.list_category(2**62, True, None, 10)


async def _ids_after(catalog: CatalogStore, category_id: int, after: str) -> list[str]:
    ids: list[str] = []
    cursor: str | None = after
    while cursor is not None:
        page = await catalog.list_category(category_id, True, cursor, 3)
        ids += [p.product_id for p in page.products]
        cursor = page.next_after
    return ids


# ---- a write interrupted between MongoDB and MariaDB --------------------------------------


class Crash(BaseException):
    """The process dies here: nothing after this point runs, nothing catches it."""


class CrashingMappings(CategoryMappings):
    def __init__(self, engine: AsyncEngine, clock: Clock, failure: BaseException) -> None:
        super().__init__(engine, clock)
        self._failure = failure

    async def write(self, mapping: CategoryMapping) -> bool:
        raise self._failure


async def _pending(db: AsyncDatabase[Document]) -> list[Document]:
    return await db["product_revisions"].find({"mapping_pending": True}).to_list()


async def test_a_crash_after_the_document_is_repaired_by_the_sweep(
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    tree: CategoryStore,
    clock: Clock,
    unique: str,
) -> None:
    shoes = (await tree.create(f"Shoes {unique}", None)).id
    boots = (await tree.create(f"Boots {unique}", None)).id
    dying = CatalogStore(
        catalog_db.client, catalog_db.name, CrashingMappings(engine, clock, Crash()), clock
    )

    with pytest.raises(Crash):
        await dying.create(_content((shoes,), f"C-{unique}", title="crashed create"))
    [doc] = await _pending(catalog_db)
    product_id = doc["product_id"]
    assert (await catalog.get(product_id)).version == 1  # the document is the truth
    assert await _ids(catalog, shoes) == []  # ...but the listing has not heard of it

    assert await catalog.repair_mappings() == 1
    assert await _ids(catalog, shoes) == [product_id]
    assert await _pending(catalog_db) == []
    assert await catalog.repair_mappings() == 0

    with pytest.raises(Crash):
        await dying.replace(product_id, _content((boots,), f"C-{unique}"))
    assert await _ids(catalog, shoes) == [product_id]  # stale until repaired
    await catalog.repair_mappings()
    assert (await _ids(catalog, shoes), await _ids(catalog, boots)) == ([], [product_id])

    with pytest.raises(Crash):
        await dying.delete(product_id)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(product_categories.c.category_id).where(
                product_categories.c.product_id == product_id
            )
        )
        assert [r.category_id for r in rows] == [boots]
    await catalog.repair_mappings()
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(product_categories).where(product_categories.c.product_id == product_id)
        )
        assert rows.all() == []
    assert await _pending(catalog_db) == []


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
    dying = CatalogStore(
        catalog_db.client, catalog_db.name, CrashingMappings(engine, clock, Crash()), clock
    )
    with pytest.raises(Crash):  # v2 drops `dropped`, but dies before freeing its claim
        await dying.replace(product.product_id, _content((category,), kept))
    back = await catalog.replace(product.product_id, _content((category,), kept, dropped))
    assert back.version == 3
    claim = await catalog_db["sku_claims"].find_one({"sku": dropped})
    assert claim is not None
    assert (claim["product_id"], claim["version"]) == (product.product_id, 3)
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
    outage = CatalogStore(
        catalog_db.client,
        catalog_db.name,
        CrashingMappings(engine, clock, ConnectionError("MariaDB unreachable")),
        clock,
    )
    product = await outage.create(_content((category,), f"F-{unique}"))
    assert "left to the repair sweep" in caplog.text
    assert [d["product_id"] for d in await _pending(catalog_db)] == [product.product_id]
    assert await _ids(catalog, category) == []
    assert await catalog.repair_mappings() == 1
    assert await _ids(catalog, category) == [product.product_id]


async def test_an_older_mapping_never_overwrites_a_newer_one(
    catalog: CatalogStore, engine: AsyncEngine, tree: CategoryStore, clock: Clock, unique: str
) -> None:
    old = (await tree.create(f"Old {unique}", None)).id
    new = (await tree.create(f"New {unique}", None)).id
    product = await catalog.create(_content((old,), f"V-{unique}"))
    await catalog.replace(product.product_id, _content((new,), f"V-{unique}"))

    mappings = CategoryMappings(engine, clock)
    late = CategoryMapping(product.product_id, 1, (old,), old)  # the create's, arriving late
    assert await mappings.write(late) is False
    assert await mappings.write(CategoryMapping(product.product_id, 2, (new,), new)) is False
    assert (await _ids(catalog, old), await _ids(catalog, new)) == ([], [product.product_id])

    await catalog.delete(product.product_id)
    # Not even after a delete, which leaves no category rows behind, can it come back.
    assert await mappings.write(late) is False
    assert await _ids(catalog, old) == []


async def test_prices_of_known_live_skus_only(
    catalog: CatalogStore, category: int, unique: str
) -> None:
    await catalog.create(_content((category,), f"K1-{unique}", f"K2-{unique}", price=500))
    gone = await catalog.create(_content((category,), f"G-{unique}"))
    await catalog.delete(gone.product_id)
    prices = await catalog.prices([f"K2-{unique}", f"G-{unique}", f"NONE-{unique}"])
    assert prices == {f"K2-{unique}": Price(500, "EUR")}
