"""The product service's FastAPI application: inventory, categories and the catalog."""

from __future__ import annotations

from collections.abc import Set

from fastapi import FastAPI

from commerce_services.product.catalog.http_api import catalog_router
from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.http_api import categories_router
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.inventory.http_api import inventory_router
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.web.app import service_app
from commerce_services.web.health import ReadinessCheck

# A product of 100 variants with their attributes; a larger body is refused unread.
MAX_BODY_BYTES = 1024 * 1024


def create_app(
    store: InventoryStore,
    categories: CategoryStore,
    catalog: CatalogStore,
    readiness: dict[str, ReadinessCheck],
    *,
    currencies: Set[str],
) -> FastAPI:
    """`currencies`: those the shop sells in (the catalog refuses prices in any other)."""
    app = service_app("product", readiness, max_body_bytes=MAX_BODY_BYTES)
    app.include_router(inventory_router(store))
    app.include_router(categories_router(categories))
    app.include_router(catalog_router(catalog, currencies))
    return app
