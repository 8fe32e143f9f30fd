"""The serving engine's pooled connections: one idle past the ping threshold is pinged at
checkout and, when the server closed it, replaced without failing the transaction that drew it;
one used a moment ago is not pinged, so a server-side close inside that window fails that one
transaction as an outage, and the pool has replaced it for the next."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.engine import ping_when_idle
from commerce_services.db.outages import is_outage
from commerce_services.db.settings import DatabaseSettings

IDLE_S = 0.5


async def _connection_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT CONNECTION_ID()"))).scalar_one())


async def _kill(settings: DatabaseSettings, connection_id: int) -> None:
    # Another client of the same account closes it, as a server restart or KILL would.
    other = create_async_engine(settings.database_url())
    try:
        async with other.connect() as conn:
            await conn.execute(text(f"KILL CONNECTION {int(connection_id)}"))
    finally:
        await other.dispose()


async def test_a_pooled_connection_is_pinged_after_idling_and_only_then(stack: Endpoints) -> None:
    settings = DatabaseSettings.from_values(stack.service_settings("payment"))
    engine = create_async_engine(settings.database_url(), pool_size=1, max_overflow=0)
    ping_when_idle(engine, IDLE_S)
    try:
        first = await _connection_id(engine)
        await _kill(settings, first)
        await asyncio.sleep(IDLE_S * 2)
        # Idle past the threshold: pinged, found closed, replaced; the caller sees nothing.
        second = await _connection_id(engine)
        assert second != first

        await _kill(settings, second)
        # Used a moment ago: not pinged, so this transaction meets the closed connection.
        with pytest.raises(DBAPIError) as closed:
            await _connection_id(engine)
        assert is_outage(closed.value), closed.value
        third = await _connection_id(engine)
        assert third not in (first, second)
    finally:
        await engine.dispose()
