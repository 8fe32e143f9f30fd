"""Every HTTP operation of every service states who may call it, and the rule is enforced:
a route missing from its service's rules is refused to everyone (default deny), a signed-in
route refuses an anonymous caller with 401 and a challenge, a staff route refuses a customer
with 403, all in the one error shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from commerce_services.auth.http_access import Access, Caller
from commerce_services.auth.keys import StaticKeys
from commerce_services.auth.principal import CUSTOMER, STAFF
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.user.signing import AccessTokenIssuer, SigningKeys, new_signing_key
from commerce_services.web.app import INFRASTRUCTURE_ACCESS, service_app
from tests.unit.service_apps import APPS

KEYS = SigningKeys.from_jwks(json.dumps({"keys": [new_signing_key("k1")]}), "k1")
ISSUER = AccessTokenIssuer(KEYS, "https://issuer.test", "commerce-api", timedelta(minutes=5))


def _rules(app: FastAPI) -> dict[tuple[str, str], Access]:
    rules: dict[tuple[str, str], Access] = app.state.access_rules
    return rules


@pytest.mark.parametrize("service", APPS)
def test_every_route_of_every_service_has_a_rule(service: str) -> None:
    app = APPS[service]()
    rules = _rules(app)
    # The OpenAPI lists the routers' operations; the app's own routes (/metrics) are read
    # directly.
    operations = {
        (method.upper(), path)
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    } | {
        (method, route.path_format)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert operations - rules.keys() == set()
    # ... and no rule names an operation that does not exist (a renamed route would keep a
    # stale rule and lose its own).
    assert rules.keys() - operations == set()
    assert INFRASTRUCTURE_ACCESS.keys() <= rules.keys()


def test_anonymous_operations_are_the_ones_the_issue_lists() -> None:
    anonymous = {
        (service, method, path)
        for service, make in APPS.items()
        for (method, path), rule in _rules(make()).items()
        if rule is Access.ANONYMOUS and (method, path) not in INFRASTRUCTURE_ACCESS
    }
    assert anonymous == {
        ("user", "POST", "/api/v1/users"),
        ("user", "POST", "/api/v1/auth/token"),
        ("user", "POST", "/api/v1/auth/refresh"),
        ("user", "POST", "/api/v1/auth/sign-out"),
        ("user", "GET", "/api/v1/auth/jwks.json"),
        ("product", "GET", "/api/v1/products/{product_id}"),
        ("product", "GET", "/api/v1/categories/{category_id}"),
        ("product", "GET", "/api/v1/categories/{category_id}/ancestors"),
        ("product", "GET", "/api/v1/categories/{category_id}/descendants"),
        ("product", "GET", "/api/v1/categories/{category_id}/products"),
        ("search", "GET", "/api/v1/search"),
        ("search", "GET", "/api/v1/search/suggest"),
    }


@pytest.mark.parametrize("service", APPS)
def test_the_openapi_names_the_bearer_token_where_one_is_needed(service: str) -> None:
    app = APPS[service]()
    rules = _rules(app)
    schema = app.openapi()
    assert schema["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            needs_token = rules[(method.upper(), path)] is not Access.ANONYMOUS
            assert ("security" in operation) == needs_token, (method, path)
            if needs_token:
                assert operation["security"] == [{"bearer": []}]
    # The error shape stays documented next to the security scheme.
    assert "ErrorBody" in schema["components"]["schemas"]


def _app() -> FastAPI:
    verifier = TokenVerifier(
        StaticKeys(KEYS.public_keys()), issuer="https://issuer.test", audience="commerce-api"
    )
    rules = {("GET", "/open"): Access.ANONYMOUS, ("GET", "/mine"): Access.SIGNED_IN}
    rules[("POST", "/staff")] = Access.STAFF
    app = service_app("rules-test", {}, rules, verifier)

    @app.get("/open")
    async def open_() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/mine")
    async def mine(caller: Caller) -> dict[str, str]:
        return {"user_id": caller.user_id}

    @app.post("/staff")
    async def staff() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/forgotten")  # no rule
    async def forgotten() -> dict[str, str]:
        return {"leaked": "yes"}

    return app


def _bearer(roles: frozenset[str]) -> dict[str, str]:
    token = ISSUER.issue("u1", roles, datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", "/open", {}, 200, None),
        ("GET", "/open", {"Authorization": "Bearer garbage"}, 200, None),  # never read
        ("GET", "/forgotten", frozenset({STAFF}), 403, "forbidden"),
        ("GET", "/mine", {}, 401, "unauthorized"),
        ("GET", "/mine", {"Authorization": "Basic dTpw"}, 401, "unauthorized"),
        ("GET", "/mine", {"Authorization": "Bearer garbage"}, 401, "unauthorized"),
        ("GET", "/mine", frozenset({CUSTOMER}), 200, None),
        ("POST", "/staff", {}, 401, "unauthorized"),
        ("POST", "/staff", frozenset({CUSTOMER}), 403, "forbidden"),
        ("POST", "/staff", frozenset(), 403, "forbidden"),
        ("POST", "/staff", frozenset({STAFF}), 200, None),
    ],
)
async def test_the_rule_decides_before_the_handler(
    method: str,
    path: str,
    headers: dict[str, str] | frozenset[str],
    status: int,
    code: str | None,
) -> None:
    # Roles become a token minted now: one minted at collection expires in a long run.
    if isinstance(headers, frozenset):
        headers = _bearer(headers)
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
        answer = await client.request(method, path, headers=headers)
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["error"]["code"] == code
        assert set(answer.json()["error"]) == {"code", "message", "details"}
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_an_app_with_signed_in_routes_needs_a_verifier() -> None:
    with pytest.raises(ValueError, match="verifier"):
        service_app("rules-test", {}, {("GET", "/mine"): Access.SIGNED_IN}, None)
