"""The Unit of Work against the real MariaDB: actions after commit only."""

from __future__ import annotations

import pytest
from pymysql.err import OperationalError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError as WrappedError
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.db.unit_of_work import UnitOfWork, UnitsOfWork


async def _roll_back_after_registering(units: UnitsOfWork, ran: list[str]) -> None:
    async with units.begin() as unit:
        await unit.conn.execute(text("SELECT 1"))
        unit.after_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("abort")


async def test_after_commit_runs_once_on_commit_and_never_on_rollback(engine: AsyncEngine) -> None:
    units = UnitsOfWork(engine)
    ran: list[str] = []
    async with units.begin() as unit:
        await unit.conn.execute(text("SELECT 1"))
        unit.after_commit(lambda: ran.append("committed"))
        assert ran == []  # not before the commit
    with pytest.raises(RuntimeError):
        await _roll_back_after_registering(units, ran)
    for _ in range(3):  # the pooled connection keeps nothing of an earlier unit
        async with units.begin() as unit:
            await unit.conn.execute(text("SELECT 1"))
    assert ran == ["committed"]


async def test_run_retries_a_deadlocked_unit_whole(engine: AsyncEngine) -> None:
    units = UnitsOfWork(engine)
    tries: list[int] = []

    async def work(unit: UnitOfWork) -> str:
        tries.append(1)
        if len(tries) == 1:
            raise WrappedError("stmt", {}, OperationalError(1213, "Deadlock found"))
        return "done"

    assert await units.run(work) == "done"
    assert len(tries) == 2
