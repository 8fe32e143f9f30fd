"""The Users port over gRPC (commerce.v1.UserService/ValidateUser), with a deadline."""

from __future__ import annotations

import grpc

from commerce_services.order.ports import DependencyUnavailable, UserRejected
from commerce_services.rpc.commerce.v1 import users_pb2, users_pb2_grpc

UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class GrpcUsers:
    def __init__(self, stub: users_pb2_grpc.UserServiceAsyncStub, timeout_s: float) -> None:
        self._stub = stub
        self._timeout = timeout_s

    async def validate(self, user_id: str) -> None:
        try:
            await self._stub.ValidateUser(
                users_pb2.ValidateUserRequest(user_id=user_id),
                timeout=self._timeout,
                wait_for_ready=True,  # a user service restarting is waited for, to the deadline
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise UserRejected("user_not_found", f"no user {user_id}") from exc
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise UserRejected("user_dormant", exc.details() or "account is dormant") from exc
            if exc.code() in UNAVAILABLE:
                raise DependencyUnavailable("the user service did not answer") from exc
            raise
