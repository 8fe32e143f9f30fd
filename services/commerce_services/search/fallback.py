"""Degraded search straight from the catalog in MongoDB, for when the engine is unreachable.

Slow (FerretDB scans the collection for every filter but _id), newest first whatever the sort
asked, title words matched as case-insensitive substrings instead of relevance and typos, no
facets. It answers from the latest live revision of each product only.
"""

from __future__ import annotations

import re
from typing import Any

from pymongo import DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.changes import moment, revision_key
from commerce_services.search.documents import (
    Revision,
    Upsert,
    category_ids_needed,
    index_op,
    skus_needed,
)
from commerce_services.search.engine import Hit, SearchPage, SearchQuery

_PROJECTION = {"images": 0, "description": 0, "mapping_pending": 0}


def typed_values(values: tuple[str, ...]) -> list[object]:
    """A query-string attribute value as every type the catalog may have stored it in."""
    typed: list[object] = []
    for value in values:
        typed.append(value)
        if value in ("true", "false"):
            typed.append(value == "true")
        elif re.fullmatch(r"-?[0-9]{1,18}", value):
            typed.append(int(value))
    return typed


def mongo_filter(query: SearchQuery, category_ids: list[int] | None) -> dict[str, Any]:
    """`category_ids`: the category's subtree when the query filters on one."""
    clauses: list[dict[str, Any]] = [{"superseded": {"$ne": True}}, {"deleted": False}]
    for word in (query.text or "").split():
        clauses.append({"title": {"$regex": re.escape(word), "$options": "i"}})
    if category_ids is not None:
        clauses.append({"category_ids": {"$in": category_ids}})
    if query.brand is not None:
        clauses.append({"brand": query.brand})
    if query.price_min is not None or query.price_max is not None:
        bounds = {"$gte": query.price_min, "$lte": query.price_max}
        price = {k: v for k, v in bounds.items() if v is not None}
        # FerretDB 1.24 finds nothing with a dotted path inside $elemMatch; on an array each
        # bound may hold for another variant, so search() checks the page again.
        clauses.append({"variants.price.amount_minor": price})
    for name, values in query.attributes:
        accepted = {"$in": typed_values(values)}
        clauses.append(
            {
                "$or": [
                    {f"attributes.{name}": accepted},
                    {f"variants.attributes.{name}": accepted},
                ]
            }
        )
    return {"$and": clauses}


class MongoFallback:
    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], database: str, reads: CatalogReads
    ) -> None:
        self._revisions: AsyncCollection[dict[str, Any]] = client[database]["product_revisions"]
        self._reads = reads

    async def search(self, query: SearchQuery, after: list[Any] | None) -> SearchPage:
        """`after`: [updated_at ms, revision id] of the last hit of the previous page."""
        subtree = None
        if query.category is not None:
            subtree = await self._reads.subtree(query.category)
        found = mongo_filter(query, subtree)
        if after is not None:
            since = moment(int(after[0]))
            found["$and"].append(
                {
                    "$or": [
                        {"updated_at": {"$lt": since}},
                        {"updated_at": since, "_id": {"$lt": str(after[1])}},
                    ]
                }
            )
        raw = await self._revisions.find(
            found,
            _PROJECTION,
            sort=[("updated_at", DESCENDING), ("_id", DESCENDING)],
            limit=query.size + 1,
        ).to_list()
        page = raw[: query.size]
        live = [r for r in await self._latest_live(page) if _priced_within(r, query)]
        categories = await self._reads.categories_with_ancestors(category_ids_needed(live))
        sellable = await self._reads.sellable(skus_needed(live))
        hits = []
        for revision in live:
            op = index_op({**revision, "description": ""}, categories, sellable)
            assert isinstance(op, Upsert)  # live revisions are neither stubs nor tombstones
            hits.append(_hit(op.document))
        last = revision_key(page[-1]) if len(raw) > query.size else None
        return SearchPage(
            hits=hits,
            total=len(hits),
            total_is_exact=last is None and after is None,
            facets=None,
            next_after=[last.updated_at_ms, last.revision_id] if last else None,
        )

    async def suggest(self, prefix: str, size: int) -> list[str]:
        found = self._revisions.find(
            {
                "superseded": {"$ne": True},
                "deleted": False,
                "title": {"$regex": "^" + re.escape(prefix), "$options": "i"},
            },
            {"title": 1, "product_id": 1, "version": 1},
            sort=[("updated_at", DESCENDING)],
            limit=size * 4,
        )
        titles = dict.fromkeys([doc["title"] async for doc in found])
        return list(titles)[:size]

    async def _latest_live(self, page: list[Revision]) -> list[Revision]:
        """The revisions of `page` that are still their product's latest: between a write's
        insert and the stubbing of its predecessor, both are live-looking."""
        if not page:
            return []
        ids = sorted({str(r["product_id"]) for r in page})
        newest: dict[str, int] = {}
        async for doc in self._revisions.find(
            {"product_id": {"$in": ids}}, {"product_id": 1, "version": 1}
        ):
            pid = str(doc["product_id"])
            newest[pid] = max(newest.get(pid, 0), int(doc["version"]))
        return [r for r in page if int(r["version"]) >= newest[str(r["product_id"])]]


def _priced_within(revision: Revision, query: SearchQuery) -> bool:
    """Whether one variant's price is within both bounds."""
    low = query.price_min if query.price_min is not None else 0
    high = query.price_max if query.price_max is not None else 2**63
    return any(low <= int(v["price"]["amount_minor"]) <= high for v in revision["variants"])


def _hit(document: dict[str, Any]) -> Hit:
    return Hit(
        product_id=document["product_id"],
        title=document["title"],
        brand=document["brand"],
        price_min=document["price_min"],
        price_max=document["price_max"],
        currency=document["currency"],
        breadcrumbs=document["breadcrumbs"],
        available=document["available"],
    )
