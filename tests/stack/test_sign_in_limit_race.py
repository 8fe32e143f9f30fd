"""Guesses sent all at once cannot slip under the sign-in limit: of many concurrent attempts on
one account, exactly the limit are let through (real MongoDB wire server, several clients as
several replicas would be)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from commerce_devstack.endpoints import Endpoints
from commerce_services.user.sign_in_limits import Limit, SignInLimits, SignInRefused
from tests.stack.conftest import Clock

ALLOWED, SENT, REPLICAS = 3, 24, 3


@pytest.fixture
async def replicas(stack: Endpoints, clock: Clock) -> AsyncIterator[list[SignInLimits]]:
    database = f"sign_in_race_{uuid.uuid4().hex[:8]}"
    clients: list[AsyncMongoClient[dict[str, Any]]] = [
        AsyncMongoClient(stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000)
        for _ in range(REPLICAS)
    ]
    window = timedelta(minutes=15)
    yield [
        SignInLimits(
            client,
            database,
            clock,
            per_account=Limit(ALLOWED, window),
            per_address=Limit(1000, window),
        )
        for client in clients
    ]
    await clients[0].drop_database(database)
    for client in clients:
        await client.close()


async def test_concurrent_guesses_let_exactly_the_limit_through(
    replicas: list[SignInLimits],
) -> None:
    async def guess(n: int) -> bool:
        try:
            await replicas[n % REPLICAS].attempt("victim@example.com", f"198.51.100.{n}")
        except SignInRefused:
            return False
        return True

    let_through = await asyncio.gather(*(guess(n) for n in range(SENT)))
    assert sum(let_through) == ALLOWED
