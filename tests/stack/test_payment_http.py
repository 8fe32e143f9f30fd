"""The payment service's REST API against its real database: an order's payment, bad input."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.unit_of_work import UnitsOfWork
from commerce_services.events.envelope import Event
from commerce_services.payment.charging import PaymentProcessor
from commerce_services.payment.gateway import FakeGateway
from commerce_services.payment.http_api import create_app
from commerce_services.payment.migrations import upgrade
from commerce_services.payment.settings import PaymentSettings
from commerce_services.runtime.clock import utc_now
from tests.stack.access_tokens import AUTH_SETTINGS, STAFF_HEADERS, VERIFIER, customer
from tests.stack.error_shape import api_error
from tests.stack.migrations import migrator as _migrator


async def _ready() -> None:
    return None


@pytest.fixture
async def payment_engine(stack: Endpoints) -> AsyncIterator[AsyncEngine]:
    settings = PaymentSettings.from_values({**stack.service_settings("payment"), **AUTH_SETTINGS})
    upgrade(_migrator(stack, "payment"))
    engine = create_async_engine(settings.database_url())
    yield engine
    await engine.dispose()


@pytest.fixture
async def api(payment_engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(payment_engine, {"mariadb": _ready}, VERIFIER)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://payment.test", headers=STAFF_HEADERS
    ) as client:
        yield client


async def test_an_orders_payment_and_none_before_it(
    api: httpx.AsyncClient, payment_engine: AsyncEngine, unique: str
) -> None:
    order_id = f"pay-{unique}"
    assert (await api.get("/api/v1/payments", params={"order_id": order_id})).json() == {
        "items": []
    }
    event = Event(
        "commerce.order.events",
        0,
        0,
        order_id,
        str(uuid.uuid4()),
        "order_created",
        {"order_id": order_id, "total": "12.30", "currency": "EUR", "payment_token": "tok_visa"},
    )
    async with UnitsOfWork(payment_engine).begin() as unit:
        await PaymentProcessor(FakeGateway(), utc_now).on_order_created(unit, event)
    [payment] = (await api.get("/api/v1/payments", params={"order_id": order_id})).json()["items"]
    assert datetime.fromisoformat(payment["created_at"]).utcoffset() == timedelta(0)
    assert (payment["order_id"], payment["status"], payment["amount"], payment["currency"]) == (
        order_id,
        "SUCCEEDED",
        "12.30",
        "EUR",
    )


async def test_a_customer_sees_the_payments_of_their_own_orders_only(
    api: httpx.AsyncClient, payment_engine: AsyncEngine, unique: str
) -> None:
    order_id, buyer, other = f"own-{unique}", uuid.uuid4().hex, uuid.uuid4().hex
    event = Event(
        "commerce.order.events",
        0,
        0,
        order_id,
        str(uuid.uuid4()),
        "order_created",
        {
            "order_id": order_id,
            "user_id": buyer,
            "total": "5.00",
            "currency": "EUR",
            "payment_token": "tok_visa",
        },
    )
    async with UnitsOfWork(payment_engine).begin() as unit:
        await PaymentProcessor(FakeGateway(), utc_now).on_order_created(unit, event)
    query = {"order_id": order_id}

    async def seen(headers: dict[str, str]) -> list[str]:
        answer = await api.get("/api/v1/payments", params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        return [p["order_id"] for p in answer.json()["items"]]

    assert await seen(customer(buyer)) == [order_id]
    assert await seen(customer(other)) == []  # as if there were none
    assert await seen(STAFF_HEADERS) == [order_id]
    anonymous = await api.get("/api/v1/payments", params=query, headers={"Authorization": ""})
    assert (anonymous.status_code, api_error(anonymous)["code"]) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/payments", {}, 422, "validation_failed"),
        ("/api/v1/payments", {"order_id": ""}, 422, "validation_failed"),
        ("/api/v1/payments", {"order_id": "x" * 65}, 422, "validation_failed"),
        ("/api/v1/payments", {"order_id": "a\x00b"}, 422, "validation_failed"),
        ("/api/v1/payments/abc", {}, 404, "not_found"),
    ],
)
async def test_bad_requests_get_the_error_shape(
    api: httpx.AsyncClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = await api.get(path, params=params)
    assert response.status_code == status
    assert api_error(response)["code"] == code
