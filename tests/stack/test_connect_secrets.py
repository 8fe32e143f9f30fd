"""The stack's Kafka Connect reads database passwords through its config provider, as Connect
workers with mounted Secrets do on a cluster: a relay's connector config holds a reference, the
password never shows in Connect's REST API, and the connector still streams (it resolved the
reference). A worker started before it had the provider fails here, naming the fix."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import outbox_relays
from commerce_services.db.settings import DatabaseSettings
from tests.stack.connect_secret_mounts import secrets_root


async def test_a_relay_names_its_password_by_reference_only(stack: Endpoints) -> None:
    secrets_root(stack)  # fails the test, naming the fix, if the worker has no provider
    password = stack.secret(stack["mariadb"]["replication"]["password_ref"])
    prefix = f"cp{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(
        DatabaseSettings.from_values(stack.service_settings("order")).database_url()
    )
    try:
        async with (
            outbox_relays(stack, prefix, {"order": engine}),  # returns once it streams
            httpx.AsyncClient(base_url=stack["connect"]["url"], timeout=10) as connect,
        ):
            config = (await connect.get(f"/connectors/{prefix}-order/config")).json()
            status = (await connect.get(f"/connectors/{prefix}-order/status")).json()
            everything = (await connect.get("/connectors", params={"expand": "info"})).text
    finally:
        await engine.dispose()
    assert config["database.password"].startswith("${dir:" + stack["connect"]["secrets_root"])
    assert password not in str(config)
    assert password not in everything
    assert status["tasks"][0]["state"] == "RUNNING"
