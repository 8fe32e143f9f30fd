"""`commerce-user serve` as a real process against the stack's MongoDB-wire server."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest
from pymongo import AsyncMongoClient

from commerce_devstack.endpoints import Endpoints
from commerce_services.rpc.commerce.v1 import users_pb2, users_pb2_grpc
from tests.stack.access_tokens import VERIFIER, grpc_channel, signing_env
from tests.stack.processes import free_ports, start_service, stop


@pytest.fixture
async def user_service(
    stack: Endpoints, unique: str
) -> AsyncIterator[tuple[subprocess.Popen[str], int, int]]:
    http_port, grpc_port = free_ports(2)
    database = f"users_proc_{unique}"
    env = {
        **os.environ,
        **{f"USER_{k.upper()}": v for k, v in stack.service_settings("user").items()},
        "USER_MONGO_DATABASE": database,
        "USER_HTTP_PORT": str(http_port),
        "USER_GRPC_PORT": str(grpc_port),
        **signing_env(),
    }
    proc = start_service("commerce_services.user", env, http_port)
    yield proc, http_port, grpc_port
    stop(proc)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stack["ferretdb"]["uri"])
    await client.drop_database(database)
    await client.close()


async def test_user_service_serves_rest_and_grpc_and_stops_cleanly(
    user_service: tuple[subprocess.Popen[str], int, int],
) -> None:
    proc, http_port, grpc_port = user_service
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:
        created = await http.post(
            "/api/v1/users",
            json={"email": "proc@example.com", "name": "Proc", "password": "proc password"},
        )
        assert created.status_code == 201
        signed_in = await http.post(
            "/api/v1/auth/token", json={"email": "proc@example.com", "password": "proc password"}
        )
        assert signed_in.status_code == 200, signed_in.text
        assert (await VERIFIER.verify(signed_in.json()["access_token"])).user_id == created.json()[
            "user_id"
        ]
    async with grpc_channel(f"127.0.0.1:{grpc_port}", "order") as channel:
        validated = await users_pb2_grpc.UserServiceStub(channel).ValidateUser(
            users_pb2.ValidateUserRequest(user_id=created.json()["user_id"]), timeout=5
        )
    assert validated.email == "proc@example.com"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
