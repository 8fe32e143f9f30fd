"""The catalog's REST API through the real ASGI app, FerretDB and MariaDB: prices as decimal
strings, ETag and If-Match, listings paged by cursor, and a 4xx in the error shape, changing
nothing, for every bad request on every endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.runtime.clock import utc_now
from tests.stack.error_shape import api_error
from tests.stack.product_api import product_api


@pytest.fixture
async def api(
    store: InventoryStore, engine: AsyncEngine, catalog: CatalogStore
) -> AsyncIterator[httpx.AsyncClient]:
    async with product_api(store, CategoryStore(engine, utc_now), catalog) as client:
        yield client


async def _category(api: httpx.AsyncClient, name: str, parent: int | None = None) -> int:
    created = await api.post("/api/v1/categories", json={"name": name, "parent_id": parent})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _product(category: int, *skus: str, **fields: Any) -> dict[str, Any]:
    return {
        "title": "Linen shirt",
        "variants": [
            {
                "sku": sku,
                "price": {"amount": "49.9", "currency": "EUR"},
                "attributes": {"size": "M"},
            }
            for sku in skus
        ],
        "category_ids": [category],
        "primary_category_id": category,
        **fields,
    }


async def test_create_read_replace_delete(api: httpx.AsyncClient, unique: str) -> None:
    shirts = await _category(api, f"Shirts {unique}")
    sale = await _category(api, f"Sale {unique}")
    body = _product(
        shirts,
        f"LS-{unique}-M",
        description="Light.",
        brand="Acme",
        attributes={"material": "linen", "organic": True, "thread_count": 120},
        images=["https://img.example.com/ls.jpg"],
    )
    body["variants"].append(
        {"sku": f"LS-{unique}-JP", "price": {"amount": "7500", "currency": "JPY"}}
    )
    created = await api.post("/api/v1/products", json=body)
    assert created.status_code == 201, created.text
    product = created.json()
    product_id = product["product_id"]
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"/api/v1/products/{product_id}"
    assert product["version"] == 1
    for stamp in (product["created_at"], product["updated_at"]):  # RFC 3339, in UTC
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    assert [v["price"] for v in product["variants"]] == [
        {"amount": "49.90", "currency": "EUR"},  # exactly the currency's digits
        {"amount": "7500", "currency": "JPY"},
    ]
    assert product["variants"][1]["attributes"] == {}
    assert product["attributes"] == {"material": "linen", "organic": True, "thread_count": 120}
    assert (product["brand"], product["images"]) == ("Acme", ["https://img.example.com/ls.jpg"])

    got = await api.get(f"/api/v1/products/{product_id}")
    assert got.json() == product
    assert got.headers["etag"] == '"1"'

    replacement = _product(sale, f"LS-{unique}-M", title="Linen shirt, reduced")
    replacement["category_ids"] = [shirts, sale]
    put = await api.put(
        f"/api/v1/products/{product_id}", json=replacement, headers={"If-Match": '"1"'}
    )
    assert put.status_code == 200, put.text
    assert (put.json()["version"], put.headers["etag"]) == (2, '"2"')
    assert put.json()["brand"] is None  # a PUT replaces every field
    assert put.json()["created_at"] == product["created_at"]

    stale = await api.put(f"/api/v1/products/{product_id}", json=body, headers={"If-Match": "1"})
    assert stale.status_code == 412
    error = api_error(stale)
    assert (error["code"], error["details"]) == ("version_conflict", {"current_version": 2})
    refused = await api.delete(f"/api/v1/products/{product_id}", headers={"If-Match": "1"})
    assert (refused.status_code, api_error(refused)["code"]) == (412, "version_conflict")
    assert (await api.get(f"/api/v1/products/{product_id}")).json()["title"] == (
        "Linen shirt, reduced"
    )

    deleted = await api.delete(f"/api/v1/products/{product_id}", headers={"If-Match": "2"})
    assert (deleted.status_code, deleted.content) == (204, b"")
    for response in (
        await api.get(f"/api/v1/products/{product_id}"),
        await api.put(f"/api/v1/products/{product_id}", json=replacement),
        await api.delete(f"/api/v1/products/{product_id}"),
    ):
        assert (response.status_code, api_error(response)["code"]) == (404, "not_found")


async def test_sku_taken_and_unknown_category(api: httpx.AsyncClient, unique: str) -> None:
    category = await _category(api, f"Dup {unique}")
    first = await api.post("/api/v1/products", json=_product(category, f"D-{unique}"))
    assert first.status_code == 201
    taken = await api.post(
        "/api/v1/products", json=_product(category, f"E-{unique}", f"D-{unique}")
    )
    assert taken.status_code == 409
    error = api_error(taken)
    assert (error["code"], error["details"]) == ("duplicate_sku", {"skus": [f"D-{unique}"]})

    unknown = _product(category, f"F-{unique}")
    unknown["category_ids"] = [category, 2**62]
    missing = await api.post("/api/v1/products", json=unknown)
    assert missing.status_code == 422
    error = api_error(missing)
    assert (error["code"], error["details"]) == ("unknown_category", {"category_ids": [2**62]})


async def test_a_price_in_a_currency_the_shop_does_not_sell_is_refused(
    api: httpx.AsyncClient, unique: str
) -> None:
    category = await _category(api, f"Currencies {unique}")
    body = _product(category, f"CUR-{unique}-1", f"CUR-{unique}-2")
    body["variants"][1]["price"] = {"amount": "12.00", "currency": "USD"}
    refused = await api.post("/api/v1/products", json=body)
    assert refused.status_code == 422
    error = api_error(refused)
    assert (error["code"], error["details"]) == (
        "currency_not_sold",
        {"field": "variants[1].price.currency", "currency": "USD", "sold": ["EUR", "JPY"]},
    )
    listed = await api.get(f"/api/v1/categories/{category}/products")
    assert listed.json()["items"] == []


async def test_a_body_over_the_limit_is_refused_unread(api: httpx.AsyncClient, unique: str) -> None:
    category = await _category(api, f"Big {unique}")
    body = _product(category, f"BIG-{unique}", description="x" * 2_000_000)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield json.dumps(body).encode()

    for response in (
        await api.post("/api/v1/products", json=body),
        await api.post(
            "/api/v1/products", content=streamed(), headers={"content-type": "application/json"}
        ),
    ):
        assert response.status_code == 413
        assert api_error(response)["code"] == "payload_too_large"
    listed = await api.get(f"/api/v1/categories/{category}/products")
    assert listed.json()["items"] == []


async def test_listing_pages_with_an_opaque_cursor(api: httpx.AsyncClient, unique: str) -> None:
    root = await _category(api, f"Home {unique}")
    kitchen = await _category(api, "Kitchen", root)
    knives = await _category(api, "Knives", kitchen)
    ids = set()
    for n, category in enumerate([root, kitchen, knives, knives, kitchen, root, knives]):
        created = await api.post("/api/v1/products", json=_product(category, f"H{n}-{unique}"))
        ids.add(created.json()["product_id"])

    url = f"/api/v1/categories/{root}/products"
    seen: list[str] = []
    params: dict[str, Any] = {"include_descendants": "true", "limit": 3}
    pages = 0
    while True:
        page = await api.get(url, params=params)
        assert page.status_code == 200, page.text
        seen += [p["product_id"] for p in page.json()["items"]]
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert sorted(seen) == seen
    assert set(seen) == ids
    assert len(seen) == 7
    assert pages == 3

    only_root = (await api.get(url)).json()
    assert len(only_root["items"]) == 2
    assert only_root["next_cursor"] is None

    first = (await api.get(url, params={"include_descendants": "true", "limit": 1})).json()
    elsewhere = await api.get(
        f"/api/v1/categories/{knives}/products",
        params={"include_descendants": "true", "cursor": first["next_cursor"]},
    )
    assert elsewhere.status_code == 422
    assert api_error(elsewhere)["code"] == "invalid_cursor"
    without = await api.get(url, params={"cursor": first["next_cursor"]})
    assert api_error(without)["code"] == "invalid_cursor"


# ---- every endpoint refuses bad input with the error shape and changes nothing --------------


@dataclass(frozen=True)
class Fixture:
    category: int
    product_id: str


@pytest.fixture
async def existing(api: httpx.AsyncClient, unique: str) -> Fixture:
    category = await _category(api, f"Bad input {unique}")
    created = await api.post("/api/v1/products", json=_product(category, f"OK-{unique}"))
    assert created.status_code == 201
    return Fixture(category, created.json()["product_id"])


def _variant(**changes: Any) -> list[dict[str, Any]]:
    return [{"sku": "NEW-1", "price": {"amount": "1.00", "currency": "EUR"}, **changes}]


def _price(amount: Any, currency: Any = "EUR") -> list[dict[str, Any]]:
    return _variant(price={"amount": amount, "currency": currency})


# Body changes applied to a valid product (for POST, and PUT of the existing one).
BAD_BODIES: list[tuple[str, dict[str, Any], int, str]] = [
    ("missing title", {"title": None}, 422, "validation_failed"),
    ("empty title", {"title": ""}, 422, "validation_failed"),
    ("blank title", {"title": "   "}, 422, "validation_failed"),
    ("long title", {"title": "x" * 201}, 422, "validation_failed"),
    ("title not a string", {"title": 5}, 422, "validation_failed"),
    ("title with a NUL", {"title": "Mug\x00"}, 422, "validation_failed"),
    ("title with a control character", {"title": "Mug\x1f"}, 422, "validation_failed"),
    ("description with a NUL", {"description": "Holds\x00 tea"}, 422, "validation_failed"),
    ("brand with a line break", {"brand": "Ac\nme"}, 422, "validation_failed"),
    ("unknown field", {"stock": 5}, 422, "validation_failed"),
    ("long description", {"description": "x" * 5001}, 422, "validation_failed"),
    ("blank brand", {"brand": " "}, 422, "validation_failed"),
    ("float attribute", {"attributes": {"weight": 0.5}}, 422, "validation_failed"),
    ("nested attribute", {"attributes": {"dims": {"w": 1}}}, 422, "validation_failed"),
    ("attribute with a NUL", {"attributes": {"colour": "red\x00"}}, 422, "validation_failed"),
    ("dotted attribute name", {"attributes": {"a.b": "x"}}, 422, "validation_failed"),
    ("dollar attribute name", {"attributes": {"$gt": "x"}}, 422, "validation_failed"),
    ("huge integer attribute", {"attributes": {"n": 2**64}}, 422, "validation_failed"),
    (
        "too many attributes",
        {"attributes": {f"a{i}": i for i in range(51)}},
        422,
        "validation_failed",
    ),
    ("no variants", {"variants": []}, 422, "validation_failed"),
    ("variants not a list", {"variants": {"sku": "X"}}, 422, "validation_failed"),
    ("101 variants", {"variants": _variant() * 101}, 422, "validation_failed"),
    ("sku with a space", {"variants": _variant(sku="NEW 1")}, 422, "validation_failed"),
    ("sku too long", {"variants": _variant(sku="X" * 65)}, 422, "validation_failed"),
    ("same sku twice", {"variants": _variant() * 2}, 422, "invalid_product"),
    ("unknown variant field", {"variants": _variant(stock=3)}, 422, "validation_failed"),
    ("price as a JSON number", {"variants": _price(19.99)}, 422, "validation_failed"),
    ("price as an integer", {"variants": _price(19)}, 422, "validation_failed"),
    ("zero price", {"variants": _price("0.00")}, 422, "invalid_product"),
    ("negative price", {"variants": _price("-1.00")}, 422, "invalid_product"),
    ("sub-cent price", {"variants": _price("1.001")}, 422, "invalid_product"),
    ("yen with decimals", {"variants": _price("100.5", "JPY")}, 422, "invalid_product"),
    ("exponent price", {"variants": _price("1e2")}, 422, "invalid_product"),
    ("huge price", {"variants": _price("1" * 15)}, 422, "invalid_product"),
    ("lowercase currency", {"variants": _price("1.00", "eur")}, 422, "validation_failed"),
    ("unknown currency", {"variants": _price("1.00", "ABC")}, 422, "invalid_product"),
    (
        "a currency the shop does not sell",
        {"variants": _price("1.00", "USD")},
        422,
        "currency_not_sold",
    ),
    ("currency not a string", {"variants": _price("1.00", 978)}, 422, "validation_failed"),
    ("no currency", {"variants": _variant(price={"amount": "1.00"})}, 422, "validation_failed"),
    ("ftp image", {"images": ["ftp://example.com/a.jpg"]}, 422, "invalid_product"),
    ("image not a url", {"images": ["a picture"]}, 422, "invalid_product"),
    ("21 images", {"images": ["https://e.com/a.jpg"] * 21}, 422, "validation_failed"),
    ("no categories", {"category_ids": []}, 422, "validation_failed"),
    ("category id zero", {"category_ids": [0]}, 422, "validation_failed"),
    (
        "category id true",  # strict: a JSON true is not the category 1
        {"category_ids": [True], "primary_category_id": True},
        422,
        "validation_failed",
    ),
    ("category id as a string", {"category_ids": ["1"]}, 422, "validation_failed"),
    ("category id too big", {"category_ids": [2**63]}, 422, "validation_failed"),
    ("category twice", {"category_ids": ["CAT", "CAT"]}, 422, "invalid_product"),
    ("primary not listed", {"primary_category_id": 2**61}, 422, "invalid_product"),
    (
        "unknown category",
        {"category_ids": [2**62], "primary_category_id": 2**62},
        422,
        "unknown_category",
    ),
]


def _bad_body(category: int, change: dict[str, Any]) -> dict[str, Any]:
    body = {
        "title": "Valid",
        "variants": _variant(),
        "category_ids": [category],
        "primary_category_id": category,
    }
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = (
                [category if v == "CAT" else v for v in value] if key == "category_ids" else value
            )
    return body


async def _unchanged(api: httpx.AsyncClient, existing: Fixture) -> None:
    product = await api.get(f"/api/v1/products/{existing.product_id}")
    assert product.json()["version"] == 1
    listed = await api.get(f"/api/v1/categories/{existing.category}/products")
    assert [p["product_id"] for p in listed.json()["items"]] == [existing.product_id]


@pytest.mark.parametrize(
    ("case", "change", "status", "code"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
@pytest.mark.parametrize("method", ["post", "put"])
async def test_bad_product_bodies(
    api: httpx.AsyncClient,
    existing: Fixture,
    method: str,
    case: str,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    url = "/api/v1/products" if method == "post" else f"/api/v1/products/{existing.product_id}"
    response = await api.request(method, url, json=_bad_body(existing.category, change))
    assert response.status_code == status, response.text
    assert api_error(response)["code"] == code
    await _unchanged(api, existing)


RAW_BODIES: list[tuple[str, bytes, int, str]] = [
    ("truncated JSON", b'{"title": ', 400, "malformed_json"),
    ("not JSON", b"title=x", 400, "malformed_json"),
    ("a list", b"[1, 2]", 422, "validation_failed"),
    (
        "a lone surrogate",  # valid JSON, but no string BSON could store
        b'{"title": "\\ud800", "variants": VARIANTS, "category_ids": [CAT], '
        b'"primary_category_id": CAT}',
        422,
        "validation_failed",
    ),
]


@pytest.mark.parametrize(
    ("case", "raw", "status", "code"), RAW_BODIES, ids=[c[0] for c in RAW_BODIES]
)
@pytest.mark.parametrize("method", ["post", "put"])
async def test_bad_raw_bodies(
    api: httpx.AsyncClient,
    existing: Fixture,
    method: str,
    case: str,
    raw: bytes,
    status: int,
    code: str,
) -> None:
    url = "/api/v1/products" if method == "post" else f"/api/v1/products/{existing.product_id}"
    content = raw.replace(b"VARIANTS", json.dumps(_variant()).encode()).replace(
        b"CAT", str(existing.category).encode()
    )
    response = await api.request(
        method, url, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert api_error(response)["code"] == code
    await _unchanged(api, existing)


UNKNOWN_ID = "0" * 32
BAD_REQUESTS: list[tuple[str, str, dict[str, str], int, str]] = [
    ("get", "/api/v1/products/nope", {}, 422, "invalid_product_id"),
    ("get", "/api/v1/products/" + "A" * 32, {}, 422, "invalid_product_id"),
    ("get", f"/api/v1/products/{UNKNOWN_ID}", {}, 404, "not_found"),
    ("put", "/api/v1/products/nope", {}, 422, "invalid_product_id"),
    ("put", f"/api/v1/products/{UNKNOWN_ID}", {}, 404, "not_found"),
    ("put", "/api/v1/products/PID", {"If-Match": "abc"}, 400, "invalid_if_match"),
    ("put", "/api/v1/products/PID", {"If-Match": 'W/"1"'}, 400, "invalid_if_match"),
    ("put", "/api/v1/products/PID", {"If-Match": "7"}, 412, "version_conflict"),
    ("put", "/api/v1/products/PID", {"If-Match": "1" * 70}, 422, "validation_failed"),
    ("delete", "/api/v1/products/nope", {}, 422, "invalid_product_id"),
    ("delete", f"/api/v1/products/{UNKNOWN_ID}", {}, 404, "not_found"),
    ("delete", "/api/v1/products/PID", {"If-Match": "1, 2"}, 400, "invalid_if_match"),
    ("delete", "/api/v1/products/PID", {"If-Match": '"2"'}, 412, "version_conflict"),
    ("patch", "/api/v1/products/PID", {}, 405, "method_not_allowed"),
    ("get", "/api/v1/categories/0/products", {}, 422, "validation_failed"),
    ("get", "/api/v1/categories/abc/products", {}, 422, "validation_failed"),
    ("get", f"/api/v1/categories/{2**62}/products", {}, 404, "not_found"),
    ("get", "/api/v1/categories/CAT/products?limit=0", {}, 422, "validation_failed"),
    ("get", "/api/v1/categories/CAT/products?limit=101", {}, 422, "validation_failed"),
    ("get", "/api/v1/categories/CAT/products?limit=x", {}, 422, "validation_failed"),
    (
        "get",
        "/api/v1/categories/CAT/products?include_descendants=maybe",
        {},
        422,
        "validation_failed",
    ),
    ("get", "/api/v1/categories/CAT/products?cursor=garbage", {}, 422, "invalid_cursor"),
    ("get", "/api/v1/categories/CAT/products?cursor=" + "x" * 600, {}, 422, "validation_failed"),
]


@pytest.mark.parametrize(("method", "url", "headers", "status", "code"), BAD_REQUESTS)
async def test_bad_requests(
    api: httpx.AsyncClient,
    existing: Fixture,
    method: str,
    url: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    url = url.replace("PID", existing.product_id).replace("CAT", str(existing.category))
    body = _bad_body(existing.category, {}) if method == "put" else None
    response = await api.request(method, url, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert api_error(response)["code"] == code
    await _unchanged(api, existing)
