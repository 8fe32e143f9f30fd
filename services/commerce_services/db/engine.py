"""A serving process's database engine, sized by its settings, and its readiness check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_services.db.settings import DatabaseSettings


def service_engine(settings: DatabaseSettings) -> AsyncEngine:
    # pre_ping: a pooled connection the server closed (restart, wait_timeout) is replaced
    # instead of failing the request that drew it.
    return create_async_engine(
        settings.database_url(),
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
    )


def database_ready(engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    """A readiness check (web/health.py's shape): raises when the database does not answer."""

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check
