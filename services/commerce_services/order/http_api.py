"""Order service REST API under /api/v1/orders: placing orders (with an Idempotency-Key),
reading one, and listing a user's (under /api/v1/orders, so the public Ingress, which sends
/api/v1/users to the user service, reaches it). Thin: placement and the store hold the rules.

Who may: a signed-in caller places orders as themselves (the buyer is the token's subject,
never a field of the body), reads their own orders and lists them; staff read and list
anyone's. Another customer's order is answered 404, as one that does not exist."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from commerce_services.auth.http_access import Access, AccessRules, Caller
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.order.model import (
    AttemptRolledBack,
    IdempotencyConflict,
    OrderNotFound,
    PlacementInProgress,
)
from commerce_services.order.placement import OrderPlacement
from commerce_services.order.ports import (
    DependencyUnavailable,
    InvalidItems,
    OutOfStock,
    UnknownSku,
    UserRejected,
)
from commerce_services.order.store import Order, OrderStore
from commerce_services.product.inventory.model import MAX_LINES, MAX_QUANTITY, SKU_PATTERN
from commerce_services.user.model import USER_ID
from commerce_services.web.app import service_app
from commerce_services.web.errors import ApiError
from commerce_services.web.health import ReadinessCheck
from commerce_services.web.timestamps import UtcTimestamp

ORDER_ID = r"^[0-9a-f]{32}$"
# Visible ASCII: what payment gateways issue as tokens and clients as idempotency keys.
TOKEN = r"^[\x21-\x7e]+$"
MAX_LISTED = 100


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sku: str = Field(pattern=SKU_PATTERN.pattern)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class Payment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(min_length=1, max_length=64, pattern=TOKEN)


class NewOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[Item] = Field(min_length=1, max_length=MAX_LINES)
    payment: Payment


class OrderLineView(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


class OrderView(BaseModel):
    order_id: str
    user_id: str
    status: str
    cancel_reason: str | None
    items: list[OrderLineView]
    total: Decimal
    currency: str
    created_at: UtcTimestamp

    @classmethod
    def of(cls, order: Order) -> OrderView:
        return cls(
            order_id=order.order_id,
            user_id=order.user_id,
            status=order.status.value,
            cancel_reason=order.cancel_reason,
            total=order.total,
            currency=order.currency,
            created_at=order.created_at,
            items=[
                OrderLineView(
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    amount=line.amount,
                )
                for line in order.lines
            ],
        )


IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=128, pattern=r"^[\x21-\x7e]*$")
]
OrderId = Annotated[str, Path(pattern=ORDER_ID)]


class OrderList(BaseModel):
    items: list[OrderView]  # newest first


ACCESS: AccessRules = {
    ("POST", "/api/v1/orders"): Access.SIGNED_IN,
    ("GET", "/api/v1/orders/{order_id}"): Access.SIGNED_IN,
    ("GET", "/api/v1/orders"): Access.SIGNED_IN,
}


def orders_router(placement: OrderPlacement, store: OrderStore, currency: str) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["orders"])

    @router.post("/orders", status_code=201)
    async def place(
        body: NewOrder, caller: Caller, idempotency_key: IdempotencyKey = None
    ) -> OrderView:
        if not idempotency_key:
            raise ApiError(
                400,
                "idempotency_key_required",
                "send an Idempotency-Key header (any unique string per order)",
            )
        merged: dict[str, int] = {}
        for item in body.items:
            merged[item.sku] = merged.get(item.sku, 0) + item.quantity
        try:
            order = await placement.place(
                caller.user_id,
                idempotency_key,
                sorted(merged.items()),
                currency,
                body.payment.token,
            )
        except OutOfStock as exc:
            raise ApiError(409, "out_of_stock", str(exc), {"skus": exc.skus}) from exc
        except UserRejected as exc:
            status = 409 if exc.code == "user_dormant" else 422
            raise ApiError(status, exc.code, str(exc)) from exc
        except UnknownSku as exc:
            # Either no such SKU or no price in the shop's currency: the client learns both.
            raise ApiError(
                422,
                "unknown_sku",
                f"no price in {currency} for {', '.join(exc.skus)}",
                {"skus": exc.skus, "currency": currency},
            ) from exc
        except IdempotencyConflict as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from exc
        except PlacementInProgress as exc:
            raise ApiError(
                409,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is being processed; "
                "send it again shortly to get its result",
            ) from exc
        except AttemptRolledBack as exc:
            raise ApiError(
                409,
                "idempotency_key_spent",
                "an earlier attempt with this Idempotency-Key was rolled back; "
                "send the order again with a new Idempotency-Key",
            ) from exc
        except InvalidItems as exc:
            raise ApiError(422, "invalid_items", str(exc)) from exc
        except DependencyUnavailable as exc:
            # Not the client's fault, and safe to retry with the same Idempotency-Key.
            raise ApiError(503, "dependency_unavailable", str(exc)) from exc
        return OrderView.of(order)

    @router.get("/orders/{order_id}")
    async def get(order_id: OrderId, caller: Caller) -> OrderView:
        try:
            order = await store.get(order_id)
        except OrderNotFound as exc:
            raise ApiError(404, "not_found", f"no order {order_id}") from exc
        if not caller.may_see(order.user_id):
            raise ApiError(404, "not_found", f"no order {order_id}")
        return OrderView.of(order)

    @router.get("/orders")
    async def for_user(
        caller: Caller,
        user_id: Annotated[
            str | None, Query(pattern=USER_ID.pattern, description="staff: whose; else yours")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 20,
    ) -> OrderList:
        """The caller's orders (staff: any user's), newest first (the `limit` newest)."""
        whose = caller.user_id if user_id is None else user_id
        if not caller.may_see(whose):
            raise ApiError(404, "not_found", f"no orders of user {whose} for you")
        return OrderList(
            items=[OrderView.of(order) for order in await store.for_user(whose, limit)]
        )

    return router


def create_app(
    placement: OrderPlacement,
    store: OrderStore,
    currency: str,
    readiness: dict[str, ReadinessCheck],
    verifier: TokenVerifier | None,
) -> FastAPI:
    app = service_app("order", readiness, ACCESS, verifier)
    app.include_router(orders_router(placement, store, currency))
    return app
