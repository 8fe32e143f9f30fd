"""A serving process's database engine, sized by its settings, and its readiness check."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, PoolResetState

from commerce_services.db.settings import DatabaseSettings

# A pooled connection idle longer than this is pinged before use. A restart of the server
# takes longer, so every connection from before one is pinged (and replaced) after it, as
# with SQLAlchemy's pool_pre_ping; a connection used within this time is not, which saves a
# round trip per transaction under load. One the server closes inside this time (KILL) fails
# its request as an outage (503), and the pool replaces it.
IDLE_BEFORE_PING_S = 1.0
_RETURNED_AT = "commerce_returned_at"


def service_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The engine of every transaction (a unit of work, each write). A connection whose
    transaction was committed goes back to the pool without a ROLLBACK round trip
    (`roll_back_only_open_transactions`)."""
    engine = _pooled(settings, pool_reset_on_return=None)
    roll_back_only_open_transactions(engine)
    return engine


def reading_engine(settings: DatabaseSettings) -> AsyncEngine:
    """An engine for statements that only read, each on its own: its connections are in
    autocommit, so each statement is its own consistent snapshot (InnoDB's consistent read),
    nothing is left open, and giving a connection back to the pool costs no ROLLBACK round
    trip (`skip_autocommit_rollback`). Never for a write: there is no transaction to hold it."""
    return _pooled(settings, isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)


def _pooled(settings: DatabaseSettings, **options: Any) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url(),
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        **options,
    )
    ping_when_idle(engine, IDLE_BEFORE_PING_S)
    return engine


def ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Pings a pooled connection at checkout when it was idle longer than `idle_s`; one that
    does not answer is replaced (the pool draws another) instead of failing the request."""
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def drawn(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at <= idle_s:
            return  # just opened, or used a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("a pooled connection did not answer its ping") from exc


def roll_back_only_open_transactions(engine: AsyncEngine) -> None:
    """Resets a returned connection with a ROLLBACK only when a transaction may be open on it.
    SQLAlchemy's pool rolls back every returned connection, a round trip per transaction even
    right after its COMMIT. A Connection that closes with its transaction open rolls it back
    itself (`transaction_was_reset`); otherwise SQLAlchemy ended it, and only a write through
    the driver behind SQLAlchemy's back could have opened one, which the server's status flags
    in its last reply show. The engine must be made with `pool_reset_on_return=None`."""

    @event.listens_for(engine.sync_engine, "reset")
    def reset(dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
        if state.terminate_only or not state.asyncio_safe or state.transaction_was_reset:
            return  # discarded, no I/O possible here, or rolled back already
        if dbapi_connection.driver_connection.get_transaction_status():
            dbapi_connection.rollback()


def database_ready(engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    """A readiness check (web/health.py's shape): raises when the database does not answer."""

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check
