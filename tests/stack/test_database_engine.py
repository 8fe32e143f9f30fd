"""The serving engine's pooled connections: one idle past the ping threshold is pinged at
checkout and, when the server closed it, replaced without failing the transaction that drew it;
one used a moment ago is not pinged, so a server-side close inside that window fails that one
transaction as an outage, and the pool has replaced it for the next. The reading engine's
connections are in autocommit and go back to the pool without a ROLLBACK round trip; the
service engine's get one only when a transaction may still be open on them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.engine import ping_when_idle, reading_engine, service_engine
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


async def _rollbacks_seen(engine: AsyncEngine) -> tuple[int, int, int]:
    """The connection drawn, its autocommit, and the ROLLBACKs it has received so far."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT CONNECTION_ID(), @@autocommit, VARIABLE_VALUE "
                    "FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'COM_ROLLBACK'"
                )
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.parametrize(
    ("make_engine", "autocommit", "rollbacks_per_read"),
    [(reading_engine, 1, 0), (service_engine, 0, 1)],
    ids=["reading engine", "service engine"],
)
async def test_only_the_reading_engine_skips_the_rollback_of_a_returned_connection(
    stack: Endpoints,
    make_engine: Callable[[DatabaseSettings], AsyncEngine],
    autocommit: int,
    rollbacks_per_read: int,
) -> None:
    settings = DatabaseSettings.from_values(stack.service_settings("payment"))
    engine = make_engine(settings.model_copy(update={"db_pool_size": 1}))
    try:
        first = await _rollbacks_seen(engine)
        second = await _rollbacks_seen(engine)
        third = await _rollbacks_seen(engine)
    finally:
        await engine.dispose()
    assert first[0] == second[0] == third[0], "the pool should hand out its one connection"
    assert (first[1], second[1]) == (autocommit, autocommit)
    assert third[2] - second[2] == second[2] - first[2] == rollbacks_per_read


def _open_a_transaction_sqlalchemy_does_not_know(sync_conn: Connection) -> None:
    # The driver's own cursor: SQLAlchemy's Connection sees no statement, so it ends no
    # transaction when it closes, and only the pool's reset stands between this one and the
    # connection's next user.
    raw = sync_conn.connection.dbapi_connection
    assert raw is not None
    raw.cursor().execute("UPDATE alembic_version SET version_num = version_num")
    assert raw.driver_connection.get_transaction_status()


async def test_the_service_engine_rolls_back_a_returned_connection_only_if_its_transaction_is_open(
    stack: Endpoints,
) -> None:
    settings = DatabaseSettings.from_values(stack.service_settings("payment"))
    engine = service_engine(settings.model_copy(update={"db_pool_size": 1}))
    try:
        start = await _rollbacks_seen(engine)  # each look is a read: SQLAlchemy rolls it back
        async with engine.begin() as conn:
            await conn.execute(text("SELECT COUNT(*) FROM alembic_version FOR UPDATE"))
        after_commit = await _rollbacks_seen(engine)
        async with engine.connect() as conn:
            await conn.run_sync(_open_a_transaction_sqlalchemy_does_not_know)
        after_open = await _rollbacks_seen(engine)
    finally:
        await engine.dispose()
    assert start[0] == after_commit[0] == after_open[0], "the pool should hand out its one"
    assert after_commit[2] - start[2] == 1, "a committed transaction needs no ROLLBACK"
    assert after_open[2] - after_commit[2] == 2, "an open transaction must be rolled back"
