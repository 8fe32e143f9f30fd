"""The catalog: product revisions in the product service's MongoDB database (FerretDB 1.24 in
the local stack), their committed state in its MariaDB (projection.py).

Every MongoDB operation here is a key operation: an insert, or a find, update or delete by a
bare `_id` equality. FerretDB serves nothing else without reading the whole collection (any
other filter, `_id` with another field, `_id $in`, a sort), and MongoDB serves these from its
`_id` index too. Lists, prices and coordination live in MariaDB, which has indexes and
transactions; FerretDB 1.24 makes only inserts atomic.

- Each product version is its own document in `product_revisions`, `_id` = "<product_id>:
  <version>". A write reads the current revision (version n) and inserts revision n + 1: the
  unique `_id` lets exactly one concurrent writer have it. With If-Match the losers get
  VersionConflict; without, they re-read and retry. Every revision carries `version` (1 on
  create, +1 on every write) and `updated_at` (UTC, milliseconds, never earlier than the
  previous revision's). The MongoDB revision is the source of truth, category ids included.
- A delete writes a tombstone revision {product_id, version, deleted: true, updated_at}.
- Committing: after its insert, a write commits the version in MariaDB in one transaction
  (the head, listing rows, prices, freed claims, its `product_changed` event; see
  projection.py). Before the insert it records itself as pending; a crash or a MariaDB
  failure between insert and commit leaves that record, and `repair_writes()` (run
  periodically) commits the revision by key. So a write succeeds once its revision is stored;
  listings, prices and search reflect it at once or after the next repair, reads at once.
- Reading: the head (MariaDB, by primary key) names the committed version and carries its
  copy (committed_documents.py), and says whether a newer write is pending; with none, the
  copy is the product, so a read and a category page ask MongoDB nothing. Otherwise the
  revision of the committed version and the one after it are read by `_id` together, so a
  stored but not yet committed revision (a write in flight, or one the repair will finish) is
  found too.
- Once committed, older revisions are cut down to stubs {_id, product_id, version, deleted,
  updated_at, superseded: true}, and dropped a day later (`drop_stubs()`, by key): until
  then a writer that read the version before cannot insert it again.
- Money is integer minor units with a currency code; never a float, never Decimal128 (FerretDB
  1.24 drops the connection when it receives one).
- A SKU belongs to one product: a write claims its SKUs in MariaDB (sku_claims.py) before it
  inserts its revision; its commit frees the ones it dropped; a claim left by a failed or
  crashed write is taken over when `claim_is_stale` says so: at once if the owner's current
  revision moved past it, else after CLAIM_LEASE. The one gap: a write stalled for longer than
  the lease between claiming and inserting can race a takeover and duplicate a SKU.

Revision layout (what the search sync reads by key): `_id`, `product_id`, `version`,
`deleted`, `updated_at`, and unless deleted `created_at`, `title`, `description`, `brand` (or
null), `attributes`, `variants` [{`sku`, `price` {`amount_minor`, `currency`}, `attributes`}],
`images`, `category_ids`, `primary_category_id`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.db.transactions import retry_transaction
from commerce_services.product.catalog import pending_writes, sku_claims
from commerce_services.product.catalog.model import (
    CLAIM_LEASE,
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
from commerce_services.product.catalog.pending_writes import PendingWrites
from commerce_services.product.catalog.projection import CatalogProjection, Commit
from commerce_services.product.catalog.revision_stubs import RevisionStubs
from commerce_services.product.catalog.sku_claims import SkuClaims
from commerce_services.product.catalog.sku_prices import SkuPrices

log = logging.getLogger(__name__)

Document = dict[str, Any]

# A stub may go once its version was superseded this long ago: only a writer that read the
# version before it, and stalled ever since, could insert it again.
STUB_HORIZON = timedelta(days=1)
# A pending write younger than this is most likely still on its way to its commit.
REPAIR_GRACE = timedelta(seconds=5)
WRITE_ATTEMPTS = 5  # without If-Match, a write re-reads this often before giving up
READ_ATTEMPTS = 5  # a read that met a head moving under it reads again
CLAIM_ROUNDS = 5  # a SKU whose claim changes hands this often while we look is taken
# Secondary indexes of earlier layouts: nothing queries them any more, and every insert paid
# for them.
_OBSOLETE_INDEXES = ("latest", "changes", "variant_sku", "pending")


@dataclass(frozen=True)
class ProductPage:
    products: list[Product]
    next_after: str | None  # the last product id when more may follow


@dataclass(frozen=True)
class Current:
    """A product's newest stored revision (None: none stored) and its committed version."""

    revision: Document | None
    committed: int


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


def tombstone_document(product_id: str, version: int, updated_at: datetime) -> Document:
    return {
        "_id": f"{product_id}:{version}",
        "product_id": product_id,
        "version": version,
        "deleted": True,
        "updated_at": updated_at,
    }


# What a superseded revision loses: all but _id, product_id, version, deleted, updated_at.
_STUBBED = (
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


def _skus(doc: Document | None) -> frozenset[str]:
    return frozenset(v["sku"] for v in (doc or {}).get("variants", ()))


def _live_content(doc: Document | None) -> bool:
    return doc is not None and not doc.get("superseded") and not doc["deleted"]


class CatalogStore:
    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: str,
        engine: AsyncEngine,
        clock: Callable[[], datetime],
        *,
        reads: AsyncEngine | None = None,
        projection: CatalogProjection | None = None,
        claim_lease: timedelta = CLAIM_LEASE,
    ) -> None:
        """`reads`: the engine of single-statement reads (db/engine.py's `reading_engine`),
        `engine`'s when not given; `projection`: the MariaDB side of commits (tests pass one
        that fails)."""
        reads = reads or engine
        self._revisions: AsyncCollection[Document] = client[database]["product_revisions"]
        self._engine = engine
        self._projection = projection or CatalogProjection(engine, clock, reads)
        self._claims = SkuClaims(engine)
        self._pending = PendingWrites(engine)
        self._stubs = RevisionStubs(engine)
        self._prices = SkuPrices(reads)
        self._now = clock
        self._lease = claim_lease
        self._copy_cursor: str | None = ""  # where copy_documents goes on; None: done

    def _clock(self) -> datetime:
        # BSON dates hold milliseconds: what we return must equal what a later read returns.
        now = self._now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def ensure_layout(self) -> None:
        """Drops the secondary indexes earlier layouts made on `product_revisions`."""
        try:
            existing = await self._revisions.index_information()
        except OperationFailure:  # no collection yet
            return
        for name in _OBSOLETE_INDEXES:
            if name in existing:
                await self._revisions.drop_index(name)

    # ---- reads ------------------------------------------------------------------------------

    async def get(self, product_id: str) -> Product:
        newest = await self._newest(check_product_id(product_id))
        if not _live_content(newest):
            raise ProductNotFound(product_id)
        assert newest is not None
        return _product(newest)

    async def _newest(self, product_id: str) -> Document | None:
        """The product's newest stored revision (a tombstone once deleted; None: none)."""
        committed = await self._projection.committed(product_id)
        if committed is not None and not committed.newer_pending:
            # No write past the committed version has begun (a write records itself as pending
            # before it stores its revision, and only its commit forgets it): the committed
            # version is the newest, and its copy came with the head.
            if committed.deleted:
                return tombstone_document(product_id, committed.version, self._now())
            if committed.document is not None:
                return committed.document
        return (await self.current(product_id)).revision

    async def list_category(
        self, category_id: int, include_descendants: bool, after: str | None, limit: int
    ) -> ProductPage:
        listed = await self._projection.page(category_id, include_descendants, after, limit + 1)
        page, more = listed[:limit], len(listed) > limit
        # Copies come with the page; products committed before the copies are read by key.
        uncopied = [row for row in page if row.document is None]
        by_key = dict(
            zip(
                (row.product_id for row in uncopied),
                await asyncio.gather(*(self._by_key(r.product_id, r.version) for r in uncopied)),
                strict=True,
            )
        )
        products = []
        for row in page:
            doc = row.document if row.document is not None else by_key[row.product_id]
            if not _live_content(doc):
                # Changed since the page was read: its newest revision decides.
                doc = (await self.current(row.product_id)).revision
            if _live_content(doc):
                assert doc is not None
                products.append(_product(doc))
        return ProductPage(products, page[-1].product_id if more else None)

    async def prices(self, skus: Iterable[str]) -> dict[str, Price]:
        """The committed price of every SKU among `skus` that a live product has; others
        are absent."""
        return await self._prices.prices(price_query(skus))

    async def current(self, product_id: str) -> Current:
        """The product's newest stored revision: the committed head (MariaDB), then by key
        the revision of that version and the one after it, read together, and further on
        while there are more (writes stored but not committed yet)."""
        previous: int | None = None
        for _ in range(READ_ATTEMPTS):
            head = await self._projection.head(product_id)
            if head is not None and head.deleted:
                tombstone = tombstone_document(product_id, head.version, self._now())
                return Current(tombstone, head.version)
            committed = head.version if head is not None else 0
            at, after = await asyncio.gather(
                self._by_key(product_id, committed) if committed else _none(),
                self._by_key(product_id, committed + 1),
            )
            if after is not None:
                newest, version = after, committed + 1
                while (later := await self._by_key(product_id, version + 1)) is not None:
                    newest, version = later, version + 1
                if not newest.get("superseded"):
                    return Current(newest, committed)
            elif committed == 0:
                return Current(None, 0)
            elif at is not None and not at.get("superseded"):
                return Current(at, committed)
            elif at is None and committed == previous:
                log.error("product %s v%s is committed but not stored", product_id, committed)
                return Current(None, committed)
            previous = committed  # a commit moved the head between the reads: read again
        raise VersionConflict(None)

    # ---- writes -----------------------------------------------------------------------------

    async def create(self, content: ProductContent) -> Product:
        await self._check(content)
        product_id = uuid.uuid4().hex
        now = self._clock()
        await self._write(revision_document(product_id, 1, content, now, now), content.skus)
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
                await self._write(revision, content.skus, read=current)
            except _Superseded:
                continue  # re-read: _live raises VersionConflict if If-Match no longer holds
            return Product(product_id, version, content, current["created_at"], now)
        raise VersionConflict(None)

    async def delete(self, product_id: str, if_match: int | None = None) -> int:
        """Writes a tombstone; returns its version."""
        for _ in range(WRITE_ATTEMPTS):
            current = await self._live(product_id, if_match)
            version = int(current["version"]) + 1
            try:
                await self._write(
                    tombstone_document(product_id, version, self._successor_time(current)), ()
                )
            except _Superseded:
                continue
            return version
        raise VersionConflict(None)

    async def repair_writes(self, batch: int = 500) -> int:
        """Finishes the writes that stopped between storing their revision and committing it
        (a crash, a MariaDB outage): commits each product's newest revision by key. A pending
        write that never stored its revision is forgotten after the claim lease, with its
        claims. Returns how many products it committed. Indexed rows and keys only."""
        now = self._now()
        due = await self._pending.due(now - REPAIR_GRACE, batch)
        repaired = 0
        for product_id in dict.fromkeys(w.product_id for w in due):
            try:
                current = await self.current(product_id)
                newest = current.revision
                if newest is not None and newest["version"] > current.committed:
                    await self._projection.commit(Commit.of(newest))
                    await self._stub_predecessors(newest, current.committed)
                    repaired += 1
                stored = 0 if newest is None else int(newest["version"])
                for write in (w for w in due if w.product_id == product_id):
                    if write.version <= stored:
                        await self._pending.forget(product_id, write.version)
                    elif now - write.started_at > self._lease:  # it never stored its revision
                        await self._claims.drop_all_but(product_id, write.version, _skus(newest))
                        await self._pending.forget(product_id, write.version)
            except Exception:  # one product's failure must not hold up the others
                log.exception("repairing the write of product %s failed", product_id)
        return repaired

    async def complete_projection(self, batch: int = 500) -> int:
        """Titles, prices and SKU claims of the products committed before they were projected
        (migration 0006), by key; returns how many were completed. Run until it returns 0."""
        completed, after = 0, ""
        while rows := await self._projection.untitled(after, batch):
            for product_id, version in rows:
                doc = await self._by_key(product_id, version)
                if doc is None:
                    log.error("product %s v%s is committed but not stored", product_id, version)
                elif _live_content(doc) and await self._projection.complete(Commit.of(doc)):
                    completed += 1
            after = rows[-1][0]
        return completed

    async def copy_documents(self, batch: int = 500, batches: int = 20) -> int:
        """Gives products committed before migration 0007 their copy, walking the heads by id
        (primary-key ranges of `batch`, at most `batches` per call) from where the last call
        stopped; past the end it does nothing until the process restarts. Returns how many
        were copied."""
        copied = 0
        for _ in range(batches):
            if self._copy_cursor is None:
                break
            missing, self._copy_cursor = await self._projection.uncopied(self._copy_cursor, batch)
            for product_id, version in missing:
                doc = await self._by_key(product_id, version)
                if _live_content(doc):
                    assert doc is not None
                    copied += await self._projection.copy(Commit.of(doc))
        return copied

    async def drop_stubs(self, horizon: timedelta = STUB_HORIZON, batch: int = 1000) -> int:
        """Deletes, by key, the stubs of versions superseded more than `horizon` ago; returns
        how many."""
        due = await self._stubs.due(self._now() - horizon, batch)
        for revision_id in due:
            await self._revisions.delete_one({"_id": revision_id})
        await self._stubs.forget(due)
        return len(due)

    # ---- internals --------------------------------------------------------------------------

    async def _by_key(self, product_id: str, version: int) -> Document | None:
        return await self._revisions.find_one({"_id": f"{product_id}:{version}"})

    async def _live(self, product_id: str, if_match: int | None = None) -> Document:
        doc = await self._newest(check_product_id(product_id))
        if doc is None or doc["deleted"]:
            raise ProductNotFound(product_id)
        if if_match is not None and doc["version"] != if_match:
            raise VersionConflict(doc["version"])
        return doc

    def _successor_time(self, current: Document) -> datetime:
        # Never before the previous revision, even if this host's clock is behind.
        previous: datetime = current["updated_at"]
        return max(self._clock(), previous)

    async def _check(self, content: ProductContent) -> None:
        validate_content(content)
        missing = await self._projection.missing_categories(content.category_ids)
        if missing:
            raise UnknownCategory(missing)

    async def _write(
        self, revision: Document, skus: Collection[str], read: Document | None = None
    ) -> None:
        """Records the write as pending, claims its SKUs, stores the revision, then commits
        it (`read`: the revision the writer read, whose listing and prices it may keep).
        DuplicateSku or _Superseded: nothing was stored. A failure after the insert is left to
        the repair sweep: the write has happened."""
        product_id, version = revision["product_id"], revision["version"]
        async with self._claimed(product_id, version, skus):
            try:
                await self._revisions.insert_one(revision)
            except DuplicateKeyError as exc:
                raise _Superseded from exc
        try:
            superseded = await self._projection.commit(Commit.of(revision, read))
        except Exception:
            log.warning(
                "product %s v%s stored; its commit is left to the repair sweep",
                product_id,
                version,
                exc_info=True,
            )
            return
        if superseded is not None:
            await self._stub_predecessors(revision, superseded)

    async def _stub_predecessors(self, revision: Document, committed_before: int) -> None:
        """Cuts the revisions a commit superseded down to stubs, by key. Only this idempotent
        step ever changes a stored revision, so FerretDB's unisolated updates lose nothing
        that matters; one that fails leaves a whole old revision until it is dropped."""
        product_id = revision["product_id"]
        for version in range(max(committed_before, 1), revision["version"]):
            try:
                await self._revisions.update_one(
                    {"_id": f"{product_id}:{version}"},
                    {"$set": {"superseded": True}, "$unset": dict.fromkeys(_STUBBED, "")},
                )
            except Exception:
                log.warning("stubbing %s:%s failed", product_id, version, exc_info=True)

    @retry_transaction
    async def _start(
        self, product_id: str, version: int, skus: Collection[str], now: datetime
    ) -> dict[str, SkuClaim]:
        """One transaction: the write is recorded as pending and claims its free SKUs."""
        async with self._engine.begin() as conn:
            await pending_writes.start_in(conn, product_id, version, now)
            return await sku_claims.claim_in(conn, product_id, version, skus, now)

    @asynccontextmanager
    async def _claimed(
        self, product_id: str, version: int, skus: Collection[str]
    ) -> AsyncIterator[None]:
        """Records the write that makes the product `version` as pending and holds claims on
        `skus` for it.

        If the write is known not to have landed (a SKU is taken, or another write came first),
        the claims it created are freed again. On any other failure the outcome is unknown, so
        they stay: valid if the revision landed, stale after the lease if it did not."""
        now = self._now()
        held = await self._start(product_id, version, skus, now)
        created = [s for s, c in held.items() if c == SkuClaim(s, product_id, version, now)]
        try:
            taken: list[str] = []
            for sku in sorted(skus):
                claim = held.get(sku)
                if claim is not None and claim.product_id == product_id:
                    continue  # this write's, or the product's since an earlier write
                outcome = await self._claim(sku, product_id, version, claim)
                if outcome == "created":
                    created.append(sku)
                elif outcome == "theirs":
                    taken.append(sku)
            if taken:
                raise DuplicateSku(taken)
            yield
        except (DuplicateSku, _Superseded):
            await self._claims.drop(product_id, version, created)
            raise

    async def _claim(
        self, sku: str, product_id: str, version: int, held: SkuClaim | None
    ) -> Literal["created", "ours", "theirs"]:
        """Claims `sku`, which another product's claim `held` holds (None: nobody's any
        more): "created" when it was stale and this write took it over, "ours", or "theirs"
        (another product holds it validly)."""
        for _ in range(CLAIM_ROUNDS):
            now = self._now()
            if held is not None:
                owner = (await self.current(held.product_id)).revision
                stale = claim_is_stale(
                    held,
                    None
                    if owner is None
                    else Owner(int(owner["version"]), bool(owner["deleted"]), _skus(owner)),
                    now,
                    self._lease,
                )
                if not stale:
                    return "ours" if held.product_id == product_id else "theirs"
                # Stale: delete exactly that claim and compete for the SKU again.
                await self._claims.take_back(held)
            found = await self._claims.insert(sku, product_id, version, now)
            if found == "created":
                return "created"
            held = found
        return "theirs"  # it kept changing hands: someone else is claiming it right now


async def _none() -> None:
    return None
