"""The user service against the real MongoDB-wire server: unique emails under concurrency,
dormancy after six idle months, reactivation, and the gRPC validation the order service uses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from pymongo import AsyncMongoClient

from commerce_devstack.endpoints import Endpoints
from commerce_services.rpc.commerce.v1 import users_pb2, users_pb2_grpc
from commerce_services.user.grpc_service import STATUS_METADATA, UserServicer
from commerce_services.user.http_api import create_app
from commerce_services.user.model import UserDormant, UserStatus
from commerce_services.user.store import UserStore
from tests.stack.conftest import Clock
from tests.stack.error_shape import api_error


@pytest.fixture
async def users(stack: Endpoints, clock: Clock, unique: str) -> AsyncIterator[UserStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000
    )
    store = UserStore(client, f"users_test_{unique}", clock)
    await store.ensure_indexes()
    yield store
    await client.drop_database(f"users_test_{unique}")
    await client.close()


async def _ready() -> None:
    return None


@pytest.fixture
async def api(users: UserStore) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(users, {"mongodb": _ready})),
        base_url="http://user.test",
    ) as client:
        yield client


async def test_signup_unique_email_even_when_racing(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/users", json={"email": "Ann@Example.com", "name": "Ann"})
    assert created.status_code == 201
    user = created.json()
    assert (user["email"], user["status"]) == ("ann@example.com", "ACTIVE")
    for stamp in (user["created_at"], user["last_active_at"]):  # RFC 3339, in UTC
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    assert (await api.get(f"/api/v1/users/{user['user_id']}")).json() == user
    again = await api.post("/api/v1/users", json={"email": "ann@example.COM", "name": "Other"})
    assert (again.status_code, api_error(again)["code"]) == (409, "email_taken")

    race = await asyncio.gather(
        *(
            api.post("/api/v1/users", json={"email": "bob@example.com", "name": f"Bob {n}"})
            for n in range(10)
        )
    )
    assert sorted(r.status_code for r in race) == [201] + [409] * 9


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("post", "/api/v1/users", {"email": "not-an-email", "name": "X"}, 422, "validation_failed"),
        ("post", "/api/v1/users", {"email": "a@example.com"}, 422, "validation_failed"),
        (
            "post",
            "/api/v1/users",
            {"email": "a@example.com", "name": "  "},
            422,
            "validation_failed",
        ),
        (
            "post",
            "/api/v1/users",
            {"email": "a@example.com", "name": "X", "role": "admin"},
            422,
            "validation_failed",
        ),
        ("post", "/api/v1/users", {"email": "a@example.com", "name": 5}, 422, "validation_failed"),
        (
            "post",
            "/api/v1/users",
            {"email": "a@example.com", "name": "A\x00B"},
            422,
            "validation_failed",
        ),
        (
            "post",
            "/api/v1/users",
            {"email": "a@example.com", "name": "A\x1bB"},
            422,
            "validation_failed",
        ),
        ("get", "/api/v1/users/not-an-id", None, 422, "invalid_user_id"),
        ("get", f"/api/v1/users/{'a' * 32}", None, 404, "not_found"),
        ("post", f"/api/v1/users/{'b' * 32}/reactivate", None, 404, "not_found"),
    ],
)
async def test_bad_requests_get_the_error_shape(
    api: httpx.AsyncClient, method: str, url: str, body: Any, status: int, code: str
) -> None:
    response = await api.request(method, url, json=body)
    assert (response.status_code, api_error(response)["code"]) == (status, code)


async def test_six_idle_months_make_an_account_dormant_until_reactivated(
    users: UserStore, clock: Clock
) -> None:
    idle = await users.create("idle@example.com", "Idle")
    busy = await users.create("busy@example.com", "Busy")
    clock.now += timedelta(days=100)
    await users.validate_for_order(busy.user_id)  # an order counts as activity
    clock.now += timedelta(days=90)

    assert await users.mark_dormant() == 1
    assert (await users.get(idle.user_id)).status == UserStatus.DORMANT
    assert (await users.get(busy.user_id)).status == UserStatus.ACTIVE
    with pytest.raises(UserDormant):
        await users.validate_for_order(idle.user_id)
    assert (await users.get(idle.user_id)).status == UserStatus.DORMANT  # not stamped active

    back = await users.reactivate(idle.user_id)
    assert back.status == UserStatus.ACTIVE
    assert abs(back.last_active_at - clock.now) < timedelta(milliseconds=1)
    assert (await users.validate_for_order(idle.user_id)).user_id == idle.user_id
    assert await users.mark_dormant() == 0


@pytest.fixture
async def user_rpc(users: UserStore) -> AsyncIterator[users_pb2_grpc.UserServiceAsyncStub]:
    server = grpc.aio.server()
    users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(users), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield users_pb2_grpc.UserServiceStub(channel)
    await channel.close()
    await server.stop(grace=None)


async def test_validate_user_over_grpc(
    user_rpc: users_pb2_grpc.UserServiceAsyncStub, users: UserStore, clock: Clock
) -> None:
    ann = await users.create("ann@example.com", "Ann")
    ok = await user_rpc.ValidateUser(users_pb2.ValidateUserRequest(user_id=ann.user_id), timeout=5)
    assert (ok.user_id, ok.email) == (ann.user_id, "ann@example.com")

    clock.now += timedelta(days=400)
    await users.mark_dormant()
    with pytest.raises(grpc.aio.AioRpcError) as dormant:
        await user_rpc.ValidateUser(users_pb2.ValidateUserRequest(user_id=ann.user_id), timeout=5)
    assert dormant.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(dormant.value.trailing_metadata() or ())[STATUS_METADATA] == "DORMANT"

    for user_id, code in (
        ("f" * 32, grpc.StatusCode.NOT_FOUND),
        ("nope", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await user_rpc.ValidateUser(users_pb2.ValidateUserRequest(user_id=user_id), timeout=5)
        assert failed.value.code() == code
