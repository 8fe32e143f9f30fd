"""REST routes of the inventory: PUT and GET /api/v1/inventory/{sku}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from commerce_services.product.inventory.model import MAX_STOCK, InvalidRequest, validate_sku
from commerce_services.product.inventory.store import InventoryStore, StockBelowReserved, StockLevel
from commerce_services.web.errors import ApiError

# The model tells a malformed SKU (422 invalid_sku); this only bounds it.
Sku = Annotated[str, Path(max_length=64)]


class StockUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    stock: int = Field(ge=0, le=MAX_STOCK)


class StockView(BaseModel):
    sku: str
    stock: int
    reserved: int
    available: int

    @classmethod
    def of(cls, level: StockLevel) -> StockView:
        return cls(
            sku=level.sku, stock=level.stock, reserved=level.reserved, available=level.available
        )


def _checked_sku(sku: str) -> str:
    try:
        validate_sku(sku)
    except InvalidRequest as exc:
        raise ApiError(422, "invalid_sku", str(exc)) from exc
    return sku


def inventory_router(store: InventoryStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])

    @router.put("/{sku}")
    async def set_stock(sku: Sku, body: StockUpdate) -> StockView:
        try:
            return StockView.of(await store.set_stock(_checked_sku(sku), body.stock))
        except StockBelowReserved as exc:
            raise ApiError(
                409, "stock_below_reserved", str(exc), {"sku": exc.sku, "reserved": exc.reserved}
            ) from exc

    @router.get("/{sku}")
    async def get_stock(sku: Sku) -> StockView:
        level = await store.stock_level(_checked_sku(sku))
        if level is None:
            raise ApiError(404, "not_found", f"no inventory for sku {sku}")
        return StockView.of(level)

    return router
