"""The product service's FastAPI application: inventory, categories and the catalog, and who
may call each of their routes: anyone reads products and categories; staff write them, set and
read stock."""

from __future__ import annotations

from collections.abc import Set

from fastapi import FastAPI

from commerce_services.auth.http_access import Access, AccessRules
from commerce_services.auth.tokens import TokenVerifier
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

ACCESS: AccessRules = {
    ("POST", "/api/v1/products"): Access.STAFF,
    ("GET", "/api/v1/products/{product_id}"): Access.ANONYMOUS,
    ("PUT", "/api/v1/products/{product_id}"): Access.STAFF,
    ("DELETE", "/api/v1/products/{product_id}"): Access.STAFF,
    ("GET", "/api/v1/categories/{category_id}/products"): Access.ANONYMOUS,
    ("POST", "/api/v1/categories"): Access.STAFF,
    ("GET", "/api/v1/categories/{category_id}"): Access.ANONYMOUS,
    ("GET", "/api/v1/categories/{category_id}/ancestors"): Access.ANONYMOUS,
    ("GET", "/api/v1/categories/{category_id}/descendants"): Access.ANONYMOUS,
    ("PATCH", "/api/v1/categories/{category_id}"): Access.STAFF,
    # Stock and reservations are the shop's business; shoppers see availability in search.
    ("PUT", "/api/v1/inventory/{sku}"): Access.STAFF,
    ("GET", "/api/v1/inventory/{sku}"): Access.STAFF,
}


def create_app(
    store: InventoryStore,
    categories: CategoryStore,
    catalog: CatalogStore,
    readiness: dict[str, ReadinessCheck],
    *,
    currencies: Set[str],
    verifier: TokenVerifier | None,
) -> FastAPI:
    """`currencies`: those the shop sells in (the catalog refuses prices in any other)."""
    app = service_app("product", readiness, ACCESS, verifier, max_body_bytes=MAX_BODY_BYTES)
    app.include_router(inventory_router(store))
    app.include_router(categories_router(categories))
    app.include_router(catalog_router(catalog, currencies))
    return app
