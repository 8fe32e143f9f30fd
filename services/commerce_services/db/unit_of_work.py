"""A Unit of Work: one database transaction, and what must happen only once it commits.

Whoever starts the work opens it (an event consumer, a gRPC or HTTP adapter, a sweep); the
stores and handlers it calls receive it and run their statements in it, so one method serves
both "its own transaction" and "part of the caller's". `run` retries the whole unit when InnoDB
rolled it back (deadlock, lock wait timeout); a unit opened with `begin` is retried by its
opener (the consumer retries the whole event).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.db.transactions import retry_transaction

T = TypeVar("T")


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, action: Callable[[], None]) -> None:
        """Runs `action` once this unit commits, never if it rolls back (metrics that must
        count only what really happened)."""
        self._after_commit.append(action)


class UnitsOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[UnitOfWork]:
        """A unit committed when the block ends, rolled back if it raises."""
        async with self._engine.begin() as conn:
            unit = UnitOfWork(conn)
            yield unit
        for action in unit._after_commit:
            action()

    @retry_transaction
    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """`work` in a unit of its own, retried whole if InnoDB rolled it back."""
        async with self.begin() as unit:
            return await work(unit)
