"""Every service's FastAPI app, built without its stores: enough to read its routes, its
OpenAPI and its access rules (no route is called)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from fastapi import FastAPI

from commerce_services.auth.keys import StaticKeys
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.order.http_api import create_app as order_app
from commerce_services.payment.http_api import create_app as payment_app
from commerce_services.product.http_api import create_app as product_app
from commerce_services.search.http_api import create_app as search_app
from commerce_services.user.http_api import create_app as user_app

NONE = cast(Any, None)  # the routes' dependencies; building the app never calls them
VERIFIER = TokenVerifier(StaticKeys({}), issuer="test", audience="test")

APPS: dict[str, Callable[[], FastAPI]] = {
    "user": lambda: user_app(NONE, NONE, NONE, VERIFIER, {}),
    "product": lambda: product_app(NONE, NONE, NONE, {}, currencies={"EUR"}, verifier=VERIFIER),
    "order": lambda: order_app(NONE, NONE, "EUR", {}, VERIFIER),
    "payment": lambda: payment_app(NONE, {}, VERIFIER),
    "search": lambda: search_app(NONE, "products", NONE, {}),
}
