"""The sign-in flow over fakes of its stores: the right password of an account gets tokens and
clears its limits; a wrong password, an unknown email and an account without a password (made
before sign-in existed) are all refused the same way, even when the password typed is the one
the decoy hash was made from; an outdated hash is replaced on a successful sign-in."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from argon2 import PasswordHasher

from commerce_services.auth.principal import CUSTOMER
from commerce_services.user.identity import BadCredentials, Identity
from commerce_services.user.model import User, UserStatus
from commerce_services.user.passwords import Passwords
from commerce_services.user.signing import AccessTokenIssuer, SigningKeys, new_signing_key

NOW = datetime(2026, 12, 3, 10, 0, 0)
PASSWORD = "correct horse battery"
DECOY = "no account has this password"  # what Passwords hashes as its decoy
# Cheap parameters: the flow is under test, not argon2's cost.
HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
KEYS = SigningKeys.from_jwks(json.dumps({"keys": [new_signing_key("k1")]}), "k1")


def _user(email: str) -> User:
    return User("u" * 32, email, "Ann", UserStatus.ACTIVE, NOW, NOW, frozenset({CUSTOMER}))


class Users:
    def __init__(self, accounts: dict[str, str | None]) -> None:
        self.hashes = accounts  # email -> password hash (None: the account has none)

    async def credentials(self, email: str) -> tuple[User, str | None] | None:
        if email not in self.hashes:
            return None
        return _user(email), self.hashes[email]

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        (email,) = self.hashes
        self.hashes[email] = password_hash


class Limits:
    def __init__(self) -> None:
        self.succeeded_for: list[str] = []

    async def attempt(self, email: str, address: str) -> None:
        pass

    async def succeeded(self, email: str, address: str) -> None:
        self.succeeded_for.append(email)


class RefreshTokens:
    async def issue(self, user_id: str) -> str:
        return f"refresh-of-{user_id}"


def _identity(users: Users, limits: Limits) -> Identity:
    issuer = AccessTokenIssuer(KEYS, "https://issuer.test", "commerce-api", timedelta(minutes=5))
    return Identity(
        cast(Any, users),
        Passwords(HASHER),
        cast(Any, limits),
        cast(Any, RefreshTokens()),
        issuer,
        lambda: NOW,
    )


async def test_the_right_password_gets_tokens_and_clears_the_limits() -> None:
    users, limits = Users({"ann@example.com": HASHER.hash(PASSWORD)}), Limits()
    tokens = await _identity(users, limits).sign_in("ann@example.com", PASSWORD, "192.0.2.1")
    assert (tokens.user_id, tokens.refresh_token) == ("u" * 32, f"refresh-of-{'u' * 32}")
    assert tokens.expires_in == 300
    assert limits.succeeded_for == ["ann@example.com"]


@pytest.mark.parametrize(
    ("accounts", "password"),
    [
        ({"ann@example.com": HASHER.hash(PASSWORD)}, "wrong password!"),
        ({}, PASSWORD),  # no such account
        ({"ann@example.com": None}, PASSWORD),  # an account from before sign-in
        ({"ann@example.com": None}, DECOY),  # ... and the decoy's own password
        ({}, DECOY),
    ],
    ids=["wrong password", "unknown email", "no password", "no password, decoy", "decoy"],
)
async def test_every_refusal_is_the_same_and_clears_nothing(
    accounts: dict[str, str | None], password: str
) -> None:
    users, limits = Users(accounts), Limits()
    with pytest.raises(BadCredentials, match="wrong email or password"):
        await _identity(users, limits).sign_in("ann@example.com", password, "192.0.2.1")
    assert limits.succeeded_for == []


async def test_an_outdated_hash_is_replaced_on_sign_in() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)
    users, limits = Users({"ann@example.com": weaker.hash(PASSWORD)}), Limits()
    await _identity(users, limits).sign_in("ann@example.com", PASSWORD, "192.0.2.1")
    replaced = users.hashes["ann@example.com"]
    assert replaced is not None
    assert not HASHER.check_needs_rehash(replaced)
    assert HASHER.verify(replaced, PASSWORD)
