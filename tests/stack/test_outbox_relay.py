"""The outbox end to end: a change and its event committed together in MariaDB, relayed by the
real Debezium connector (configured by outbox_connector_config), consumed idempotently; a
rolled-back transaction publishes nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_services.contracts import OutboxConnectorSettings, outbox_connector_config
from commerce_services.events.envelope import decode
from commerce_services.events.outbox import Outbox, OutboxEvent, outbox_table
from commerce_services.runtime.clock import utc_now


class _Rollback(Exception):
    pass


@pytest.fixture
async def stackcheck_engine(stack: Endpoints) -> AsyncIterator[AsyncEngine]:
    dsn = stack.mariadb_dsn("stackcheck")
    engine = create_async_engine(
        f"mysql+aiomysql://{dsn['user']}:{dsn['password']}@{dsn['host']}:{dsn['port']}/"
        f"{dsn['database']}"
    )
    yield engine
    await engine.dispose()


async def test_committed_events_arrive_once_rolled_back_ones_never(
    stack: Endpoints, stackcheck_engine: AsyncEngine, unique: str
) -> None:
    metadata = MetaData()
    outbox = Outbox(outbox_table(metadata, f"outbox_{unique}"))
    orders = Table(
        f"orders_{unique}",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("total_cents", Integer, nullable=False),
    )
    async with stackcheck_engine.begin() as conn:
        await conn.run_sync(metadata.create_all)  # test scaffolding; services use migrations

    name = f"outbox-{unique}"
    dsn = stack.mariadb_dsn("stackcheck")
    replication = stack["mariadb"]["replication"]
    config = outbox_connector_config(
        OutboxConnectorSettings(
            name=name,
            database_host=dsn["host"],
            database_port=dsn["port"],
            database_user=replication["user"],
            database_password=stack.secret(replication["password_ref"]),
            database=dsn["database"],
            table=f"outbox_{unique}",
            server_id=random.randint(10_000, 4_000_000),
            bootstrap_servers=stack["kafka"]["bootstrap_servers"],
            topic_prefix=f"t{unique}",
        )
    )
    topic = f"t{unique}.order.events"
    async with httpx.AsyncClient(base_url=stack["connect"]["url"], timeout=30) as connect:
        assert (await connect.put(f"/connectors/{name}/config", json=config)).status_code == 201
        try:

            async def place(order_id: str, fail: bool) -> str:
                async with stackcheck_engine.begin() as conn:
                    await conn.execute(orders.insert().values(id=order_id, total_cents=1999))
                    event_id = await outbox.append(
                        conn,
                        OutboxEvent(
                            "order",
                            order_id,
                            "order_created",
                            {"order_id": order_id, "total": "19.99"},
                        ),
                        utc_now(),
                    )
                    if fail:
                        raise _Rollback
                return event_id

            # Writes until the connector streams (see the stack's Debezium test for why).
            committed: list[str] = []
            consumer = AIOKafkaConsumer(
                bootstrap_servers=stack["kafka"]["bootstrap_servers"],
                group_id=f"g-{unique}",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            events: list[ConsumerRecord] = []

            async def poll(ms: int) -> None:
                batch = await consumer.getmany(timeout_ms=ms)
                events.extend(r for part in batch.values() for r in part)

            def event_ids() -> set[str]:
                return {dict(r.headers)["id"].decode() for r in events}

            try:
                async with asyncio.timeout(120):
                    while topic not in await consumer.topics():
                        committed.append(await place(f"o-{unique}-{len(committed)}", False))
                        await asyncio.sleep(1)
                    consumer.subscribe([topic])
                    while not events:
                        committed.append(await place(f"o-{unique}-{len(committed)}", False))
                        await poll(1000)
                    with pytest.raises(_Rollback):
                        await place(f"rolled-back-{unique}", True)
                    last = await place(f"o-{unique}-last", False)
                    committed.append(last)
                    while last not in event_ids():
                        await poll(1000)
                    await poll(2000)  # room for strays and duplicates
            finally:
                await consumer.stop()
        finally:
            await connect.delete(f"/connectors/{name}")

    decoded = [
        decode(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers)) for r in events
    ]
    first = decoded[0]
    assert (first.event_type, first.key, first.payload["total"]) == (
        "order_created",
        first.payload["order_id"],
        "19.99",
    )
    ids = [e.event_id for e in decoded]
    assert last in ids
    assert len(ids) == len(set(ids))  # each event once
    assert set(ids) <= set(committed)
    assert all(e.payload["order_id"] != f"rolled-back-{unique}" for e in decoded)

    # Captured rows are purged on a schedule; the change itself stays.
    assert await outbox.purge(stackcheck_engine, utc_now() + timedelta(seconds=1)) == len(committed)
    async with stackcheck_engine.connect() as conn:
        assert (await conn.execute(select(outbox.table.c.id))).all() == []
        remaining = (await conn.execute(select(orders.c.id))).all()
    assert len(remaining) == len(committed)
    async with stackcheck_engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
