"""The catalog in the product service's MongoDB database (FerretDB 1.24 in the local stack).

FerretDB 1.24 makes only inserts atomic: a unique `_id`, or a unique index on a plain field, is
enforced even under concurrency, but a conditional update is a read-modify-write of the whole
document without isolation (concurrent `update_one({"version": 3}, ...)` calls can all
succeed, `$inc`s are lost). So nothing here updates a product in place:

- Each product version is its own document in `product_revisions`, with
  `_id` = "<product_id>:<version>". A write reads the latest revision (version n) and inserts
  revision n + 1: the unique `_id` lets exactly one concurrent writer have it. With If-Match
  the losers get VersionConflict; without, they re-read and retry. Once a write has landed,
  older revisions are cut down to stubs {_id, product_id, version, deleted, updated_at,
  superseded: true}, never deleted: a deleted one would free its `_id` for a slow writer that
  read the version before it. `drop_stubs()` (run periodically) deletes the ones superseded
  more than a day ago, by when no writer can still be acting on the version before them.
- Every revision carries `version` (1 on create, +1 on every write) and `updated_at` (UTC,
  milliseconds, never earlier than the previous revision's). The MongoDB revision is the
  source of truth, category ids included.
- A delete writes a tombstone revision {product_id, version, deleted: true, updated_at}, so
  a poll on (updated_at, _id) sees it; reads answer ProductNotFound.
- Money is integer minor units with a currency code; never a float, never Decimal128 (FerretDB
  1.24 drops the connection when it receives one).
- A SKU belongs to one product. FerretDB accepts a unique index on `variants.sku` but does not
  enforce it, so each SKU has a claim document, unique by a plain unique index on `sku`. A
  write claims its SKUs before inserting its revision and frees the ones it dropped after; a
  claim left by a failed or crashed write is deleted and re-claimed when `claim_is_stale` says
  so: at once if the owner's latest revision moved past it, else after CLAIM_LEASE. The one
  gap: a write stalled for longer than the lease between claiming and inserting can race a
  takeover and duplicate a SKU.
- The category mapping in MariaDB follows the revision: it is written after it, with its
  version, and an older version never overwrites a newer one. A revision carries
  `mapping_pending: true` until its mapping is written; a crash or a MariaDB failure in between
  leaves the flag, and `repair_mappings()` (run periodically) writes the mapping of the
  product's latest revision. So a write succeeds once its revision is stored; listings reflect
  it at once or after the next repair.

Revision layout (what the search sync reads): `_id`, `product_id`, `version`, `deleted`,
`updated_at`, and unless deleted `created_at`, `title`, `description`, `brand` (or null),
`attributes`, `variants` [{`sku`, `price` {`amount_minor`, `currency`}, `attributes`}],
`images`, `category_ids`, `primary_category_id`. Index a product under `product_id` with
`version` as the external version; skip stubs (`superseded: true`), whose newer revision has
an `updated_at` at least as late.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from commerce_services.product.catalog.mappings import CategoryMappings
from commerce_services.product.catalog.model import (
    CLAIM_LEASE,
    CategoryMapping,
    DuplicateSku,
    Owner,
    Price,
    Product,
    ProductContent,
    ProductNotFound,
    SkuClaim,
    UnknownCategory,
    Variant,
    VersionConflict,
    check_product_id,
    claim_is_stale,
    price_query,
    validate_content,
)

log = logging.getLogger(__name__)

Document = dict[str, Any]

# A stub may go once its version was superseded this long ago: only a writer that read the
# version before it, and stalled ever since, could insert it again.
STUB_HORIZON = timedelta(days=1)
WRITE_ATTEMPTS = 5  # without If-Match, a write re-reads this often before giving up
CLAIM_ROUNDS = 5  # a SKU whose claim changes hands this often while we look is taken


@dataclass(frozen=True)
class ProductPage:
    products: list[Product]
    next_after: str | None  # the last product id when more may follow


class _Superseded(Exception):
    """Another write took the version this one was about to write."""


def revision_document(
    product_id: str,
    version: int,
    content: ProductContent,
    created_at: datetime,
    updated_at: datetime,
) -> Document:
    return {
        "_id": f"{product_id}:{version}",
        "product_id": product_id,
        "version": version,
        "deleted": False,
        "mapping_pending": True,
        "created_at": created_at,
        "updated_at": updated_at,
        "title": content.title,
        "description": content.description,
        "brand": content.brand,
        "attributes": dict(content.attributes),
        "variants": [
            {
                "sku": v.sku,
                "price": {"amount_minor": v.price.minor, "currency": v.price.currency},
                "attributes": dict(v.attributes),
            }
            for v in content.variants
        ],
        "images": list(content.images),
        "category_ids": list(content.category_ids),
        "primary_category_id": content.primary_category_id,
    }


# What a superseded revision loses: all but _id, product_id, version, deleted, updated_at.
_STUBBED = (
    "mapping_pending",
    "created_at",
    "title",
    "description",
    "brand",
    "attributes",
    "variants",
    "images",
    "category_ids",
    "primary_category_id",
)


def _tombstone(product_id: str, version: int, updated_at: datetime) -> Document:
    return {
        "_id": f"{product_id}:{version}",
        "product_id": product_id,
        "version": version,
        "deleted": True,
        "mapping_pending": True,
        "updated_at": updated_at,
    }


def _price(stored: Document) -> Price:
    return Price(int(stored["amount_minor"]), stored["currency"])


def _product(doc: Document) -> Product:
    content = ProductContent(
        title=doc["title"],
        description=doc["description"],
        brand=doc["brand"],
        attributes=doc["attributes"],
        variants=tuple(
            Variant(v["sku"], _price(v["price"]), v["attributes"]) for v in doc["variants"]
        ),
        images=tuple(doc["images"]),
        category_ids=tuple(doc["category_ids"]),
        primary_category_id=doc["primary_category_id"],
    )
    return Product(doc["product_id"], doc["version"], content, doc["created_at"], doc["updated_at"])


def _skus(doc: Document) -> frozenset[str]:
    return frozenset(v["sku"] for v in doc.get("variants", ()))


def _mapping(doc: Document) -> CategoryMapping:
    if doc["deleted"]:
        return CategoryMapping(doc["product_id"], doc["version"], (), None)
    return CategoryMapping(
        doc["product_id"], doc["version"], tuple(doc["category_ids"]), doc["primary_category_id"]
    )


def _current(query: Document) -> Document:
    """`query` restricted to revisions not yet cut down to stubs."""
    return {**query, "superseded": {"$ne": True}}


def _newest(docs: Iterable[Document]) -> dict[str, Document]:
    """The latest revision per product among `docs`."""
    latest: dict[str, Document] = {}
    for doc in docs:
        known = latest.get(doc["product_id"])
        if known is None or doc["version"] > known["version"]:
            latest[doc["product_id"]] = doc
    return latest


class CatalogStore:
    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: str,
        mappings: CategoryMappings,
        clock: Callable[[], datetime],
        claim_lease: timedelta = CLAIM_LEASE,
    ) -> None:
        self._revisions: AsyncCollection[Document] = client[database]["product_revisions"]
        self._claims: AsyncCollection[Document] = client[database]["sku_claims"]
        self._mappings = mappings
        self._now = clock
        self._lease = claim_lease

    def _clock(self) -> datetime:
        # BSON dates hold milliseconds: what we return must equal what a later read returns.
        now = self._now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def ensure_indexes(self) -> None:
        await self._revisions.create_index(
            [("product_id", ASCENDING), ("version", DESCENDING)], name="latest"
        )
        # The search sync polls (updated_at, _id) after its watermark, tombstones included.
        await self._revisions.create_index(
            [("updated_at", ASCENDING), ("_id", ASCENDING)], name="changes"
        )
        # For price lookups only: uniqueness is the claims' job (see the module docstring).
        await self._revisions.create_index([("variants.sku", ASCENDING)], name="variant_sku")
        await self._revisions.create_index([("mapping_pending", ASCENDING)], name="pending")
        await self._claims.create_index([("sku", ASCENDING)], unique=True, name="one_claim")
        await self._claims.create_index([("product_id", ASCENDING)], name="by_product")

    # ---- reads ------------------------------------------------------------------------------

    async def get(self, product_id: str) -> Product:
        return _product(await self._live(product_id))

    async def list_category(
        self, category_id: int, include_descendants: bool, after: str | None, limit: int
    ) -> ProductPage:
        ids = await self._mappings.product_ids(category_id, include_descendants, after, limit + 1)
        page, more = ids[:limit], len(ids) > limit
        latest = _newest(
            await self._revisions.find(_current({"product_id": {"$in": page}})).to_list()
        )
        # A product deleted after the mapping was read is left out of this page.
        products = [
            _product(latest[pid]) for pid in page if pid in latest and not latest[pid]["deleted"]
        ]
        return ProductPage(products, page[-1] if more else None)

    async def prices(self, skus: Iterable[str]) -> dict[str, Price]:
        """The price of every SKU among `skus` that a live product's latest revision has;
        others are absent."""
        wanted = set(price_query(skus))
        if not wanted:
            return {}
        mentioning = await self._revisions.distinct(
            "product_id", {"variants.sku": {"$in": sorted(wanted)}}
        )
        latest = _newest(
            await self._revisions.find(_current({"product_id": {"$in": mentioning}})).to_list()
        )
        prices: dict[str, Price] = {}
        for doc in latest.values():
            if not doc["deleted"]:
                for variant in doc["variants"]:
                    if variant["sku"] in wanted:
                        prices[variant["sku"]] = _price(variant["price"])
        return prices

    # ---- writes -----------------------------------------------------------------------------

    async def create(self, content: ProductContent) -> Product:
        await self._check(content)
        product_id = uuid.uuid4().hex
        now = self._clock()
        revision = revision_document(product_id, 1, content, now, now)
        async with self._claimed(product_id, 1, content.skus):
            await self._revisions.insert_one(revision)
        await self._follow_up(revision)
        return Product(product_id, 1, content, now, now)

    async def replace(
        self, product_id: str, content: ProductContent, if_match: int | None = None
    ) -> Product:
        """Replaces the whole product. `if_match`: the version the caller read; VersionConflict
        if the product is at another one."""
        await self._check(content)
        for _ in range(WRITE_ATTEMPTS):
            current = await self._live(product_id, if_match)
            version, now = int(current["version"]) + 1, self._successor_time(current)
            revision = revision_document(product_id, version, content, current["created_at"], now)
            try:
                async with self._claimed(product_id, version, content.skus):
                    await self._insert(revision)
            except _Superseded:
                continue  # re-read: _live raises VersionConflict if If-Match no longer holds
            await self._follow_up(revision)
            return Product(product_id, version, content, current["created_at"], now)
        raise VersionConflict(None)

    async def delete(self, product_id: str, if_match: int | None = None) -> int:
        """Writes a tombstone; returns its version."""
        for _ in range(WRITE_ATTEMPTS):
            current = await self._live(product_id, if_match)
            version = int(current["version"]) + 1
            tombstone = _tombstone(product_id, version, self._successor_time(current))
            try:
                await self._insert(tombstone)
            except _Superseded:
                continue
            await self._follow_up(tombstone)
            return version
        raise VersionConflict(None)

    async def repair_mappings(self, batch: int = 500) -> int:
        """Writes the MariaDB mapping of products whose write stopped before it (crash, MariaDB
        outage), prunes and frees what those writes left; returns how many were repaired."""
        marked = self._revisions.find({"mapping_pending": True}, {"product_id": 1}).limit(batch)
        repaired = 0
        for product_id in {doc["product_id"] async for doc in marked}:
            try:
                latest = await self._latest(product_id)
                if latest is not None:
                    await self._mappings.write(_mapping(latest))
                    await self._settle(latest)
            except Exception:  # one product's failure must not hold up the others
                log.exception("repairing the category mapping of product %s failed", product_id)
            else:
                repaired += 1
        return repaired

    async def drop_stubs(self, horizon: timedelta = STUB_HORIZON) -> int:
        """Deletes the stubs of versions superseded more than `horizon` ago; returns how many.
        A stub's updated_at is when its own version was written, so it was superseded later."""
        dropped = await self._revisions.delete_many(
            {"superseded": True, "updated_at": {"$lt": self._clock() - horizon}}
        )
        return int(dropped.deleted_count)

    # ---- internals --------------------------------------------------------------------------

    async def _latest(self, product_id: str) -> Document | None:
        found = (
            await self._revisions.find({"product_id": product_id})
            .sort("version", DESCENDING)
            .limit(1)
            .to_list()
        )
        return found[0] if found else None

    async def _live(self, product_id: str, if_match: int | None = None) -> Document:
        doc = await self._latest(check_product_id(product_id))
        if doc is None or doc["deleted"]:
            raise ProductNotFound(product_id)
        if if_match is not None and doc["version"] != if_match:
            raise VersionConflict(doc["version"])
        return doc

    def _successor_time(self, current: Document) -> datetime:
        # Never before the previous revision, even if this host's clock is behind: a poll on
        # updated_at must meet a product's revisions in version order.
        previous: datetime = current["updated_at"]
        return max(self._clock(), previous)

    async def _check(self, content: ProductContent) -> None:
        validate_content(content)
        missing = await self._mappings.missing_categories(content.category_ids)
        if missing:
            raise UnknownCategory(missing)

    async def _insert(self, revision: Document) -> None:
        try:
            await self._revisions.insert_one(revision)
        except DuplicateKeyError as exc:
            raise _Superseded from exc

    async def _follow_up(self, revision: Document) -> None:
        """The steps after a revision is stored. A failure here does not fail the write: the
        revision stays marked pending and repair_mappings() finishes the job."""
        try:
            await self._mappings.write(_mapping(revision))
            await self._settle(revision)
        except Exception:
            log.warning(
                "product %s v%s stored; its category mapping is left to the repair sweep",
                revision["product_id"],
                revision["version"],
                exc_info=True,
            )

    async def _settle(self, revision: Document) -> None:
        """After the mapping of `revision` is written: unmark it, prune older revisions, free
        the claims up to its version on SKUs it does not have."""
        product_id, version = revision["product_id"], revision["version"]
        # Only these idempotent steps ever change a stored revision, so FerretDB's unisolated
        # updates can lose nothing that matters: at worst a stub keeps its content until the
        # next write of the product.
        await self._revisions.update_one(
            {"_id": revision["_id"]}, {"$unset": {"mapping_pending": ""}}
        )
        # Older revisions become stubs rather than being deleted: a deleted revision would free
        # its _id, and a writer that read the version before it could then insert it again.
        await self._revisions.update_many(
            {"product_id": product_id, "version": {"$lt": version}, "superseded": {"$ne": True}},
            {"$set": {"superseded": True}, "$unset": dict.fromkeys(_STUBBED, "")},
        )
        # Newer writes' claims (version > ours) are theirs to settle. Deleting by _id removes
        # exactly the claim read, never one made since.
        dropped = [
            claim["_id"]
            async for claim in self._claims.find(
                {"product_id": product_id, "version": {"$lte": version}}
            )
            if claim["sku"] not in _skus(revision)
        ]
        if dropped:
            await self._claims.delete_many({"_id": {"$in": dropped}})

    @asynccontextmanager
    async def _claimed(
        self, product_id: str, version: int, skus: Collection[str]
    ) -> AsyncIterator[None]:
        """Holds claims on `skus` for the write that makes the product `version`.

        If the write is known not to have landed (a SKU is taken, or another write came first),
        the claims it created are deleted again. On any other failure the outcome is unknown,
        so they stay: valid if the revision landed, stale after the lease if it did not."""
        created: list[str] = []
        try:
            taken: list[str] = []
            for sku in sorted(skus):  # one order everywhere: two racing writers meet on one SKU
                outcome, claim_id = await self._claim(sku, product_id, version)
                if outcome == "created":
                    created.append(claim_id)
                elif outcome == "theirs":
                    taken.append(sku)
            if taken:
                raise DuplicateSku(taken)
            yield
        except (DuplicateSku, _Superseded):
            if created:
                await self._claims.delete_many({"_id": {"$in": created}})
            raise

    async def _claim(
        self, sku: str, product_id: str, version: int
    ) -> tuple[Literal["created", "ours", "theirs"], str]:
        """Claims `sku` for this write: "created" (with the new claim's id), "ours" (the
        product holds a valid claim already), or "theirs" (another product does)."""
        for _ in range(CLAIM_ROUNDS):
            now = self._clock()
            claim_id = uuid.uuid4().hex
            try:
                await self._claims.insert_one(
                    {
                        "_id": claim_id,
                        "sku": sku,
                        "product_id": product_id,
                        "version": version,
                        "claimed_at": now,
                    }
                )
                return "created", claim_id
            except DuplicateKeyError:
                pass
            held = await self._claims.find_one({"sku": sku})
            if held is None:
                continue  # freed meanwhile
            owner = await self._latest(held["product_id"])
            stale = claim_is_stale(
                SkuClaim(sku, held["product_id"], held["version"], held["claimed_at"]),
                None if owner is None else Owner(owner["version"], owner["deleted"], _skus(owner)),
                now,
                self._lease,
            )
            if not stale:
                return ("ours" if held["product_id"] == product_id else "theirs"), held["_id"]
            # Stale, even if it is our own (say, a SKU this product dropped and now takes
            # back): delete exactly that claim and compete for the SKU again.
            await self._claims.delete_one({"_id": held["_id"]})
        return "theirs", ""  # it kept changing hands: someone else is claiming it right now
