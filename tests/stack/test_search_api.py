"""The search API against the real Elasticsearch, FerretDB and MariaDB, on a known fixture of
seven products in a three-level category tree: typo tolerance, facet counts, the descendant
filter, cursors that return every hit exactly once, suggestions, 4xx for bad parameters, and
the degraded answer from the catalog's indexed paths when the engine is unreachable. The
module has a product database of its own: the degraded search reads its products by title
words and category, and the shared one holds every other test's."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.dataset.target import Target, create_mariadb, drop_mariadb
from commerce_devstack.endpoints import Endpoints
from commerce_services.product.catalog.model import Price, ProductContent, Variant
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.categories.store import CategoryStore
from commerce_services.runtime.clock import utc_now
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.fallback import MongoFallback
from commerce_services.search.http_api import create_app
from commerce_services.search.product_events import ProductEvents
from commerce_services.search.revisions import CatalogRevisions
from commerce_services.search.sync import CatalogSync
from tests.stack.conftest import Clock
from tests.stack.error_shape import api_error


@dataclass(frozen=True)
class Shop:
    root: int  # Kitchen
    child: int  # Kitchen / Cups
    leaf: int  # Kitchen / Cups / Mugs
    other: int  # Knives, a second root
    ids: dict[str, str]  # title -> product id


# title, brand, category key, price (minor units), material
PRODUCTS = [
    ("Espresso mug", "Acme", "leaf", 990, "ceramic"),
    ("Lungo mug", "Acme", "leaf", 1290, "ceramic"),
    ("Milk jug", "Acme", "leaf", 1590, "steel"),
    ("Travel mug", "Contigo", "child", 2490, "steel"),
    ("Coffee grinder", "Bodum", "child", 5990, "steel"),
    ("Teapot", "Bodum", "root", 3990, "glass"),
    ("Chef knife", "Wusthof", "other", 8990, "steel"),
]


@pytest.fixture(scope="module")
def product_db(stack: Endpoints) -> Iterator[Target]:
    target = Target(f"searchapi_{uuid.uuid4().hex[:8]}")
    create_mariadb(stack, target)
    yield target
    drop_mariadb(stack, target)


@pytest.fixture
async def engine(stack: Endpoints, product_db: Target) -> AsyncIterator[AsyncEngine]:
    """The module's own product database, in place of the shared one."""
    engine = create_async_engine(product_db.database_settings(stack).database_url())
    yield engine
    await engine.dispose()


@pytest.fixture
async def sync(
    stack: Endpoints,
    product_events_topic: str,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
) -> AsyncIterator[CatalogSync]:
    """Loads the catalog into a new index (the module's database relays no events)."""
    feed = ProductEvents(stack["kafka"]["bootstrap_servers"], product_events_topic)
    yield CatalogSync(
        feed,
        CatalogRevisions(catalog_db.client, catalog_db.name),
        ElasticsearchEngine(es),
        CatalogReads(engine),
        alias,
        clock,
    )
    await feed.close()


@pytest.fixture
async def shop(
    sync: CatalogSync,
    catalog: CatalogStore,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
    unique: str,
) -> Shop:
    tree = CategoryStore(engine, utc_now)
    root = await tree.create(f"Kitchen {unique}", None)
    child = await tree.create("Cups", root.id)
    leaf = await tree.create("Mugs", child.id)
    other = await tree.create(f"Knives {unique}", None)
    keys = {"root": root.id, "child": child.id, "leaf": leaf.id, "other": other.id}
    ids = {}
    for n, (title, brand, key, price, material) in enumerate(PRODUCTS):
        clock.now += timedelta(seconds=1)  # distinct created_at for "newest"
        product = await catalog.create(
            ProductContent(
                title=title,
                description=f"{title} made of {material}",
                brand=brand,
                attributes={"material": material},
                variants=(Variant(f"P{n}-{unique}", Price(price, "EUR"), {}),),
                images=(),
                category_ids=(keys[key],),
                primary_category_id=keys[key],
            )
        )
        ids[title] = product.product_id
    assert (await sync.run_once()).written == len(PRODUCTS)
    await es.indices.refresh(index=alias)
    return Shop(root.id, child.id, leaf.id, other.id, ids)


def _client(
    es_client: AsyncElasticsearch,
    alias: str,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
) -> httpx.AsyncClient:
    fallback = MongoFallback(
        CatalogRevisions(catalog_db.client, catalog_db.name), CatalogReads(engine)
    )
    app = create_app(ElasticsearchEngine(es_client), alias, fallback, {})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://search.test")


@pytest.fixture
async def api(
    es: AsyncElasticsearch, alias: str, catalog_db: AsyncDatabase[Document], engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(es, alias, catalog_db, engine) as client:
        yield client


@pytest.fixture
async def unreachable_api(
    alias: str, catalog_db: AsyncDatabase[Document], engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its engine pointed at a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = AsyncElasticsearch(f"http://127.0.0.1:{port}", request_timeout=2, max_retries=0)
    async with _client(dead, alias, catalog_db, engine) as client:
        yield client
    await dead.close()


async def _search(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    assert "X-Search-Degraded" not in response.headers
    body: dict[str, Any] = response.json()
    assert body["degraded"] is False
    return body


def _titles(body: dict[str, Any]) -> list[str]:
    return [hit["title"] for hit in body["hits"]]


async def test_a_query_with_typos_finds_the_product(api: httpx.AsyncClient, shop: Shop) -> None:
    assert _titles(await _search(api, q="espreso"))[0] == "Espresso mug"
    assert _titles(await _search(api, q="cofee grindr")) == ["Coffee grinder"]
    # Words spread over brand and title.
    assert set(_titles(await _search(api, q="acme mug"))) == {"Espresso mug", "Lungo mug"}


async def test_title_matches_rank_above_description_matches(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    # "steel" is in four descriptions and in no title; "mug" in three titles.
    ranked = _titles(await _search(api, q="mug"))
    assert set(ranked[:3]) == {"Espresso mug", "Lungo mug", "Travel mug"}


async def test_facets_count_the_fixture(api: httpx.AsyncClient, shop: Shop) -> None:
    body = await _search(api)
    assert body["total"] == len(PRODUCTS)
    facets = body["facets"]
    assert {b["value"]: b["count"] for b in facets["brands"]} == {
        "Acme": 3,
        "Bodum": 2,
        "Contigo": 1,
        "Wusthof": 1,
    }
    assert {b["value"]: b["count"] for b in facets["attributes"]["material"]} == {
        "steel": 4,
        "ceramic": 2,
        "glass": 1,
    }
    assert {b["value"]: b["count"] for b in facets["categories"]} == {
        str(shop.leaf): 3,
        str(shop.child): 2,
        str(shop.root): 1,
        str(shop.other): 1,
    }
    prices = {(b["min"], b["max"]): b["count"] for b in facets["prices"] if b["count"]}
    assert prices == {(None, 1000): 1, (1000, 2500): 3, (2500, 5000): 1, (5000, 10000): 2}

    # Facets follow the filters.
    steel = await _search(api, **{"attr.material": "steel"})
    assert {b["value"]: b["count"] for b in steel["facets"]["brands"]} == {
        "Acme": 1,
        "Bodum": 1,
        "Contigo": 1,
        "Wusthof": 1,
    }


async def test_a_category_filter_includes_its_descendants(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    assert (await _search(api, category=shop.root))["total"] == 6
    assert (await _search(api, category=shop.child))["total"] == 5
    assert set(_titles(await _search(api, category=shop.leaf))) == {
        "Espresso mug",
        "Lungo mug",
        "Milk jug",
    }
    assert _titles(await _search(api, category=shop.other)) == ["Chef knife"]


async def test_brand_attribute_and_price_filters(api: httpx.AsyncClient, shop: Shop) -> None:
    assert _titles(await _search(api, brand="Acme", **{"attr.material": "steel"})) == ["Milk jug"]
    in_range = await _search(api, price_min=1000, price_max=2500, sort="price_asc")
    assert _titles(in_range) == ["Lungo mug", "Milk jug", "Travel mug"]
    # Several values of one attribute: any of them.
    either = await api.get(
        "/api/v1/search", params=[("attr.material", "glass"), ("attr.material", "ceramic")]
    )
    assert set(_titles(either.json())) == {"Teapot", "Espresso mug", "Lungo mug"}


@pytest.mark.parametrize("sort", ["relevance", "price_asc", "price_desc", "newest"])
async def test_cursor_pagination_returns_every_hit_exactly_once(
    api: httpx.AsyncClient, shop: Shop, sort: str
) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"sort": sort, "size": 2}
    pages = 0
    while True:
        body = await _search(api, **params)
        pages += 1
        seen += [hit["product_id"] for hit in body["hits"]]
        assert (body["facets"] is None) == (pages > 1)
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert sorted(seen) == sorted(shop.ids.values())
    assert pages == 4
    if sort == "price_asc":
        assert seen == [shop.ids[t] for t, *_ in sorted(PRODUCTS, key=lambda p: p[3])]
    if sort == "newest":
        assert seen == [shop.ids[t] for t, *_ in reversed(PRODUCTS)]


async def test_suggestions_complete_titles_and_brands(api: httpx.AsyncClient, shop: Shop) -> None:
    response = await api.get("/api/v1/search/suggest", params={"q": "esp"})
    assert response.status_code == 200
    assert response.json() == {"suggestions": ["Espresso mug"], "degraded": False}
    brands = (await api.get("/api/v1/search/suggest", params={"q": "bod"})).json()
    assert brands["suggestions"] == ["Bodum"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"colour": "red"}, "colour"),
        ({"sort": "cheapest"}, "sort"),
        ({"size": "0"}, "size"),
        ({"size": "101"}, "size"),
        ({"price_min": "-1"}, "price_min"),
        ({"price_min": "20", "price_max": "10"}, "price_max"),
        ({"category": "abc"}, "category"),
        ({"attr.$where": "1"}, "attr.$where"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "x" * 3000}, "cursor"),
        ({"q": "mug\x00"}, "q"),
        ({"q": "\x06mug"}, "q"),
        ({"brand": "Ac\x1bme"}, "brand"),
        ({"attr.material": "steel\x7f"}, "attr.material"),
    ],
)
async def test_bad_parameters_get_422_with_the_error_shape(
    api: httpx.AsyncClient, params: dict[str, str], parameter: str
) -> None:
    response = await api.get("/api/v1/search", params=params)
    assert response.status_code == 422
    error = api_error(response)
    assert (error["code"], error["details"]) == ("invalid_parameter", {"parameter": parameter})


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"q": "\x06"}, "q"),  # each of these control characters made the engine answer 500
        ({"q": "es\x1fp"}, "q"),
        ({"q": "es\x1cp\x1e"}, "q"),
        ({"q": "esp\x00"}, "q"),
        ({"q": "esp", "size": "0"}, "size"),
        ({"q": "esp", "size": "21"}, "size"),
        ({"q": "esp", "size": "ten"}, "size"),
        ({"q": "esp", "colour": "red"}, "colour"),
    ],
)
async def test_bad_suggest_parameters_get_422_with_the_error_shape(
    api: httpx.AsyncClient, shop: Shop, params: dict[str, str], parameter: str
) -> None:
    response = await api.get("/api/v1/search/suggest", params=params)
    assert response.status_code == 422, response.text
    error = api_error(response)
    assert (error["code"], error["details"]) == ("invalid_parameter", {"parameter": parameter})


async def test_a_cursor_of_another_search_is_refused(api: httpx.AsyncClient, shop: Shop) -> None:
    cursor = (await _search(api, size=1, sort="newest"))["next_cursor"]
    response = await api.get("/api/v1/search", params={"size": 1, "cursor": cursor})
    assert response.status_code == 422
    assert api_error(response)["message"] == "the cursor belongs to another search"


async def test_unreachable_engine_answers_from_the_catalog_and_says_so(
    unreachable_api: httpx.AsyncClient, shop: Shop
) -> None:
    response = await unreachable_api.get("/api/v1/search", params={"q": "MUG"})
    assert response.status_code == 200
    assert response.headers["X-Search-Degraded"] == "true"
    body = response.json()
    assert body["degraded"] is True
    assert body["facets"] is None
    # Title words as word prefixes, in product-id order.
    assert sorted(_titles(body)) == ["Espresso mug", "Lungo mug", "Travel mug"]
    assert [h["product_id"] for h in body["hits"]] == sorted(h["product_id"] for h in body["hits"])
    assert _titles(
        (
            await unreachable_api.get("/api/v1/search", params={"q": "trav", "category": shop.root})
        ).json()
    ) == ["Travel mug"]
    assert (await unreachable_api.get("/api/v1/search", params={"q": "mu"})).json()["hits"] == []

    subtree = (
        await unreachable_api.get("/api/v1/search", params={"category": shop.child, "size": 2})
    ).json()
    seen = _titles(subtree)
    while subtree["next_cursor"] is not None:
        subtree = (
            await unreachable_api.get(
                "/api/v1/search",
                params={"category": shop.child, "size": 2, "cursor": subtree["next_cursor"]},
            )
        ).json()
        assert subtree["degraded"] is True
        seen += _titles(subtree)
    assert sorted(seen) == sorted(
        ["Espresso mug", "Lungo mug", "Milk jug", "Travel mug", "Coffee grinder"]
    )

    filtered = (
        await unreachable_api.get(
            "/api/v1/search",
            params={"brand": "Acme", "attr.material": "steel", "price_max": 2000},
        )
    ).json()
    assert _titles(filtered) == ["Milk jug"]

    suggest = await unreachable_api.get("/api/v1/search/suggest", params={"q": "esp"})
    assert suggest.headers["X-Search-Degraded"] == "true"
    assert suggest.json() == {"suggestions": ["Espresso mug"], "degraded": True}


async def test_a_deleted_product_is_not_found_in_either_path(
    api: httpx.AsyncClient,
    unreachable_api: httpx.AsyncClient,
    shop: Shop,
    catalog: CatalogStore,
    sync: CatalogSync,
    es: AsyncElasticsearch,
    alias: str,
    clock: Clock,
) -> None:
    clock.now += timedelta(seconds=1)
    await catalog.delete(shop.ids["Teapot"])
    await sync.rebuild()  # the module's database relays no events: a new version has it
    await es.indices.refresh(index=alias)
    assert _titles(await _search(api, q="teapot")) == []
    degraded = (await unreachable_api.get("/api/v1/search", params={"q": "teapot"})).json()
    assert degraded["hits"] == []
