"""Who may do what, against the real services (the four as processes, tokens signed by the
user service and verified by each service against its JWKS): every operation of the public
API called as anonymous, with a forged token, as the customer who owns the resource, as
another customer and as staff, and the answer each must get (401 without or with a bad token,
403 for the wrong role, 404 for another customer's resource, in the one error shape). Every
anonymous action issue 14 found possible is among the refused ones.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import LocalShop, local_shop
from commerce_devstack.settings import StackSettings
from commerce_devstack.shop_accounts import Account
from tests.stack.access_tokens import STAFF_HEADERS
from tests.stack.error_shape import api_error

CALLERS = ("anonymous", "forged", "owner", "other", "staff")


@dataclass
class World:
    shop: LocalShop
    headers: dict[str, dict[str, str]]  # caller -> Authorization header
    owner: Account
    category: int
    product: str  # a product id
    doomed: list[str]  # product ids staff may delete
    sku: str
    order: str  # the owner's order
    body: dict[str, Any]  # the product's body, for PUT

    def url(self, service: str) -> str:
        return self.shop.url(service)


def _product_body(category: int, sku: str) -> dict[str, Any]:
    return {
        "title": f"Table mug {sku}",
        "category_ids": [category],
        "primary_category_id": category,
        "variants": [{"sku": sku, "price": {"amount": "100.00", "currency": "EUR"}}],
    }


@pytest.fixture(scope="module")
async def world(stack: Endpoints) -> AsyncIterator[World]:
    prefix = f"authz{uuid.uuid4().hex[:8]}"
    async with (
        local_shop(stack, StackSettings().state_dir, prefix) as shop,
        httpx.AsyncClient(timeout=20) as http,
    ):
        staff, owner, other = (
            await shop.staff(http),
            await shop.customer(http, "owner"),
            await shop.customer(http, "other"),
        )
        http.headers.update(staff.headers)
        product_url = shop.url("product")
        category = await http.post(f"{product_url}/api/v1/categories", json={"name": prefix})
        assert category.status_code == 201, category.text
        category_id = int(category.json()["id"])
        sku = f"AUTHZ-{prefix}".upper()
        body = _product_body(category_id, sku)
        created = await http.post(f"{product_url}/api/v1/products", json=body)
        assert created.status_code == 201, created.text
        doomed = []
        for n in range(len(CALLERS)):
            extra = await http.post(
                f"{product_url}/api/v1/products", json=_product_body(category_id, f"{sku}-D{n}")
            )
            doomed.append(str(extra.json()["product_id"]))
        stocked = await http.put(f"{product_url}/api/v1/inventory/{sku}", json={"stock": 1000})
        assert stocked.status_code == 200, stocked.text
        placed = await http.post(
            f"{shop.url('order')}/api/v1/orders",
            headers={"Idempotency-Key": f"owner-{prefix}", **owner.headers},
            json={"items": [{"sku": sku, "quantity": 1}], "payment": {"token": "tok_visa"}},
        )
        assert placed.status_code == 201, placed.text
        yield World(
            shop=shop,
            headers={
                "anonymous": {},
                # Signed by a key the shop's issuer never had (the test session's own).
                "forged": STAFF_HEADERS,
                "owner": owner.headers,
                "other": other.headers,
                "staff": staff.headers,
            },
            owner=owner,
            category=category_id,
            product=str(created.json()["product_id"]),
            doomed=doomed,
            sku=sku,
            order=str(placed.json()["order_id"]),
            body=body,
        )


Request = Callable[[World, str], tuple[str, str, dict[str, Any]]]  # method, url, httpx kwargs


def _get(service: str, path: str, **params: str) -> Request:
    def request(w: World, caller: str) -> tuple[str, str, dict[str, Any]]:
        filled = path.format(w=w)
        return (
            "GET",
            w.url(service) + filled,
            {"params": {k: v.format(w=w) for k, v in params.items()}},
        )

    return request


def _send(method: str, service: str, path: str, body: Callable[[World, str], Any]) -> Request:
    def request(w: World, caller: str) -> tuple[str, str, dict[str, Any]]:
        return method, w.url(service) + path.format(w=w), {"json": body(w, caller)}

    return request


def _unique(caller: str) -> str:
    return f"{caller}-{uuid.uuid4().hex[:8]}"


ANYONE = dict.fromkeys(CALLERS, 200)
# Signed in, as the owner of what is asked for, or staff; another customer is told it is absent.
OWNER_OR_STAFF = {"anonymous": 401, "forged": 401, "owner": 200, "other": 404, "staff": 200}
STAFF_ONLY = {"anonymous": 401, "forged": 401, "owner": 403, "other": 403, "staff": 200}
SIGNED_IN = {"anonymous": 401, "forged": 401, "owner": 200, "other": 200, "staff": 200}

# (operation, request, expected status by caller)
TABLE: list[tuple[str, Request, dict[str, int]]] = [
    (
        "sign up",
        _send(
            "POST",
            "user",
            "/api/v1/users",
            lambda w, c: {
                "email": f"{_unique(c)}@example.com",
                "name": "Table",
                "password": "a table password",
            },
        ),
        dict.fromkeys(CALLERS, 201),
    ),
    ("the JWKS", _get("user", "/api/v1/auth/jwks.json"), ANYONE),
    ("read a user (their email)", _get("user", "/api/v1/users/{w.owner.user_id}"), OWNER_OR_STAFF),
    (
        "reactivate a user",
        _send("POST", "user", "/api/v1/users/{w.owner.user_id}/reactivate", lambda w, c: None),
        STAFF_ONLY,
    ),
    ("read a product", _get("product", "/api/v1/products/{w.product}"), ANYONE),
    (
        "create a product",
        _send(
            "POST",
            "product",
            "/api/v1/products",
            lambda w, c: _product_body(w.category, _unique(c).upper()),
        ),
        {**STAFF_ONLY, "staff": 201},
    ),
    (
        "change a price (100.00 to 0.01)",
        _send(
            "PUT",
            "product",
            "/api/v1/products/{w.product}",
            lambda w, c: {
                **w.body,
                "variants": [{"sku": w.sku, "price": {"amount": "0.01", "currency": "EUR"}}]
                if c != "staff"
                else w.body["variants"],
            },
        ),
        STAFF_ONLY,
    ),
    (
        "delete a product",
        lambda w, c: (
            "DELETE",
            f"{w.url('product')}/api/v1/products/{w.doomed[CALLERS.index(c)]}",
            {},
        ),
        {**STAFF_ONLY, "staff": 204},
    ),
    ("read a category", _get("product", "/api/v1/categories/{w.category}"), ANYONE),
    ("breadcrumbs", _get("product", "/api/v1/categories/{w.category}/ancestors"), ANYONE),
    ("subcategories", _get("product", "/api/v1/categories/{w.category}/descendants"), ANYONE),
    ("a category's products", _get("product", "/api/v1/categories/{w.category}/products"), ANYONE),
    (
        "create a category",
        _send("POST", "product", "/api/v1/categories", lambda w, c: {"name": _unique(c)}),
        {**STAFF_ONLY, "staff": 201},
    ),
    (
        "rename a category",
        _send(
            "PATCH", "product", "/api/v1/categories/{w.category}", lambda w, c: {"name": _unique(c)}
        ),
        STAFF_ONLY,
    ),
    (
        "set stock to a billion",
        _send(
            "PUT",
            "product",
            "/api/v1/inventory/{w.sku}",
            lambda w, c: {"stock": 1_000_000_000 if c != "staff" else 1000},
        ),
        STAFF_ONLY,
    ),
    ("read stock", _get("product", "/api/v1/inventory/{w.sku}"), STAFF_ONLY),
    ("read an order", _get("order", "/api/v1/orders/{w.order}"), OWNER_OR_STAFF),
    ("list one's own orders", _get("order", "/api/v1/orders"), SIGNED_IN),
    (
        "list a user's orders",
        _get("order", "/api/v1/orders", user_id="{w.owner.user_id}"),
        OWNER_OR_STAFF,
    ),
    # A list: another customer gets it empty (the payment is not theirs); see the test below.
    (
        "read an order's payments",
        _get("payment", "/api/v1/payments", order_id="{w.order}"),
        SIGNED_IN,
    ),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("operation", "request_of", "expected"), TABLE, ids=[t[0] for t in TABLE])
async def test_who_may_do_what(
    world: World,
    operation: str,
    request_of: Request,
    expected: dict[str, int],
    caller: str,
) -> None:
    method, url, kwargs = request_of(world, caller)
    async with httpx.AsyncClient(timeout=20, headers=world.headers[caller]) as http:
        answer = await http.request(method, url, **kwargs)
    assert answer.status_code == expected[caller], f"{operation} as {caller}: {answer.text}"
    if answer.status_code >= 400:
        error = api_error(answer)
        assert (
            error["code"]
            == {401: "unauthorized", 403: "forbidden", 404: "not_found"}[answer.status_code]
        )
    if answer.status_code == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_refused_writes_changed_nothing(world: World) -> None:
    """After the table: the price is 100.00, the stock is not a billion (staff set 1000)."""
    async with httpx.AsyncClient(timeout=20, headers=world.headers["staff"]) as http:
        product = (await http.get(f"{world.url('product')}/api/v1/products/{world.product}")).json()
        stock = (await http.get(f"{world.url('product')}/api/v1/inventory/{world.sku}")).json()
    assert product["variants"][0]["price"]["amount"] == "100.00"
    assert stock["stock"] < 1_000_000_000


async def test_an_order_is_placed_for_the_signed_in_customer_only(world: World) -> None:
    """Naming another buyer in the body is refused; the buyer is the token's subject."""
    other = world.headers["other"]
    async with httpx.AsyncClient(timeout=20, headers=other) as http:
        charged_to_owner = await http.post(
            f"{world.url('order')}/api/v1/orders",
            headers={"Idempotency-Key": _unique("steal")},
            json={
                "user_id": world.owner.user_id,
                "items": [{"sku": world.sku, "quantity": 1}],
                "payment": {"token": "tok_visa"},
            },
        )
        assert (charged_to_owner.status_code, api_error(charged_to_owner)["code"]) == (
            422,
            "validation_failed",
        )
        payments = await http.get(
            f"{world.url('payment')}/api/v1/payments", params={"order_id": world.order}
        )
    assert payments.json() == {"items": []}  # the owner's payment is not shown to another
