"""Transaction helpers against the real MariaDB: actions after commit only."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.db.transactions import after_commit


async def _roll_back_after_registering(engine: AsyncEngine, ran: list[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
        after_commit(conn, lambda: ran.append("rolled back"))
        raise RuntimeError("abort")


async def test_after_commit_runs_once_on_commit_and_never_on_rollback(engine: AsyncEngine) -> None:
    ran: list[str] = []
    async with engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
        after_commit(conn, lambda: ran.append("committed"))
        assert ran == []  # not before the commit
    with pytest.raises(RuntimeError):
        await _roll_back_after_registering(engine, ran)
    for _ in range(3):  # the pooled connection does not keep the listener
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
    assert ran == ["committed"]
