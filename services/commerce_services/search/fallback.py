"""Degraded search, for when the engine is unreachable: answered from indexed paths only, within
a budget, never by scanning the catalog.

Candidates come from the product service's MariaDB in product-id order (keyset): the title's
FULLTEXT index for the words (each a word prefix, three letters or more), the listing rows of
the category and its subtree, or just the committed products; each candidate's revision is
read from MongoDB by key and checked against the other filters (brand, price, attributes). A
page stops at `size` hits, after `max_examined` candidates or when the time budget is spent,
and then carries a cursor to go on: degraded pages may hold fewer hits than asked. No
relevance, no typo tolerance, no facets, product-id order whatever the sort asked; suggestions
are titles by prefix (the title index).
"""

from __future__ import annotations

import re
import time
from typing import Any

from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.changes import RevisionStore
from commerce_services.search.documents import (
    Revision,
    Upsert,
    attribute_value,
    category_ids_needed,
    index_op,
    skus_needed,
)
from commerce_services.search.engine import Hit, SearchPage, SearchQuery

# after[0] of a degraded cursor: it pages by product id, after[1] being the last one examined.
KEYSET = 1
MIN_WORD = 3  # MariaDB's innodb_ft_min_token_size: shorter words are not in the index
_WORD = re.compile(r"[^\W_]+")


def title_words(text: str) -> list[str]:
    """The words of a query the title index can look up (letters and digits, 3 or more)."""
    return [w for w in _WORD.findall(text.lower()) if len(w) >= MIN_WORD]


def matches(revision: Revision, query: SearchQuery) -> bool:
    """Whether a live revision passes the filters the candidates' index did not apply (pure):
    the brand exactly, a variant priced within both bounds, every attribute name with one of
    its values (on the product or a variant)."""
    if query.brand is not None and revision.get("brand") != query.brand:
        return False
    low = query.price_min if query.price_min is not None else 0
    high = query.price_max if query.price_max is not None else 2**63
    if not any(low <= int(v["price"]["amount_minor"]) <= high for v in revision["variants"]):
        return False
    for name, accepted in query.attributes:
        values = (
            {attribute_value(revision["attributes"][name])}
            if name in revision["attributes"]
            else set()
        )
        values |= {
            attribute_value(v["attributes"][name])
            for v in revision["variants"]
            if name in v["attributes"]
        }
        if not values & set(accepted):
            return False
    return True


def _filters_left(query: SearchQuery) -> bool:
    return bool(
        query.brand is not None
        or query.price_min is not None
        or query.price_max is not None
        or query.attributes
    )


class MongoFallback:
    def __init__(
        self,
        revisions: RevisionStore,
        reads: CatalogReads,
        *,
        budget_s: float = 1.0,
        max_examined: int = 500,
    ) -> None:
        self._revisions = revisions
        self._reads = reads
        self._budget_s = budget_s
        self._max_examined = max_examined

    async def search(self, query: SearchQuery, after: list[Any] | None) -> SearchPage:
        """`after`: [KEYSET, the last product id examined] of the previous page."""
        deadline = time.monotonic() + self._budget_s
        cursor = str(after[1]) if after is not None and after[0] == KEYSET else ""
        words = title_words(query.text or "")
        subtree = None if query.category is None else await self._reads.subtree(query.category)
        if (query.text and not words) or subtree == []:
            return SearchPage([], 0, after is None, None, None)
        chunk = max(query.size * 4, 40) if _filters_left(query) else query.size
        found: list[Revision] = []
        examined, exhausted = 0, False
        while len(found) < query.size and examined < self._max_examined:
            if time.monotonic() > deadline:
                break
            candidates = await self._reads.candidates(words, subtree, cursor, chunk)
            revisions = await self._revisions.by_keys([f"{p}:{v}" for p, v in candidates])
            for (product_id, _), revision in zip(candidates, revisions, strict=True):
                cursor, examined = product_id, examined + 1
                if (
                    revision is not None
                    and not revision.get("superseded")
                    and not revision["deleted"]
                    and matches(revision, query)
                ):
                    found.append(revision)
                    if len(found) == query.size:
                        break
            else:
                exhausted = len(candidates) < chunk
                if exhausted:
                    break
        categories = await self._reads.categories_with_ancestors(category_ids_needed(found))
        sellable = await self._reads.sellable(skus_needed(found))
        hits = []
        for revision in found:
            op = index_op({**revision, "description": ""}, categories, sellable)
            assert isinstance(op, Upsert)  # live revisions are neither stubs nor tombstones
            hits.append(_hit(op.document))
        return SearchPage(
            hits=hits,
            total=len(hits),
            total_is_exact=exhausted and after is None,
            facets=None,
            next_after=None if exhausted else [KEYSET, cursor],
        )

    async def suggest(self, prefix: str, size: int) -> list[str]:
        return await self._reads.titles_starting(prefix, size)


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
