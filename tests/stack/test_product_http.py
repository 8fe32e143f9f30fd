"""The product REST API: inventory endpoints, one error shape, health and metrics.

Requests go through the real ASGI app and the real MariaDB store; every bad request must get a
4xx with the error shape and change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.runtime.clock import utc_now
from tests.stack.conftest import TTL
from tests.stack.error_shape import api_error
from tests.stack.product_api import product_api


async def _down() -> None:
    raise ConnectionError("database unreachable")


@pytest.fixture
async def api(
    store: InventoryStore, engine: AsyncEngine, catalog: CatalogStore
) -> AsyncIterator[httpx.AsyncClient]:
    async with product_api(store, CategoryStore(engine, utc_now), catalog) as client:
        yield client


async def test_set_and_read_stock(api: httpx.AsyncClient, sku: str) -> None:
    put = await api.put(f"/api/v1/inventory/{sku}", json={"stock": 12})
    assert put.status_code == 200
    assert put.json() == {"sku": sku, "stock": 12, "reserved": 0, "available": 12}
    got = await api.get(f"/api/v1/inventory/{sku}")
    assert got.json()["available"] == 12


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"stock": -1}, 422, "validation_failed"),
        ({"stock": "5"}, 422, "validation_failed"),
        ({"stock": 1.5}, 422, "validation_failed"),
        ({"stock": 10**12}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
        ({"stock": 3, "price": 1}, 422, "validation_failed"),
        ([1, 2], 422, "validation_failed"),
    ],
)
async def test_bad_stock_bodies_change_nothing(
    api: httpx.AsyncClient, sku: str, body: Any, status: int, code: str
) -> None:
    await api.put(f"/api/v1/inventory/{sku}", json={"stock": 7})
    response = await api.put(f"/api/v1/inventory/{sku}", json=body)
    assert response.status_code == status
    assert api_error(response)["code"] == code
    assert (await api.get(f"/api/v1/inventory/{sku}")).json()["stock"] == 7


async def test_malformed_json_is_400(api: httpx.AsyncClient, sku: str) -> None:
    response = await api.put(
        f"/api/v1/inventory/{sku}",
        content=b'{"stock": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert api_error(response)["code"] == "malformed_json"


async def test_invalid_and_unknown_skus(api: httpx.AsyncClient, unique: str) -> None:
    bad = await api.put("/api/v1/inventory/has%20space", json={"stock": 1})
    assert bad.status_code == 422
    assert api_error(bad)["code"] == "invalid_sku"
    missing = await api.get(f"/api/v1/inventory/NOPE-{unique}")
    assert missing.status_code == 404
    assert api_error(missing)["code"] == "not_found"


async def test_stock_below_reserved_is_409(
    api: httpx.AsyncClient, store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 5)
    await store.reserve(f"o-{sku}", [(sku, 4)], TTL)
    response = await api.put(f"/api/v1/inventory/{sku}", json={"stock": 3})
    assert response.status_code == 409
    error = api_error(response)
    assert error["code"] == "stock_below_reserved"
    assert error["details"] == {"sku": sku, "reserved": 4}
    assert (await api.get(f"/api/v1/inventory/{sku}")).json()["stock"] == 5


async def test_unknown_route_and_method_use_the_error_shape(api: httpx.AsyncClient) -> None:
    assert api_error(await api.get("/api/v1/nothing-here"))["code"] == "not_found"
    wrong = await api.delete("/api/v1/inventory/ABC")
    assert wrong.status_code == 405
    assert api_error(wrong)["code"] == "method_not_allowed"


async def test_health_and_metrics(api: httpx.AsyncClient, sku: str) -> None:
    assert (await api.get("/health/live")).json() == {"status": "ok"}
    ready = await api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"mariadb": "ok"}
    await api.get(f"/api/v1/inventory/{sku}")
    metrics = (await api.get("/metrics")).text
    assert 'route="/api/v1/inventory/{sku}"' in metrics  # the template, not one label per SKU
    assert sku not in metrics


async def test_not_ready_when_a_dependency_fails(
    store: InventoryStore, engine: AsyncEngine, catalog: CatalogStore
) -> None:
    async with product_api(
        store, CategoryStore(engine, utc_now), catalog, {"mariadb": _down}
    ) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"mariadb": "unavailable: ConnectionError"}
