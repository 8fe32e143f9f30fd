"""Accounts of a running shop, for the tools and tests that call its APIs as a person would:
sign up a customer, sign in (the staff account `make up` and the local shop create, a customer),
and the Authorization header an access token goes in. Async for tests, benchmarks and the chaos
suite; sync for `make up`'s demo data and `make demo`."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def new_password() -> str:
    return secrets.token_urlsafe(18)


def _checked(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def _account(email: str, tokens: dict[str, Any]) -> Account:
    return Account(
        str(tokens["user_id"]), email, str(tokens["access_token"]), str(tokens["refresh_token"])
    )


async def sign_in(http: httpx.AsyncClient, users_url: str, email: str, password: str) -> Account:
    answer = await http.post(
        f"{users_url}/api/v1/auth/token", json={"email": email, "password": password}
    )
    return _account(email, _checked(answer, 200))


async def new_customer(http: httpx.AsyncClient, users_url: str, label: str = "shopper") -> Account:
    """A new customer account, signed in."""
    email = f"{label}-{uuid.uuid4().hex[:12]}@example.com"
    password = new_password()
    answer = await http.post(
        f"{users_url}/api/v1/users", json={"email": email, "name": label, "password": password}
    )
    _checked(answer, 201)
    return await sign_in(http, users_url, email, password)


def sign_in_sync(http: httpx.Client, users_url: str, email: str, password: str) -> Account:
    answer = http.post(
        f"{users_url}/api/v1/auth/token", json={"email": email, "password": password}
    )
    return _account(email, _checked(answer, 200))


def sign_up_sync(
    http: httpx.Client, users_url: str, email: str, name: str, password: str
) -> str | None:
    """The new account's id; None when the email has an account already."""
    answer = http.post(
        f"{users_url}/api/v1/users", json={"email": email, "name": name, "password": password}
    )
    if answer.status_code == 409:
        return None
    return str(_checked(answer, 201)["user_id"])
