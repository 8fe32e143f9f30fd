"""A gRPC method's unexpected failure, on a real in-process server: a database outage is
UNAVAILABLE, anything else INTERNAL, and the exception's text (SQL, parameters) never reaches
the caller; a status the method chose stays."""

from __future__ import annotations

import grpc
import pytest
from pymysql.err import OperationalError as DriverError
from sqlalchemy.exc import OperationalError

from commerce_services.rpc.commerce.v1 import users_pb2, users_pb2_grpc
from commerce_services.runtime.grpc_errors import FailureStatus

LOST = OperationalError(
    "UPDATE inventory SET reserved=...", {"secret": 1}, DriverError(2013, "Lost connection")
)


class Failing(users_pb2_grpc.UserServiceServicer):
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def ValidateUser(
        self,
        request: users_pb2.ValidateUserRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> users_pb2.ValidatedUser:
        if self.error is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        raise self.error


@pytest.mark.parametrize(
    ("error", "code", "details"),
    [
        (LOST, grpc.StatusCode.UNAVAILABLE, "a database is unavailable; retry later"),
        (KeyError("bug"), grpc.StatusCode.INTERNAL, "an internal error occurred"),
        (None, grpc.StatusCode.NOT_FOUND, "no such user"),
    ],
)
async def test_failures_are_answered_with_a_status_and_no_internals(
    error: Exception | None, code: grpc.StatusCode, details: str
) -> None:
    server = grpc.aio.server(interceptors=[FailureStatus()])
    users_pb2_grpc.add_UserServiceServicer_to_server(Failing(error), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await users_pb2_grpc.UserServiceStub(channel).ValidateUser(
                    users_pb2.ValidateUserRequest(user_id="u"), timeout=5
                )
    finally:
        await server.stop(None)
    assert (failed.value.code(), failed.value.details()) == (code, details)
