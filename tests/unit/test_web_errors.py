"""The one place that answers failures (web/errors.py): a database outage raised by any driver
from any endpoint is 503 `dependency_unavailable` with Retry-After; a driver error that is no
outage stays a 500; neither shows the client a stack trace or the driver's message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import AutoReconnect, DuplicateKeyError, ServerSelectionTimeoutError
from pymysql.err import IntegrityError as PyMySQLIntegrityError
from pymysql.err import OperationalError as PyMySQLOperationalError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from commerce_services.auth.http_access import Access
from commerce_services.web.app import service_app
from commerce_services.web.errors import ApiError


def _mysql(code: int, message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, PyMySQLOperationalError(code, message))


RAISED: list[tuple[str, Exception, int, str]] = [
    ("refused", _mysql(2003, "Can't connect to MySQL server"), 503, "dependency_unavailable"),
    ("lost mid-query", _mysql(2013, "Lost connection during query"), 503, "dependency_unavailable"),
    ("server gone", _mysql(2006, "MySQL server has gone away"), 503, "dependency_unavailable"),
    ("shutting down", _mysql(1053, "Server shutdown in progress"), 503, "dependency_unavailable"),
    ("pool exhausted", PoolTimeout("QueuePool limit reached"), 503, "dependency_unavailable"),
    ("mongo unreachable", ServerSelectionTimeoutError("no servers"), 503, "dependency_unavailable"),
    ("mongo connection lost", AutoReconnect("connection closed"), 503, "dependency_unavailable"),
    ("access denied", _mysql(1045, "Access denied for user"), 500, "internal_error"),
    (
        "duplicate row",
        IntegrityError("INSERT", {}, PyMySQLIntegrityError(1062, "Duplicate entry")),
        500,
        "internal_error",
    ),
    ("mongo duplicate key", DuplicateKeyError("E11000 duplicate key"), 500, "internal_error"),
    ("a bug", KeyError("missing"), 500, "internal_error"),
]


@pytest.fixture
async def raising() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Exception]]]:
    """An app whose endpoint raises whatever the test puts in `to_raise["error"]`."""
    rules = {("GET", "/fails"): Access.ANONYMOUS, ("GET", "/unavailable"): Access.ANONYMOUS}
    app: FastAPI = service_app("test", {}, rules, None)
    to_raise: dict[str, Exception] = {}

    @app.get("/fails")
    async def fails() -> None:
        raise to_raise["error"]

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise ApiError(503, "search_unavailable", "the engine did not answer")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, to_raise


@pytest.mark.parametrize(("case", "error", "status", "code"), RAISED, ids=[r[0] for r in RAISED])
async def test_driver_errors_are_answered_in_one_place(
    raising: tuple[httpx.AsyncClient, dict[str, Exception]],
    case: str,
    error: Exception,
    status: int,
    code: str,
) -> None:
    client, to_raise = raising
    to_raise["error"] = error
    response = await client.get("/fails")
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert (body["error"]["code"], body["error"]["details"]) == (code, {})
    assert ("Retry-After" in response.headers) == (status == 503)
    assert str(error) not in response.text  # the driver's words stay in the log


async def test_every_503_says_when_to_retry(
    raising: tuple[httpx.AsyncClient, dict[str, Exception]],
) -> None:
    client, _ = raising
    response = await client.get("/unavailable")
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
