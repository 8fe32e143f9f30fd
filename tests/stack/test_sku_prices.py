"""The price projection's reads against the product database: concurrent reads share one
statement, and each caller still gets exactly the prices it asked for."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.model import Price
from commerce_services.product.catalog.sku_prices import SkuPrices, replace_in


async def test_concurrent_reads_are_one_statement_each_answered_its_own(
    engine: AsyncEngine, unique: str
) -> None:
    a, b, c = f"A-{unique}", f"B-{unique}", f"C-{unique}"
    async with engine.begin() as conn:
        await replace_in(
            conn, uuid.uuid4().hex, 1, [(a, Price(100, "EUR")), (b, Price(250, "EUR"))]
        )
        await replace_in(conn, uuid.uuid4().hex, 3, [(c, Price(999, "USD"))])
    prices = SkuPrices(engine)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await prices.prices([a]) == {a: Price(100, "EUR")}  # alone: at once
        assert len(statements) == 1
        statements.clear()
        answers = await asyncio.gather(
            prices.prices([a, b]),
            prices.prices([c, f"NONE-{unique}"]),
            prices.prices([b]),
            prices.prices([f"NONE-{unique}"]),
            prices.prices([]),
        )
        # All four joined the queue before its reader ran: one statement for the lot.
        assert len(statements) == 1
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert list(answers) == [
        {a: Price(100, "EUR"), b: Price(250, "EUR")},
        {c: Price(999, "USD")},
        {b: Price(250, "EUR")},
        {},
        {},
    ]
