"""The product service's REST API in-process, through its real ASGI app over the stack's
stores, called as staff (the catalog and stock are staff's to write; who else may do what is
test_authorization's). An error in the app is answered as the service answers it, not raised."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.http_api import create_app
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.web.health import ReadinessCheck
from tests.stack.access_tokens import STAFF_HEADERS, VERIFIER

SOLD = frozenset({"EUR", "JPY"})  # the currencies the shop sells in these tests


async def _answers() -> None:
    return None


@asynccontextmanager
async def product_api(
    store: InventoryStore,
    categories: CategoryStore,
    catalog: CatalogStore,
    readiness: dict[str, ReadinessCheck] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A staff client of the app; `readiness`: its checks (by default, MariaDB answers)."""
    app = create_app(
        store,
        categories,
        catalog,
        {"mariadb": _answers} if readiness is None else readiness,
        currencies=SOLD,
        verifier=VERIFIER,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://product.test",
        headers=STAFF_HEADERS,
    ) as client:
        yield client
