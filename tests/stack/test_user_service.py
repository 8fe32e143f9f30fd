"""The user service against the real MongoDB-wire server: unique emails under concurrency,
dormancy after six idle months, reactivation, the gRPC validation the order service uses, and
identity: sign-in with a password (never answered), access tokens that verify against the
service's JWKS, refresh tokens rotated on use and revoked on reuse or sign-out, brute-force
sign-in refused per account and per address with 429 and Retry-After, counted where every
replica sees it."""

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
from commerce_services.auth.keys import RemoteJwks
from commerce_services.auth.principal import CUSTOMER, STAFF
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.rpc.commerce.v1 import users_pb2, users_pb2_grpc
from commerce_services.user.grpc_service import STATUS_METADATA, UserServicer
from commerce_services.user.http_api import create_app
from commerce_services.user.identity import Identity
from commerce_services.user.model import UserDormant, UserNotFound, UserStatus
from commerce_services.user.passwords import Passwords
from commerce_services.user.refresh_tokens import RefreshTokens
from commerce_services.user.sign_in_limits import Limit, SignInLimits
from commerce_services.user.signing import AccessTokenIssuer
from commerce_services.user.store import UserStore
from tests.stack.access_tokens import ISSUER, KEYS, STAFF_HEADERS, VERIFIER, customer
from tests.stack.conftest import Clock
from tests.stack.error_shape import api_error
from tests.stack.mongo_key_access import Recorder, not_by_key

ACCOUNT_ATTEMPTS, ADDRESS_ATTEMPTS = 3, 8
PASSWORD = "correct horse battery"


@pytest.fixture
async def mongo(stack: Endpoints, unique: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000
    )
    yield client
    await client.drop_database(f"users_test_{unique}")
    await client.close()


@pytest.fixture
async def users(mongo: AsyncMongoClient[dict[str, Any]], clock: Clock, unique: str) -> UserStore:
    store = UserStore(mongo, f"users_test_{unique}", clock)
    await store.ensure_indexes()
    return store


def _identity(
    mongo: AsyncMongoClient[dict[str, Any]], users: UserStore, clock: Clock, unique: str
) -> Identity:
    """An identity over the test's database; another instance over the same database is
    another replica of the service."""
    database = f"users_test_{unique}"
    window = timedelta(minutes=15)
    return Identity(
        users,
        Passwords(),
        SignInLimits(
            mongo,
            database,
            clock,
            per_account=Limit(ACCOUNT_ATTEMPTS, window),
            per_address=Limit(ADDRESS_ATTEMPTS, window),
        ),
        RefreshTokens(mongo, database, clock, timedelta(days=30)),
        # The session's issuer and keys, with a production lifetime (sign-in answers it).
        AccessTokenIssuer(KEYS, ISSUER.issuer, ISSUER.audience, timedelta(minutes=15)),
        clock,
    )


async def _ready() -> None:
    return None


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://user.test")


@pytest.fixture
async def replicas(
    mongo: AsyncMongoClient[dict[str, Any]], users: UserStore, clock: Clock, unique: str
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two replicas of the user service's API over one database."""
    apps = [
        create_app(users, _identity(mongo, users, clock, unique), KEYS, VERIFIER, {"m": _ready})
        for _ in range(2)
    ]
    clients = [_client(app) for app in apps]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
def api(replicas: list[httpx.AsyncClient]) -> httpx.AsyncClient:
    return replicas[0]


def _new(email: str, name: str = "Ann") -> dict[str, str]:
    return {"email": email, "name": name, "password": PASSWORD}


async def test_signup_unique_email_even_when_racing(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/users", json=_new("Ann@Example.com"))
    assert created.status_code == 201
    user = created.json()
    assert (user["email"], user["status"], user["roles"]) == (
        "ann@example.com",
        "ACTIVE",
        [CUSTOMER],
    )
    assert "password" not in created.text
    assert PASSWORD not in created.text
    for stamp in (user["created_at"], user["last_active_at"]):  # RFC 3339, in UTC
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    mine = await api.get(f"/api/v1/users/{user['user_id']}", headers=customer(user["user_id"]))
    assert mine.json() == user
    again = await api.post("/api/v1/users", json=_new("ann@example.COM", "Other"))
    assert (again.status_code, api_error(again)["code"]) == (409, "email_taken")

    race = await asyncio.gather(
        *(api.post("/api/v1/users", json=_new("bob@example.com", f"Bob {n}")) for n in range(10))
    )
    assert sorted(r.status_code for r in race) == [201] + [409] * 9


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("post", "/api/v1/users", _new("not-an-email", "X"), 422, "validation_failed"),
        ("post", "/api/v1/users", {"email": "a@example.com"}, 422, "validation_failed"),
        (
            "post",
            "/api/v1/users",
            {"email": "a@example.com", "name": "X"},
            422,
            "validation_failed",
        ),
        (
            "post",
            "/api/v1/users",
            {"email": "a@example.com", "name": "X", "password": "short"},
            422,
            "validation_failed",
        ),
        (
            "post",
            "/api/v1/users",
            _new("a@example.com", "  "),
            422,
            "validation_failed",
        ),
        (
            "post",
            "/api/v1/users",
            {**_new("a@example.com", "X"), "roles": ["staff"]},
            422,
            "validation_failed",
        ),
        ("post", "/api/v1/users", {**_new("a@example.com"), "name": 5}, 422, "validation_failed"),
        (
            "post",
            "/api/v1/users",
            _new("a@example.com", "A\x00B"),
            422,
            "validation_failed",
        ),
        (
            "post",
            "/api/v1/users",
            _new("a@example.com", "A\x1bB"),
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
    response = await api.request(method, url, json=body, headers=STAFF_HEADERS)
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


async def test_validating_for_an_order_reads_by_key_and_records_activity_at_most_hourly(
    stack: Endpoints, users: UserStore, clock: Clock, unique: str
) -> None:
    recorder = Recorder()
    watched: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack["ferretdb"]["uri"], event_listeners=[recorder]
    )
    try:
        store = UserStore(watched, f"users_test_{unique}", clock)
        buyer = await users.create("buyer@example.com", "Buyer")
        idle = await users.create("idle@example.com", "Idle")
        stamps = []
        for step in (timedelta(minutes=59), timedelta(minutes=1), timedelta(minutes=30)):
            clock.now += step
            before = len(recorder.commands)
            seen = await store.validate_for_order(buyer.user_id)
            stamps.append([name for name, _ in recorder.commands[before:]].count("update"))
            assert seen.last_active_at == (await users.get(buyer.user_id)).last_active_at
        clock.now += timedelta(days=200)
        await users.validate_for_order(buyer.user_id)
        assert await users.mark_dormant() == 1
        with pytest.raises(UserDormant):
            await store.validate_for_order(idle.user_id)
        with pytest.raises(UserNotFound):
            await store.validate_for_order("f" * 32)
    finally:
        await watched.close()
    assert stamps == [0, 1, 0]  # 59 min: not yet; 60: recorded; 30 more: not again
    assert (await users.get(idle.user_id)).status == UserStatus.DORMANT
    assert not_by_key(recorder.commands) == []


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


async def _signed_up(api: httpx.AsyncClient, email: str) -> str:
    created = await api.post("/api/v1/users", json=_new(email))
    assert created.status_code == 201, created.text
    return str(created.json()["user_id"])


async def _sign_in(
    api: httpx.AsyncClient, email: str, password: str = PASSWORD, address: str = "203.0.113.9"
) -> httpx.Response:
    # The ASGI transport's client address is fixed; the per-address tests set it here.
    api._transport.client = (address, 50000)  # type: ignore[attr-defined]
    return await api.post("/api/v1/auth/token", json={"email": email, "password": password})


async def test_sign_in_answers_tokens_that_verify_against_the_jwks(
    api: httpx.AsyncClient, unique: str
) -> None:
    user_id = await _signed_up(api, f"sign-in-{unique}@example.com")
    signed_in = await _sign_in(api, f"Sign-In-{unique}@example.com")
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert (tokens["user_id"], tokens["token_type"], tokens["expires_in"]) == (
        user_id,
        "Bearer",
        900,
    )
    assert PASSWORD not in signed_in.text
    # What another service does: fetch the JWKS over HTTP, verify by kid.
    jwks = RemoteJwks("http://user.test/api/v1/auth/jwks.json", api, min_refresh_s=1, max_age_s=60)
    verifier = TokenVerifier(jwks, issuer=ISSUER.issuer, audience=ISSUER.audience)
    principal = await verifier.verify(tokens["access_token"])
    assert (principal.user_id, principal.roles) == (user_id, frozenset({CUSTOMER}))
    assert all("d" not in key for key in (await api.get("/api/v1/auth/jwks.json")).json()["keys"])
    mine = await api.get(
        f"/api/v1/users/{user_id}", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert mine.status_code == 200


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
    api: httpx.AsyncClient, unique: str
) -> None:
    await _signed_up(api, f"same-{unique}@example.com")
    wrong = await _sign_in(api, f"same-{unique}@example.com", "not the password")
    unknown = await _sign_in(api, f"nobody-{unique}@example.com")
    for answer in (wrong, unknown):
        assert (answer.status_code, api_error(answer)) == (
            401,
            {"code": "invalid_credentials", "message": "wrong email or password", "details": {}},
        )


async def test_a_refresh_token_is_rotated_on_use_and_its_reuse_revokes_the_family(
    api: httpx.AsyncClient, unique: str
) -> None:
    await _signed_up(api, f"refresh-{unique}@example.com")
    first = (await _sign_in(api, f"refresh-{unique}@example.com")).json()["refresh_token"]
    rotated = await api.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    # The spent token used again (a thief's copy): refused, and the family with it.
    reused = await api.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert (reused.status_code, api_error(reused)["code"]) == (401, "invalid_refresh_token")
    revoked = await api.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert (revoked.status_code, api_error(revoked)["code"]) == (401, "invalid_refresh_token")


async def test_two_replicas_rotating_one_refresh_token_at_once_mint_one_successor(
    replicas: list[httpx.AsyncClient], unique: str
) -> None:
    await _signed_up(replicas[0], f"race-{unique}@example.com")
    token = (await _sign_in(replicas[0], f"race-{unique}@example.com")).json()["refresh_token"]
    answers = await asyncio.gather(
        *(r.post("/api/v1/auth/refresh", json={"refresh_token": token}) for r in replicas)
    )
    assert sorted(a.status_code for a in answers) == [200, 401]


async def test_sign_out_revokes_the_refresh_token(api: httpx.AsyncClient, unique: str) -> None:
    await _signed_up(api, f"out-{unique}@example.com")
    token = (await _sign_in(api, f"out-{unique}@example.com")).json()["refresh_token"]
    assert (
        await api.post("/api/v1/auth/sign-out", json={"refresh_token": token})
    ).status_code == 204
    after = await api.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert (after.status_code, api_error(after)["code"]) == (401, "invalid_refresh_token")
    unknown = await api.post("/api/v1/auth/sign-out", json={"refresh_token": "never-issued"})
    assert unknown.status_code == 204  # tells nothing about which tokens exist


async def test_brute_force_on_one_account_is_refused_on_every_replica_even_the_right_password(
    replicas: list[httpx.AsyncClient], clock: Clock, unique: str
) -> None:
    email = f"victim-{unique}@example.com"
    await _signed_up(replicas[0], email)
    for attempt in range(ACCOUNT_ATTEMPTS):
        # From different addresses and replicas: the account's count is shared.
        wrong = await _sign_in(replicas[attempt % 2], email, "guess", f"198.51.100.{attempt}")
        assert wrong.status_code == 401
    refused = await _sign_in(replicas[1], email, PASSWORD, "198.51.100.200")
    assert (refused.status_code, api_error(refused)["code"]) == (429, "too_many_attempts")
    assert 1 <= int(refused.headers["retry-after"]) <= 15 * 60
    clock.now += timedelta(minutes=16)  # the window ended
    assert (await _sign_in(replicas[0], email, PASSWORD)).status_code == 200


async def test_one_address_guessing_many_accounts_is_refused(
    api: httpx.AsyncClient, unique: str
) -> None:
    address = "192.0.2.77"
    for n in range(ADDRESS_ATTEMPTS):
        answer = await _sign_in(api, f"spray-{n}-{unique}@example.com", "Winter2026!", address)
        assert answer.status_code == 401
    refused = await _sign_in(api, f"spray-last-{unique}@example.com", "Winter2026!", address)
    assert (refused.status_code, api_error(refused)["code"]) == (429, "too_many_attempts")
    assert "retry-after" in refused.headers
    # Another address is not held back by this one.
    await _signed_up(api, f"bystander-{unique}@example.com")
    assert (await _sign_in(api, f"bystander-{unique}@example.com")).status_code == 200


async def test_staff_reactivate_and_read_anyone_customers_only_themselves(
    api: httpx.AsyncClient,
    users: UserStore,
    mongo: AsyncMongoClient[dict[str, Any]],
    clock: Clock,
    unique: str,
) -> None:
    ann = await _signed_up(api, f"ann-{unique}@example.com")
    bob = await _signed_up(api, f"bob-{unique}@example.com")
    assert (await api.get(f"/api/v1/users/{bob}", headers=customer(ann))).status_code == 404
    assert (await api.get(f"/api/v1/users/{bob}", headers=STAFF_HEADERS)).status_code == 200
    assert (await api.get(f"/api/v1/users/{bob}")).status_code == 401
    by_customer = await api.post(f"/api/v1/users/{ann}/reactivate", headers=customer(ann))
    assert (by_customer.status_code, api_error(by_customer)["code"]) == (403, "forbidden")
    by_staff = await api.post(f"/api/v1/users/{ann}/reactivate", headers=STAFF_HEADERS)
    assert by_staff.status_code == 200
    # The bootstrap account: staff at once, and an existing account is made staff.
    identity = _identity(mongo, users, clock, unique)
    staff = await identity.ensure_staff(f"boss-{unique}@example.com", "Boss", "a long password!")
    assert staff.roles == frozenset({CUSTOMER, STAFF})
    promoted = await identity.ensure_staff(f"ann-{unique}@example.com", "Ann", "ignored-password")
    assert (promoted.user_id, STAFF in promoted.roles) == (ann, True)
    tokens = (await _sign_in(api, f"boss-{unique}@example.com", "a long password!")).json()
    assert STAFF in (await VERIFIER.verify(tokens["access_token"])).roles
