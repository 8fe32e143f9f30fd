"""The query DSL a SearchQuery becomes, and how a response reads back (pure). Elasticsearch
and OpenSearch share this DSL."""

from __future__ import annotations

import itertools
from typing import Any

from commerce_services.search.engine import (
    Bucket,
    Facets,
    Hit,
    PriceBucket,
    SearchPage,
    SearchQuery,
    Sort,
)

# Title above brand above description.
FIELDS = ("title^3", "brand^2", "description")
# Price-range facet edges in minor units (10, 25, 50, 100, 250, 500 in a 2-digit currency).
PRICE_EDGES = (1_000, 2_500, 5_000, 10_000, 25_000, 50_000)
FACET_SIZE = 50
ATTRIBUTE_FACET_SIZE = 200
SOURCE = (
    "product_id",
    "title",
    "brand",
    "price_min",
    "price_max",
    "currency",
    "breadcrumbs",
    "available",
)

# product_id breaks ties, so search_after never skips or repeats a hit with equal sort keys.
_SORTS: dict[Sort, list[dict[str, str]]] = {
    "relevance": [{"_score": "desc"}, {"product_id": "asc"}],
    "price_asc": [{"price_min": "asc"}, {"product_id": "asc"}],
    "price_desc": [{"price_max": "desc"}, {"product_id": "asc"}],
    "newest": [{"created_at": "desc"}, {"product_id": "asc"}],
}


def text_query(text: str) -> dict[str, Any]:
    return {
        "bool": {
            "should": [
                # Every word in one field, each word with typos allowed (AUTO: 1 edit from 3
                # letters, 2 from 6); the first letter must match, which keeps the expansion
                # small on a large index.
                {
                    "multi_match": {
                        "query": text,
                        "fields": list(FIELDS),
                        "type": "best_fields",
                        "operator": "and",
                        "fuzziness": "AUTO",
                        "prefix_length": 1,
                    }
                },
                # Words spread over fields ("acme mug": brand + title), spelled right.
                {
                    "multi_match": {
                        "query": text,
                        "fields": list(FIELDS),
                        "type": "cross_fields",
                        "operator": "and",
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def filters(query: SearchQuery) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if query.category is not None:
        found.append({"term": {"category_ancestors": query.category}})
    if query.brand is not None:
        found.append({"term": {"brand.keyword": query.brand}})
    if query.price_min is not None or query.price_max is not None:
        bounds = {"gte": query.price_min, "lte": query.price_max}
        found.append({"range": {"prices": {k: v for k, v in bounds.items() if v is not None}}})
    for name, values in query.attributes:
        found.append({"terms": {"facets": [f"{name}={value}" for value in values]}})
    return found


def aggregations() -> dict[str, Any]:
    edges = (None, *PRICE_EDGES, None)
    ranges = [
        {k: v for k, v in (("from", low), ("to", high)) if v is not None}
        for low, high in itertools.pairwise(edges)
    ]
    return {
        "categories": {"terms": {"field": "category_ids", "size": FACET_SIZE}},
        "brands": {"terms": {"field": "brand.keyword", "size": FACET_SIZE}},
        "attributes": {"terms": {"field": "facets", "size": ATTRIBUTE_FACET_SIZE}},
        "prices": {"range": {"field": "prices", "ranges": ranges}},
    }


def search_body(query: SearchQuery, after: list[Any] | None) -> dict[str, Any]:
    must = text_query(query.text) if query.text else {"match_all": {}}
    body: dict[str, Any] = {
        "query": {"bool": {"must": [must], "filter": filters(query)}},
        "sort": _SORTS[query.sort],
        # One more than asked: whether a next page exists without a second request.
        "size": query.size + 1,
        "_source": list(SOURCE),
    }
    if after is None:
        body["aggs"] = aggregations()
    else:
        body["search_after"] = after
    return body


def _buckets(aggregation: dict[str, Any]) -> list[Bucket]:
    return [Bucket(str(b["key"]), int(b["doc_count"])) for b in aggregation["buckets"]]


def parse_facets(aggs: dict[str, Any]) -> Facets:
    attributes: dict[str, list[Bucket]] = {}
    for bucket in _buckets(aggs["attributes"]):
        name, _, value = bucket.value.partition("=")
        attributes.setdefault(name, []).append(Bucket(value, bucket.count))
    prices = [
        PriceBucket(
            int(b["from"]) if "from" in b else None,
            int(b["to"]) if "to" in b else None,
            int(b["doc_count"]),
        )
        for b in aggs["prices"]["buckets"]
    ]
    return Facets(_buckets(aggs["categories"]), _buckets(aggs["brands"]), attributes, prices)


def _hit(source: dict[str, Any]) -> Hit:
    return Hit(
        product_id=source["product_id"],
        title=source["title"],
        brand=source.get("brand"),
        price_min=int(source["price_min"]),
        price_max=int(source["price_max"]),
        currency=list(source["currency"]),
        breadcrumbs=list(source["breadcrumbs"]),
        available=bool(source["available"]),
    )


def parse_response(query: SearchQuery, response: dict[str, Any]) -> SearchPage:
    raw = response["hits"]["hits"]
    page = raw[: query.size]
    total = response["hits"]["total"]
    return SearchPage(
        hits=[_hit(h["_source"]) for h in page],
        total=int(total["value"]),
        total_is_exact=total["relation"] == "eq",
        facets=parse_facets(response["aggregations"]) if "aggregations" in response else None,
        next_after=list(page[-1]["sort"]) if len(raw) > query.size else None,
    )


def suggest_body(prefix: str, size: int) -> dict[str, Any]:
    return {
        "_source": False,
        "suggest": {
            "names": {
                "prefix": prefix,
                "completion": {
                    "field": "suggest",
                    "size": size,
                    # A title and a brand (or two products) may read the same.
                    "skip_duplicates": True,
                    "fuzzy": {"fuzziness": "AUTO"},
                },
            }
        },
    }


def parse_suggestions(response: dict[str, Any]) -> list[str]:
    return [str(option["text"]) for option in response["suggest"]["names"][0]["options"]]
