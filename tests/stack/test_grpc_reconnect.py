"""The order service's gRPC clients ride out a callee that starts (or restarts) after them: a
call made while the channel is between connection attempts waits for it within its deadline
instead of failing at once. (A shop's first order met this: the order service's sweep dialled
the product service a moment before it listened, and the channel's backoff failed the next
calls for a second.)"""

from __future__ import annotations

import time

import grpc
import pytest
from pydantic import SecretStr

from commerce_services.auth.grpc_identity import GrpcIdentitySettings
from commerce_services.order.ports import DependencyUnavailable
from commerce_services.order.users_client import GrpcUsers
from commerce_services.rpc.commerce.v1 import users_pb2, users_pb2_grpc
from commerce_services.runtime.grpc_wiring import secure_server
from commerce_services.user.grpc_service import CALLERS
from tests.stack.access_tokens import CERTIFICATES, grpc_channel
from tests.stack.processes import free_ports


class Answering(users_pb2_grpc.UserServiceServicer):
    """A user service that knows every user: what is tested is the channel, not the store."""

    async def ValidateUser(
        self,
        request: users_pb2.ValidateUserRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> users_pb2.ValidatedUser:
        return users_pb2.ValidatedUser(user_id=request.user_id, email="buyer@example.com")


async def test_a_call_waits_for_a_callee_that_comes_up_within_its_deadline() -> None:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    user = CERTIFICATES.identities["user"]
    async with grpc_channel(address, "order") as channel:
        users = GrpcUsers(users_pb2_grpc.UserServiceStub(channel), timeout_s=1.0)
        with pytest.raises(DependencyUnavailable):
            await users.validate("a" * 32)  # nobody listens: the channel backs off
        server = secure_server(
            GrpcIdentitySettings(
                grpc_tls_cert=user.cert_pem,
                grpc_tls_key=SecretStr(user.key_pem),
                grpc_tls_ca=CERTIFICATES.ca_pem,
            ),
            CALLERS,
            address,
        )
        users_pb2_grpc.add_UserServiceServicer_to_server(Answering(), server)
        await server.start()
        try:
            started = time.monotonic()
            await GrpcUsers(users_pb2_grpc.UserServiceStub(channel), 3.0).validate("a" * 32)
            assert time.monotonic() - started < 3.0
        finally:
            await server.stop(grace=None)
