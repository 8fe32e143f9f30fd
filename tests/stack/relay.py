"""Debezium outbox connectors for a test: created on the real Kafka Connect, waited on until
they stream, deleted afterwards. Topics are `<prefix>.<aggregate>.events`."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from aiokafka import AIOKafkaConsumer
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_devstack.endpoints import Endpoints
from commerce_services.events.connector_config import OutboxConnectorSpec, outbox_connector_config
from commerce_services.events.outbox import Outbox, OutboxEvent, outbox_table
from commerce_services.runtime.clock import utc_now


async def _wait_streaming(stack: Endpoints, engine: AsyncEngine, topic: str) -> None:
    """Writes probe events until the connector relays one (a RUNNING connector may not have
    fixed its binlog position yet, and rows written before that are not captured)."""
    outbox = Outbox(outbox_table(MetaData()))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack["kafka"]["bootstrap_servers"],
        group_id=f"probe-{random.random()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(120):
            while True:
                async with engine.begin() as conn:
                    await outbox.append(conn, OutboxEvent("probe", "probe", "probe", {}), utc_now())
                if topic in await consumer.topics():
                    consumer.subscribe([topic])
                    if await consumer.getmany(timeout_ms=1500):
                        return
                else:
                    await asyncio.sleep(1)
    finally:
        await consumer.stop()


@asynccontextmanager
async def outbox_relays(
    stack: Endpoints, prefix: str, engines: Mapping[str, AsyncEngine]
) -> AsyncIterator[None]:
    """One connector per service in `engines` (service name -> its database), streaming."""
    replication = stack["mariadb"]["replication"]
    names = []
    async with httpx.AsyncClient(base_url=stack["connect"]["url"], timeout=30) as connect:
        try:
            for service in engines:
                dsn = stack.mariadb_dsn(service)
                name = f"{prefix}-{service}"
                config = outbox_connector_config(
                    OutboxConnectorSpec(
                        name=name,
                        database_host=dsn["host"],
                        database_port=dsn["port"],
                        database_user=replication["user"],
                        database_password=stack.secret(replication["password_ref"]),
                        database=dsn["database"],
                        server_id=random.randint(10_000, 4_000_000),
                        bootstrap_servers=stack["kafka"]["bootstrap_servers"],
                        topic_prefix=prefix,
                    )
                )
                names.append(name)
                assert (await connect.put(f"/connectors/{name}/config", json=config)).is_success
            for engine in engines.values():
                await _wait_streaming(stack, engine, f"{prefix}.probe.events")
            yield
        finally:
            for name in names:
                await connect.delete(f"/connectors/{name}")
