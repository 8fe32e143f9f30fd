"""gRPC adapter of commerce.v1.UserService: validation of a user for an order, which only the
order service may ask (its mTLS identity)."""

from __future__ import annotations

import grpc

from commerce_services.auth.grpc_identity import CallerPolicy
from commerce_services.rpc.commerce.v1 import users_pb2, users_pb2_grpc
from commerce_services.user.model import InvalidUserId, UserDormant, UserNotFound
from commerce_services.user.store import UserStore

STATUS_METADATA = "commerce-user-status"

CALLERS: CallerPolicy = {"/commerce.v1.UserService/ValidateUser": frozenset({"order"})}


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def __init__(self, store: UserStore) -> None:
        self._store = store

    # Method names are the RPC names, as the generated base class defines them.
    async def ValidateUser(
        self,
        request: users_pb2.ValidateUserRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> users_pb2.ValidatedUser:
        try:
            user = await self._store.validate_for_order(request.user_id)
        except InvalidUserId as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except UserNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no user {request.user_id}")
        except UserDormant as exc:
            context.set_trailing_metadata(((STATUS_METADATA, "DORMANT"),))
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return users_pb2.ValidatedUser(user_id=user.user_id, email=user.email)
