"""Elasticsearch is the real server: mappings, bulk indexing, fuzzy search and aggregations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from commerce_devstack.endpoints import Endpoints

PRODUCTS = [
    {"title": "Apple iPhone 15 Pro", "brand": "Apple", "price_cents": 119_900},
    {"title": "Samsung Galaxy S24", "brand": "Samsung", "price_cents": 89_900},
    {"title": "Samsung Galaxy Tab S9", "brand": "Samsung", "price_cents": 79_900},
    {"title": "Google Pixel 8", "brand": "Google", "price_cents": 69_900},
    {"title": "Apple MacBook Air", "brand": "Apple", "price_cents": 129_900},
    {"title": "Sony WH-1000XM5 headphones", "brand": "Sony", "price_cents": 39_900},
]


@pytest.fixture
async def es(stack: Endpoints) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=30)
    yield client
    await client.close()


async def test_mapping_bulk_fuzzy_search_and_terms_aggregation(
    es: AsyncElasticsearch, unique: str
) -> None:
    index = f"stackcheck-products-{unique}"
    # GET / (the rest-root module) is not in this distribution; nodes info carries the version.
    nodes = await es.nodes.info()
    assert [n["version"] for n in nodes["nodes"].values()] == ["8.19.21"]
    await es.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={
            "dynamic": "strict",
            "properties": {
                "title": {"type": "text"},
                "brand": {"type": "keyword"},
                "price_cents": {"type": "long"},
            },
        },
    )
    try:
        ok, errors = await async_bulk(
            es,
            ({"_index": index, "_id": str(n), "_source": doc} for n, doc in enumerate(PRODUCTS)),
            refresh="wait_for",
        )
        assert (ok, errors) == (len(PRODUCTS), [])
        mapping = await es.indices.get_mapping(index=index)
        assert mapping[index]["mappings"]["properties"]["brand"] == {"type": "keyword"}

        # Two typos: "galxy" and "samsnug" still find both Galaxy products.
        hits = await es.search(
            index=index,
            query={
                "match": {
                    "title": {"query": "samsnug galxy", "fuzziness": "AUTO", "operator": "and"}
                }
            },
        )
        titles = {h["_source"]["title"] for h in hits["hits"]["hits"]}
        assert titles == {"Samsung Galaxy S24", "Samsung Galaxy Tab S9"}

        facets = await es.search(
            index=index, size=0, aggs={"brands": {"terms": {"field": "brand"}}}
        )
        buckets = {b["key"]: b["doc_count"] for b in facets["aggregations"]["brands"]["buckets"]}
        assert buckets == {"Apple": 2, "Samsung": 2, "Google": 1, "Sony": 1}
    finally:
        await es.indices.delete(index=index)
