"""The product service's FastAPI application: its routers, error shape, health and metrics."""

from __future__ import annotations

from fastapi import FastAPI

from commerce_services.product.catalog.http_api import catalog_router
from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.http_api import categories_router
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.inventory.http_api import inventory_router
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.web.errors import install_error_handlers
from commerce_services.web.health import ReadinessCheck, health_router
from commerce_services.web.metrics import install_metrics


def create_app(
    store: InventoryStore,
    categories: CategoryStore,
    readiness: dict[str, ReadinessCheck],
    *,
    catalog: CatalogStore | None = None,
) -> FastAPI:
    """`catalog`: the product catalog's routes are served only when it is given."""
    app = FastAPI(title="commerce product service", version="1")
    install_error_handlers(app)
    install_metrics(app, "product")
    app.include_router(health_router(readiness))
    app.include_router(inventory_router(store))
    app.include_router(categories_router(categories))
    if catalog is not None:
        app.include_router(catalog_router(catalog))
    return app
