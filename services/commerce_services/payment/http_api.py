"""Payment service REST API under /api/v1: reading an order's payment. Payments are only ever
made by the saga (the `order_created` consumer), never through this API.

Who may: a signed-in customer reads the payments of their own orders (the buyer is recorded
from `order_created`); staff read any. Another customer's payment is left out of the answer,
as one that does not exist."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.auth.http_access import Access, AccessRules, Caller
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.payment.tables import payments
from commerce_services.web.app import service_app
from commerce_services.web.health import ReadinessCheck
from commerce_services.web.text import SINGLE_LINE
from commerce_services.web.timestamps import UtcTimestamp


class PaymentView(BaseModel):
    payment_id: str
    order_id: str
    status: str  # SUCCEEDED, FAILED, REFUNDED or VOIDED
    reason: str | None
    amount: Decimal
    currency: str
    created_at: UtcTimestamp
    updated_at: UtcTimestamp | None


class PaymentList(BaseModel):
    items: list[PaymentView]


ACCESS: AccessRules = {("GET", "/api/v1/payments"): Access.SIGNED_IN}


def payments_router(engine: AsyncEngine) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["payments"])

    @router.get("/payments")
    async def for_order(
        caller: Caller,
        order_id: Annotated[str, Query(min_length=1, max_length=64, pattern=SINGLE_LINE)],
    ) -> PaymentList:
        # A list, empty until the saga reached the payment: "not yet" is not an error.
        async with engine.connect() as conn:
            rows = await conn.execute(select(payments).where(payments.c.order_id == order_id))
            return PaymentList(
                items=[
                    PaymentView(
                        payment_id=row.payment_id,
                        order_id=row.order_id,
                        status=row.status,
                        reason=row.reason,
                        amount=row.amount,
                        currency=row.currency,
                        created_at=row.created_at,
                        updated_at=row.updated_at,
                    )
                    for row in rows
                    if caller.may_see(row.user_id)
                ]
            )

    return router


def create_app(
    engine: AsyncEngine, readiness: dict[str, ReadinessCheck], verifier: TokenVerifier | None
) -> FastAPI:
    app = service_app("payment", readiness, ACCESS, verifier)
    app.include_router(payments_router(engine))
    return app
